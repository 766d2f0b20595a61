"""ZFP and precursor skipping on the notebook shot: compression factor, gradient error against full
storage and fwd+bwd time, per tolerance / rate, for boundary strips and chunk checkpoints.

Run ``python -m sweep.bench.zfp_table`` (c back-end; ``--impl eager`` for the other one). Times are
one run each, indicative only on a shared machine. Errors: relative L2 and max|dg| / max|g| of the
velocity gradient against full storage of the same back-end.
"""
from __future__ import annotations

import argparse
import time
import warnings

import torch

from ..propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from .speed import NT, seed_propagator, seed_shot


def cases() -> list[tuple[str, MemoryOptions]]:
    b = lambda **kw: MemoryOptions("boundary", boundary=BoundaryOptions("gpu", **kw))  # noqa: E731
    c = lambda **kw: MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=100, **kw))  # noqa: E731
    out = [("strips fp32 (lossless)", b()), ("strips int8", b(storage_dtype="int8"))]
    out += [(f"strips zfp tol {t:g}", b(storage_dtype="zfp", zfp_tolerance=t))
            for t in (1e-2, 1e-3, 1e-4, 1e-5)]
    out += [(f"strips zfp rate {r}", b(storage_dtype="zfp", zfp_rate=r)) for r in (8, 16)]
    out += [("strips fp32 + skip", b(skip_zero_strips=True)), ("strips int8 + skip", b(storage_dtype="int8", skip_zero_strips=True)),
            ("strips zfp rate 16 + skip", b(storage_dtype="zfp", zfp_rate=16, skip_zero_strips=True))]
    out += [("ckpt chunk 100 (lossless)", c()), ("ckpt chunk 100 zfp tol 1e-4", c(storage_dtype="zfp", zfp_tolerance=1e-4)),
            ("ckpt chunk 100 zfp tol 1e-6", c(storage_dtype="zfp", zfp_tolerance=1e-6)),
            ("ckpt chunk 100 zfp rate 16", c(storage_dtype="zfp", zfp_rate=16))]
    return out


def gradient(shot: dict, memory: MemoryOptions, impl: str):
    prop = seed_propagator(shot, NT, impl=impl, memory=memory)
    vp = shot["vp"].clone().requires_grad_()
    t = time.perf_counter()
    prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp]).pow(2).sum().backward()
    return vp.grad, time.perf_counter() - t, prop.memory_report()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="c")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="only .* grid points")
    shot = seed_shot(NT)
    ref, t_full, _ = gradient(shot, MemoryOptions("full"), args.impl)
    print(f"full storage: {t_full:.2f} s")
    print("| case | stored MiB | strips or checkpoints MiB | factor | tracked peak MiB | err rel L2 | err max | fwd+bwd s |")
    print("|---|---|---|---|---|---|---|---|")
    base = {}
    for name, memory in cases():
        g, t, rep = gradient(shot, memory, args.impl)
        kept = sum(b.nbytes for b in rep.buffers if b.role == "stored" and b.name != "fields")
        kind = name.split()[0]
        base.setdefault(kind, kept)
        rel = float((g - ref).norm() / ref.norm())
        mx = float((g - ref).abs().max() / ref.abs().max())
        print(f"| {name} | {rep.stored_bytes / 2**20:.2f} | {kept / 2**20:.2f} | {base[kind] / kept:.1f} | "
              f"{rep.peak_memory_bytes / 2**20:.2f} | {rel:.1e} | {mx:.1e} | {t:.2f} |", flush=True)
        for n in rep.notes:
            if n.startswith("skip_zero_strips"):
                print(f"    {n}")


if __name__ == "__main__":
    main()
