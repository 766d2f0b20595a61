"""Build of the compiled CPU back-end (impl='c'): a plain shared library loaded with ctypes.

Metadata lives in pyproject.toml; this file only adds the C kernels. The extension is optional: without
a C compiler with OpenMP the install still succeeds and ``sweep`` falls back to impl='eager'.
Set ``SWEEP_PORTABLE=1`` to build without ``-march=native`` (e.g. for a wheel run on other machines).
"""
import os

from setuptools import Extension, setup

# 512-bit vectors where the machine has them: the stencil loops are compute-bound in cache, and gcc
# otherwise prefers 256-bit ones on AVX-512 machines.
native = [] if os.environ.get("SWEEP_PORTABLE") else ["-march=native", "-mprefer-vector-width=512"]

setup(
    ext_modules=[
        Extension(
            "sweep.propagator.c._sweep_acoustic",
            sources=["src/sweep/propagator/c/acoustic.c"],
            depends=["src/sweep/propagator/c/acoustic_impl.h", "src/sweep/propagator/c/acoustic_adjoint.h",
                     "src/sweep/propagator/c/acoustic_retreat.h"],
            extra_compile_args=["-O3", "-funroll-loops", "-fopenmp", "-std=gnu11", *native],
            extra_link_args=["-fopenmp"],
            optional=True,
        )
    ],
)
