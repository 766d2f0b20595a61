"""What ``sweep-bench --equation acoustic3d`` measures: the rows of each 3-D grid, as cases
(:mod:`sweep.bench.cases`' JSON form, run by :mod:`sweep.bench.child` in a fresh process each).

Per back-end: full storage (the reference; it runs wherever the memory guard says it fits and reports
"does not fit" with its prediction where it does not), boundary saving on the device with fp32, fp16,
int8 and ZFP strips and on disk with fp32, Revolve with a count, multistage Revolve (a count in memory
plus a disk_count on disk), and strategy='auto' with a budget in memory (boundary saving on the device
fits it on both grids) and with a smaller one plus the disk. The budgets and counts scale with the grid
(:data:`GRID_KNOBS`).
"""
from __future__ import annotations

from ..propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from .cases import sweep_case

#: Per grid: Revolve's count, multistage's (count, disk_count), auto's budget and (budget, disk budget).
GRID_KNOBS: dict[str, dict] = {
    "large": dict(revolve=16, multistage=(4, 16), auto="4GiB", auto_disk=("1GiB", "available")),
    "small": dict(revolve=8, multistage=(4, 16), auto="256MiB", auto_disk=("64MiB", "available")),
}


def _label_bytes(text: str) -> str:
    return text.replace("GiB", " GiB").replace("MiB", " MiB")


def strategies3d(impl: str, grid: str, disk_dir: str) -> list[tuple[str, MemoryOptions]]:
    """(label, memory options) of one back-end's rows on ``grid`` ('large', 'small' or a custom grid,
    which takes the small grid's knobs); disk files go inside ``disk_dir``."""
    knobs = GRID_KNOBS.get(grid, GRID_KNOBS["small"])

    def bdy(dtype: str, storage: str = "gpu") -> MemoryOptions:
        return MemoryOptions("boundary", boundary=BoundaryOptions(
            storage=storage, storage_dtype=dtype, disk_dir=disk_dir if storage == "disk" else None))

    count, disk_count = knobs["multistage"]
    budget, (small_budget, disk_budget) = knobs["auto"], knobs["auto_disk"]
    dirs = dict(boundary=BoundaryOptions(disk_dir=disk_dir), ckpt=CkptOptions(disk_dir=disk_dir))
    rows = [(f"{impl} · full", MemoryOptions("full"))]
    rows += [(f"{impl} · bdy device · {d}", bdy(d)) for d in ("fp32", "fp16", "int8")]
    rows += [(f"{impl} · bdy device · zfp 1e-4", bdy("zfp")),
             (f"{impl} · bdy disk · fp32", bdy("fp32", "disk")),
             (f"{impl} · revolve({knobs['revolve']})",
              MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=knobs["revolve"]))),
             (f"{impl} · multistage({count} + {disk_count} disk)",
              MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=count, disk_count=disk_count,
                                                     disk_dir=disk_dir))),
             (f"{impl} · auto {_label_bytes(budget)}", MemoryOptions("auto", budget=budget, **dirs)),
             (f"{impl} · auto {_label_bytes(small_budget)} + disk",
              MemoryOptions("auto", budget=small_budget, disk_budget=disk_budget, **dirs))]
    return rows


def grid_cases3d(grid: str, impls: list[str], disk_dir: str) -> list[dict]:
    """Every row of ``grid`` for each back-end in ``impls`` (each back-end's full storage first: the
    reference its other rows are compared with)."""
    return [sweep_case(label, impl, memory, grid=grid) for impl in impls
            for label, memory in strategies3d(impl, grid, disk_dir)]


def skipped_case(label: str, reason: str, contender: str = "sweep", impl: str | None = None) -> dict:
    """A row that is not run, with why (a back-end that has no 3-D stepper here, Deepwave not installed)."""
    return dict(label=label, contender=contender, impl=impl, skip=reason)
