"""Every SIMD path of ext/xnor_simd.h bit-exact with the scalar one, also on AArch64 (NEON, under qemu-aarch64),
and the extension built without OpenMP (BNN_WORKBENCH_OPENMP=0, and clang without libomp) running one thread.

The C check (tests/c/xnor_simd_check.c) includes the kernel header itself, so it tests the very code the
extension compiles; the Python tests in test_kernels.py run the same paths through the module.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECK = ROOT / "tests" / "c" / "xnor_simd_check.c"


def _compile_and_run(compiler: list[str], runner: list[str], tmp_path: pathlib.Path) -> str:
    binary = tmp_path / "xnor_simd_check"
    build = subprocess.run(
        [*compiler, "-O2", "-I", str(ROOT / "ext"), str(CHECK), "-o", str(binary)], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([*runner, str(binary)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_every_host_path_is_bit_exact_with_scalar(tmp_path):
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler (gcc or cc) on PATH")
    out = _compile_and_run([compiler], [], tmp_path)
    assert "path scalar:" in out
    if os.uname().machine == "x86_64":
        from workbench.deploy import kernels

        for name in kernels.available_backends():  # what the CPU has, the C check must have run too
            assert f"path {name}: " in out, out


def test_neon_path_on_aarch64_is_bit_exact_with_scalar(tmp_path):
    compiler, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if compiler is None or qemu is None:
        pytest.skip("needs aarch64-linux-gnu-gcc and qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)")
    out = _compile_and_run([compiler, "-static"], [qemu], tmp_path)
    assert "path neon: " in out and "path scalar: " in out and "paths checked: 2" in out, out


def _build_without_openmp(tmp_path: pathlib.Path, env: dict) -> pathlib.Path:
    """setup.py build_ext from a copy of the sources (never touching the in-place module); returns the .so."""
    source = tmp_path / "src"
    (source / "ext").mkdir(parents=True)
    shutil.copy(ROOT / "setup.py", source)
    for name in ("_xnor.pyx", "xnor_simd.h"):
        shutil.copy(ROOT / "ext" / name, source / "ext")
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", "lib", "--build-temp", "tmp"],
        cwd=source,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (library,) = (source / "lib").rglob("_xnor*.so")
    assert b"libgomp" not in library.read_bytes() and b"libomp" not in library.read_bytes()
    return library


_ONE_THREAD_CHECK = textwrap.dedent(
    """
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("workbench.deploy._xnor", sys.argv[1])
    x = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(x)
    assert x.OPENMP is False
    assert x.team_size(4096, 4096, 64, 8) == 1
    rng = np.random.default_rng(0)
    k, words = 300, 5
    a = rng.integers(0, 2**63, (70, words), dtype=np.uint64)
    b = rng.integers(0, 2**63, (300, words), dtype=np.uint64)
    mask = np.uint64((1 << (k - 256)) - 1)
    a[:, -1] &= mask
    b[:, -1] &= mask
    signs = lambda bits: 1 - 2 * np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")[:, :k].astype(np.int64)
    out = np.empty((70, 300), dtype=np.int32)
    for path in (x.SCALAR, x.AVX2, x.AVX512):
        if x.cpu_supports(path):
            out[:] = 0
            x.gemm(a, b, k, out, path, 4)
            assert (out == signs(a) @ signs(b).T).all(), path
    print("one thread, exact")
    """
)


@pytest.mark.slow
def test_extension_builds_without_openmp_when_switched_off(tmp_path):
    library = _build_without_openmp(tmp_path, {"BNN_WORKBENCH_OPENMP": "0"})
    run = subprocess.run([sys.executable, "-c", _ONE_THREAD_CHECK, str(library)], capture_output=True, text=True)
    assert run.returncode == 0 and "one thread, exact" in run.stdout, run.stdout + run.stderr


@pytest.mark.slow
def test_extension_builds_with_a_compiler_whose_openmp_does_not_link(tmp_path):
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang not installed")
    probe = tmp_path / "probe.c"
    probe.write_text("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
    linked = subprocess.run([clang, "-fopenmp", str(probe), "-o", str(tmp_path / "probe")], capture_output=True)
    if linked.returncode == 0:
        pytest.skip("this clang links OpenMP (libomp installed): the fallback is tested with BNN_WORKBENCH_OPENMP=0")
    library = _build_without_openmp(tmp_path, {"CC": clang, "LDSHARED": f"{clang} -shared"})
    run = subprocess.run([sys.executable, "-c", _ONE_THREAD_CHECK, str(library)], capture_output=True, text=True)
    assert run.returncode == 0 and "one thread, exact" in run.stdout, run.stdout + run.stderr
