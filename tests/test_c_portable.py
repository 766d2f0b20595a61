"""The portable build (SWEEP_PORTABLE=1): kernels compiled for baseline x86-64, AVX2 + FMA and AVX-512 and
picked at run time. Built here into a temporary directory (nothing is left behind) and run on a tiny
problem against the installed (-march=native) build.

Stated tolerance: the code paths may contract different products into FMAs than the native build, so
results agree to rounding (relative 1e-5 in float32, 1e-12 in float64), not necessarily bit for bit; each
build is bit-identical to itself across thread counts (tests/test_c_parallel.py)."""
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sweep.propagator.c as cmod
import sweep.propagator.c.library as clib
from sweep.propagator.c import library_available, load_error

from test_c_backend import run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength"),
    pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}"),
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 code paths only"),
    pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None,
                       reason="no C compiler"),
]


@pytest.fixture(scope="module")
def portable_library(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("portable")
    env = dict(os.environ, SWEEP_PORTABLE="1")
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(out / "lib"),
                           "--build-temp", str(out / "tmp")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    libs = list((out / "lib").rglob("_sweep_acoustic*.so"))
    assert proc.returncode == 0 and libs, proc.stdout[-2000:] + proc.stderr[-2000:]
    yield libs[0]
    shutil.rmtree(out, ignore_errors=True)


def use_library(path: Path, monkeypatch) -> None:
    monkeypatch.setattr(clib, "_find_library", lambda: path)
    for name, value in (("_tried", False), ("_lib", None), ("_error", None)):
        monkeypatch.setattr(clib, name, value)
    assert cmod.library_available(), cmod.load_error()


@pytest.mark.parametrize("isa", [None, "baseline"])
def test_portable_build_matches_native(portable_library, isa, monkeypatch, tmp_path):
    native = {dtype: run("c", dtype, True, 4, use_ckpt=False) for dtype in (torch.float32, torch.float64)}
    # A copy per code path: the choice is made once per loaded library.
    lib = tmp_path / f"copy_{isa}{portable_library.suffix}"
    shutil.copy(portable_library, lib)
    if isa:
        monkeypatch.setenv("SWEEP_ISA", isa)
    else:
        monkeypatch.delenv("SWEEP_ISA", raising=False)
    use_library(lib, monkeypatch)
    path = cmod.code_path()
    assert path in ("baseline", "avx2", "avx512") and (isa is None or path == isa)
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        portable = run("c", dtype, True, 4, use_ckpt=False)
        for a, b in zip(portable, native[dtype]):
            assert a.dtype == dtype
            assert float((a - b).norm() / b.norm()) < tol, (path, dtype)
