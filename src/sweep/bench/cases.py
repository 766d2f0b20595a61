"""What ``sweep-bench`` measures: the seed notebook's 21 strategies, rows beyond them, knob sweeps, and their
JSON form.

A *case* is a JSON-serialisable dict that a fresh subprocess (:mod:`sweep.bench.child`) can rebuild:
``{"label", "contender": "sweep" | "deepwave", "impl", "memory": MemoryOptions as a dict, "peer": dict}``.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable

from ..propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from ..propagator.strategy import resolve_memory


def notebook_strategies(disk_dir: str) -> list[tuple[str, dict]]:
    """Cell 3's 21 (label, PropTorch keyword arguments) pairs; disk files go inside ``disk_dir``."""
    def bdy(storage: str, dtype: str) -> MemoryOptions:
        kw: dict = dict(storage=storage, storage_dtype=dtype)
        if storage in ("cpu", "disk"):
            kw["transfer_interval"] = 8
        if storage == "cpu":
            kw["pinned_memory"] = True
        if storage == "disk":
            kw["disk_dir"] = disk_dir
        return MemoryOptions(strategy="boundary", boundary=BoundaryOptions(**kw))

    out = [("eager · full", dict(impl="eager", use_ckpt=False)),
           ("eager · chunk-ckpt", dict(impl="eager", use_ckpt=True, ckpt_chunks=100)),
           ("c · full", dict(impl="c", use_ckpt=False))]
    out += [(f"eager · bdy gpu · {d}", dict(impl="eager", memory=bdy("gpu", d))) for d in ("fp32", "fp16", "bf16", "int8")]
    out += [(f"c · bdy {s} · {d}", dict(impl="c", memory=bdy(s, d)))
            for s in ("gpu", "cpu", "disk") for d in ("fp32", "fp16", "bf16", "int8")]
    out += [("c · chunk-ckpt", dict(impl="c", memory=MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=100)))),
            ("c · recursive-ckpt", dict(impl="c", memory=MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=8))))]
    return out


def display_label(label: str, device: str) -> str:
    """``label`` as tables and figures show it: the notebook's 'gpu' storage (the compute device's memory)
    reads 'device' when ``device`` is not a GPU. results.json keeps the notebook's labels."""
    return label if device.startswith("cuda") else re.sub(r"\bgpu\b", "device", label)


def memory_to_dict(memory: MemoryOptions) -> dict:
    d = dataclasses.asdict(memory)
    for part in ("boundary", "ckpt"):
        if d[part]["disk_dir"] is not None:
            d[part]["disk_dir"] = os.fspath(d[part]["disk_dir"])
    return d


def memory_from_dict(d: dict) -> MemoryOptions:
    return MemoryOptions(d["strategy"], boundary=BoundaryOptions(**d["boundary"]), ckpt=CkptOptions(**d["ckpt"]),
                         budget=d.get("budget"), disk_budget=d.get("disk_budget"))


def sweep_case(label: str, impl: str, memory: MemoryOptions, **extra) -> dict:
    return dict(label=label, contender="sweep", impl=impl, memory=memory_to_dict(memory), **extra)


def notebook_cases(disk_dir: str) -> list[dict]:
    """The 21 strategies as cases (the notebook's ``use_ckpt`` flags resolved to the options they mean)."""
    cases = []
    for label, kw in notebook_strategies(disk_dir):
        memory = resolve_memory(kw["impl"], kw.get("memory"), kw.get("use_ckpt"), kw.get("ckpt_chunks", 100), None)
        cases.append(sweep_case(label, kw["impl"], memory))
    return cases


def beyond_notebook_cases(disk_dir: str, disk_auto_budget: int = 8) -> list[dict]:
    """Rows the notebook does not have: ZFP strips and checkpoints, precursor skipping, and
    strategy='auto' at two budgets: 64 MiB, and ``disk_auto_budget`` MiB with the disk allowed."""
    auto = lambda budget, disk=None: MemoryOptions(  # noqa: E731
        "auto", budget=budget, disk_budget=disk, boundary=BoundaryOptions(disk_dir=disk_dir),
        ckpt=CkptOptions(disk_dir=disk_dir))
    zfp = lambda **kw: MemoryOptions("boundary", boundary=BoundaryOptions(storage_dtype="zfp", **kw))  # noqa: E731
    return [sweep_case("c · bdy gpu · zfp 1e-4", "c", zfp(zfp_tolerance=1e-4)),
            sweep_case("c · bdy gpu · zfp rate 16", "c", zfp(zfp_rate=16)),
            sweep_case("c · bdy gpu · fp32 · skip zeros", "c",
                       MemoryOptions("boundary", boundary=BoundaryOptions(storage_dtype="fp32", skip_zero_strips=True))),
            sweep_case("c · chunk-ckpt · zfp 1e-6", "c",
                       MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=100, storage_dtype="zfp", zfp_tolerance=1e-6))),
            sweep_case("c · auto 64 MiB", "c", auto("64MiB")),
            sweep_case(f"c · auto {disk_auto_budget} MiB + disk", "c", auto(f"{disk_auto_budget}MiB", "1GiB"))]


