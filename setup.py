"""Build of the compiled CPU back-end (impl='c'): a plain shared library loaded with ctypes.

Metadata lives in pyproject.toml; this file only adds the C kernels. The extension is optional: without
a C compiler the install still succeeds and ``sweep`` falls back to impl='eager'.
Set ``SWEEP_PORTABLE=1`` to build without ``-march=native`` (e.g. for a wheel run on other machines): on
x86-64 the kernels are then compiled for baseline x86-64, AVX2 + FMA and AVX-512, and the best one the CPU
supports is picked at run time (``sweep.propagator.c.code_path()``).
"""
import os
import platform
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# 512-bit vectors where the machine has them: the stencil loops are compute-bound in cache, and gcc
# otherwise prefers 256-bit ones on AVX-512 machines.
portable = bool(os.environ.get("SWEEP_PORTABLE"))
native = [] if portable else ["-march=native", "-mprefer-vector-width=512"]
dispatch = [("SWEEP_DISPATCH", "1")] if portable and platform.machine().lower() in ("x86_64", "amd64") else []

C = "src/sweep/propagator/c/"
# The 2-D and the 3-D kernels are translation units of their own, compiled in parallel.
sources = [C + "acoustic.c", C + "acoustic3d.c", C + "pool.c"]
if dispatch:  # two translation units per code path
    sources += [C + f"acoustic{dim}_{path}.c" for path in ("avx512", "avx2", "baseline") for dim in ("", "3d")]


class ParallelBuildExt(build_ext):
    """Compiles an extension's sources in parallel (2-D and 3-D kernels; the portable build has two per code path)."""

    def build_extension(self, ext):
        compiler = self.compiler
        original = compiler.compile

        def compile_parallel(sources, *args, **kwargs):
            if len(sources) < 2:
                return original(sources, *args, **kwargs)
            with ThreadPoolExecutor(max_workers=min(len(sources), os.cpu_count() or 1)) as pool:
                parts = list(pool.map(lambda src: original([src], *args, **kwargs), sources))
            return [obj for part in parts for obj in part]

        compiler.compile = compile_parallel
        try:
            super().build_extension(ext)
        finally:
            compiler.compile = original


setup(
    cmdclass={"build_ext": ParallelBuildExt},
    ext_modules=[
        Extension(
            "sweep.propagator.c._sweep_acoustic",
            sources=sources,
            depends=[C + name for name in ("acoustic_common.h", "acoustic_impl.h", "acoustic_adjoint.h",
                                           "acoustic_retreat.h", "acoustic_cell.h", "acoustic3d_common.h",
                                           "acoustic3d_impl.h", "acoustic3d_adjoint.h", "acoustic3d_retreat.h",
                                           "acoustic3d_instance.h", "acoustic_instance.h", "acoustic_instance3d.h",
                                           "pool.h")],
            define_macros=dispatch,
            # -g0: no debug information (Python's flags ask for it), a fifth less compile time.
            extra_compile_args=["-O3", "-funroll-loops", "-pthread", "-std=gnu11", "-g0", *native],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ],
)
