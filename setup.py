"""Build the Cython kernels in ext/ into the module ``workbench.deploy._xnor``.

Everything else lives in pyproject.toml. The kernels are compiled for plain x86-64 (or the host's
baseline on other architectures): SIMD paths are chosen at run time inside ext/xnor_simd.h through
per-function target attributes, never with -march=native, so the wheel runs on CPUs without AVX-512.
"""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extension = Extension(
    "workbench.deploy._xnor",
    sources=["ext/_xnor.pyx"],
    include_dirs=["ext", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3", "-fopenmp"],
    extra_link_args=["-fopenmp"],
)

setup(
    ext_modules=cythonize(
        [extension],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )
)