#: multistage Revolve's (count in memory, disk_count) in the VRZ bench's rows (the 3-D bench's small grid's).
VRZ_MULTISTAGE = (4, 16)
#: MiB of the VRZ bench's smaller auto budget: VRZ holds two padded models (K and b), so on the notebook grid
#: its smallest exact plan (boundary saving staged to disk) needs 9.7 MiB, above the acoustic row's 8.
VRZ_DISK_AUTO_BUDGET = 16


def vrz_cases(impl: str, disk_dir: str) -> list[dict]:
    """``--equation vrz``'s rows, on back-end ``impl``: every strategy of the compiled back-end's notebook and
    beyond-notebook rows (full, chunk, Revolve, boundary saving on device/host/disk with every codec, ZFP,
    auto) and multistage Revolve after Revolve, labelled ``'{impl} · ...'``."""
    count, disk_count = VRZ_MULTISTAGE
    multistage = sweep_case(f"c · multistage({count} + {disk_count} disk)", "c", MemoryOptions(
        "ckpt", ckpt=CkptOptions("recursive", count=count, disk_count=disk_count, disk_dir=disk_dir)))
    rows = [c for c in notebook_cases(disk_dir) + beyond_notebook_cases(disk_dir, VRZ_DISK_AUTO_BUDGET)
            if c["impl"] == "c"]
    after = next(i for i, c in enumerate(rows) if c["label"] == "c · recursive-ckpt") + 1
    rows.insert(after, multistage)
    return [dict(c, label=impl + c["label"].removeprefix("c"), impl=impl) for c in rows]


def full_storage_case(impl: str) -> dict:
    return sweep_case(f"{impl} · full", impl, MemoryOptions("full"))


def _bdy(storage: str, disk_dir: str, **kw) -> MemoryOptions:
    return MemoryOptions("boundary", boundary=BoundaryOptions(storage=storage, disk_dir=disk_dir if storage == "disk"
                                                                else None, **kw))


#: Knob -> (how its values are parsed, the cases of one value). Seed 001's "what to compare" list.
KNOBS: dict[str, tuple[Callable[[str], object], Callable[[object, str], list[dict]]]] = {
    "chunks": (int, lambda v, d: [sweep_case(f"c · chunk-ckpt({v})", "c",
                                             MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=v)))]),
    "count": (int, lambda v, d: [sweep_case(f"c · recursive-ckpt({v})", "c",
                                            MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=v)))]),
    "transfer_interval": (int, lambda v, d: [sweep_case(f"c · bdy {s} · fp32", "c", _bdy(s, d, transfer_interval=v))
                                             for s in ("cpu", "disk")]),
    "storage": (str, lambda v, d: [sweep_case(f"c · bdy {v} · fp32", "c", _bdy(v, d))]),
    "storage_dtype": (str, lambda v, d: [sweep_case(f"c · bdy gpu · {v}", "c", _bdy("gpu", d, storage_dtype=v))]),
    "pinned": (str, lambda v, d: [sweep_case("c · bdy cpu · fp32", "c", _bdy("cpu", d, pinned_memory=v == "on"))]),
}


def parse_knob(spec: str) -> tuple[str, list]:
    """``'chunks=25,50'`` -> ``('chunks', [25, 50])``; ValueError naming the knobs otherwise."""
    name, sep, values = spec.partition("=")
    if not sep or name not in KNOBS or not values:
        raise ValueError(f"a sweep is KNOB=V1,V2,... with KNOB one of {sorted(KNOBS)}, got {spec!r}")
    parse = KNOBS[name][0]
    try:
        parsed = [parse(v) for v in values.split(",")]
    except ValueError as exc:
        raise ValueError(f"{name}: cannot parse the values {values!r} ({exc})") from exc
    if name == "pinned" and not set(parsed) <= {"on", "off"}:
        raise ValueError(f"pinned takes on,off, got {values!r}")
    return name, parsed


def inert_reason(knob: str, device: str) -> str | None:
    """Why ``knob`` does nothing on ``device`` (then it is reported, not plotted), or None."""
    if knob == "pinned" and not device.startswith("cuda"):
        return "pinned_memory only changes anything with CUDA; on a CPU it is ignored (with a warning)"
    return None


def knob_cases(knob: str, values: list, disk_dir: str) -> list[dict]:
    return [dict(case, value=v) for v in values for case in KNOBS[knob][1](v, disk_dir)]
