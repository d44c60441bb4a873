"""Build the Cython kernels in ext/ into the module ``workbench.deploy._xnor``.

Everything else lives in pyproject.toml. The kernels are compiled for plain x86-64 (or the host's
baseline on other architectures): SIMD paths are chosen at run time inside ext/xnor_simd.h through
per-function target attributes, never with -march=native, so the wheel runs on CPUs without AVX-512.

OpenMP: used when the compiler can build and link a program with ``-fopenmp``; otherwise (Apple's clang,
clang without libomp) or with ``BNN_WORKBENCH_OPENMP=0`` the module is built without it and runs every
call on one thread (``workbench.deploy._xnor.OPENMP`` says which).
"""

import os
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_FLAGS = ["-fopenmp"]


class BuildExt(build_ext):
    """build_ext that drops -fopenmp when it is switched off or the compiler cannot link it."""

    def build_extensions(self):
        wanted = os.environ.get("BNN_WORKBENCH_OPENMP", "auto").strip().lower()
        if wanted not in ("auto", "1", "0"):
            raise SystemExit(f"environment variable BNN_WORKBENCH_OPENMP: expected 0, 1 or auto, got {wanted!r}")
        use = wanted == "1" or (wanted == "auto" and self._openmp_links())
        if wanted == "auto" and not use:
            print("warning: the compiler cannot build with -fopenmp: building without OpenMP (one thread per call)")
        for ext in self.extensions:
            flags = [] if use else OPENMP_FLAGS
            ext.extra_compile_args = [f for f in ext.extra_compile_args if f not in flags]
            ext.extra_link_args = [f for f in ext.extra_link_args if f not in flags]
        super().build_extensions()

    def _openmp_links(self) -> bool:
        """Whether a small OpenMP program compiles and links with this compiler."""
        with tempfile.TemporaryDirectory() as folder:
            source = os.path.join(folder, "omp_probe.c")
            with open(source, "w") as file:
                file.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
            try:
                objects = self.compiler.compile([source], output_dir=folder, extra_postargs=OPENMP_FLAGS)
                self.compiler.link_executable(
                    objects, os.path.join(folder, "omp_probe"), output_dir=folder, extra_postargs=OPENMP_FLAGS
                )
            except Exception:  # CompileError, LinkError: whatever this compiler raises, the answer is no
                return False
        return True


extension = Extension(
    "workbench.deploy._xnor",
    sources=["ext/_xnor.pyx"],
    include_dirs=["ext", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3", "-ffp-contract=off", *OPENMP_FLAGS],
    extra_link_args=list(OPENMP_FLAGS),
)

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        [extension],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    ),
)
