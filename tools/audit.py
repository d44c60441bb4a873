"""Seeded audit of every input a user can hand the library: what each family of hostile inputs does.

Families: ``bnn`` (mutated .bnn files, loaded and run in the engine), ``datasets`` (malformed npz, CSV and IDX
files through load_dataset), ``specs`` (hostile network and training specs through validation), ``kernels``
(the public kernel functions called with hostile arguments), ``xnor`` (the compiled module called directly with
inconsistent buffers) and ``checkpoints`` (damaged and edited checkpoint files through Checkpoint.load).

Each try ends as one of: a **clean** error (the family's documented error types, docs/FORMAT.md "Errors"), an
**accepted** input (fine where the input may be valid), a **silent** acceptance (an input that breaks the format
or a stated limit, accepted), or a **crash** (any other exception, or the process killed by a signal). Flags on
top: **hang** (the try took more than ``--slow`` seconds, or was killed after ``--hang``) and **huge** (the try
traced more than ``--huge`` MiB of Python/NumPy allocations, grew the process's peak RSS by that much, raised
MemoryError, or was killed for growing the process by ``--kill`` MiB). Each family runs in a child process that
the parent watches (memory, time, signals) and restarts after the try that killed it, so one segfault or runaway
allocation costs one try, not the table.

    python tools/audit.py                       # all families, the default sizes, prints the table
    python tools/audit.py --family specs --seed 3 --scale 0.2
    PYTHONPATH=/tmp/before python tools/audit.py  # the same inputs against another checkout of the library

tests/test_audit.py runs it small (and whole, marked slow) and asserts no crash, hang, huge allocation or silent
acceptance.
"""

# ruff: noqa: B023 -- each case runs before its generator makes the next one: a closure reads its own case's values

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import importlib.util
import io
import json
import math
import os
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("bnn", "datasets", "specs", "kernels", "xnor", "checkpoints")
DEFAULT_TRIES = {"bnn": 1200, "datasets": 160, "specs": 420, "kernels": 600, "xnor": 300, "checkpoints": 200}
OUTCOMES = ("clean", "accepted", "silent", "crash")
REFUSE, EITHER = "refuse", "either"  # what a case must do: be refused, or may be accepted (it can be valid)


@dataclass
class Case:
    label: str
    expect: str
    run: Callable[[], object]


# ---------------------------------------------------------------------------------------------- .bnn files


def _fuzz_module():
    """The .bnn fuzz test's seeds and mutators (tests/test_fuzz_bnnfile.py), one generator for both."""
    sys.path.append(str(ROOT / "tests"))
    import test_fuzz_bnnfile  # lazy: pulls in torch and pytest, only for this family

    return test_fuzz_bnnfile


_INVALID_VALUES = ("nan", "inf", "1e+308", repr(10**30), repr(2**62), "'O'", "'|V8'", "[1099511627776, 1099511627776]")


def bnn_cases(rng: np.random.Generator, tries: int) -> Iterator[Case]:
    from workbench.deploy import bnnfile
    from workbench.deploy.bnnfile import BnnFormatError
    from workbench.deploy.engine import Engine, EngineError
    from workbench.deploy.packed import PackedModelError

    fuzz = _fuzz_module()
    seeds = []
    for i, spec in enumerate(fuzz.SEED_SPECS.values()):
        try:
            seeds.append(fuzz.seed_bytes(i, spec))
        except Exception as error:  # an older library may not pack every seed network: audit the others
            print(f"bnn: seed {spec['name']} skipped: {type(error).__name__}: {error}", file=sys.stderr)
    clean = (BnnFormatError, PackedModelError, EngineError)

    def run(data: bytes):
        def go():
            model = bnnfile.from_bytes(data)
            engine = Engine(model, threads=1)
            local = np.random.default_rng(len(data))
            u = local.integers(0, 256, (2, *model.input_shape), dtype=np.uint8)
            for x in (u, local.normal(size=u.shape).astype(np.float32)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    logits = engine.logits(x)
                if logits.shape != (2, model.num_classes) or logits.dtype != np.float32:
                    raise AssertionError(f"logits {logits.shape} {logits.dtype}")

        return go

    per_seed = max(tries // len(seeds), 6)
    for index, seed in enumerate(seeds):
        local = np.random.default_rng(int(rng.integers(2**31)) + index)
        n_struct = max(per_seed // 10, 2)
        n_bytes = (per_seed - n_struct) // 2
        for how, data in fuzz.byte_mutations(local, seed, n_bytes):
            changed = data != seed
            must = changed and ("resealed" not in how or how.startswith(("truncated", "header length")))
            yield Case(f"seed {index} {how}", REFUSE if must else EITHER, run(data)), clean
        for how, data in fuzz.header_mutations(local, seed, per_seed - n_struct - n_bytes):
            bad = "enormous" in how or (how.endswith(_INVALID_VALUES) and ": name = " not in how)  # names: free text
            if how.startswith("meta preprocessing") and how.endswith((repr(10**30), repr(2**62), "1e+308")):
                bad = False  # finite: a valid (if absurd) affine map; the engine refuses what overflows
            if "attr pad_value = " in how and how.endswith((repr(10**30), repr(2**62))):
                bad = False  # a float32 pad value: valid, if absurd (1e+308, past float32, must be refused)
            yield Case(f"seed {index} {how}", REFUSE if bad else EITHER, run(data)), clean
        for j in range(n_struct):  # format rules a byte mutation rarely hits: trailing bytes, padding bits
            if j % 2 == 0:
                yield Case(f"seed {index} trailing bytes", REFUSE, run(fuzz.reseal(seed[:-32] + bytes(8)))), clean
            else:
                yield Case(f"seed {index} padding bit set", REFUSE, run(_padding_bit(seed, fuzz, j))), clean


def _padding_bit(data: bytes, fuzz, j: int) -> bytes:
    """The seed with one padding bit of a packed weight array set (resealed): FORMAT.md says they are 0."""
    header = json.loads(data[16 : 16 + struct.unpack_from("<I", data, 12)[0]])
    mutated = bytearray(data)
    for layer in header["layers"]:
        k = layer.get("attrs", {}).get("k") or layer.get("attrs", {}).get("c")
        array = layer.get("arrays", {}).get("weight_bits")
        if array and isinstance(k, int) and k % 64:
            offset = array["offset"] + array["nbytes"] - 8  # the last word of the last row (offsets are absolute)
            mutated[offset + 7] |= 0x80  # bit 63: a padding bit when k % 64 != 0
            return fuzz.reseal(bytes(mutated))
    return fuzz.reseal(data[:-32] + bytes(j % 7 + 1))  # no padded array: trailing bytes instead


# ---------------------------------------------------------------------------------------------- datasets


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npz_declaring(shape: tuple, dtype: str = "<f4") -> bytes:
    """An .npz whose x.npy header declares ``shape`` but holds a few bytes only."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", npy)
        archive.writestr("y.npy", _npy(np.zeros(4, np.int64)))
    return buffer.getvalue()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _zip_bomb(uncompressed: int) -> bytes:
    """An .npz whose x array inflates to ``uncompressed`` bytes of zeros from about 1/1000 of that (kept in the
    family's temp folder: deflating a gigabyte takes seconds, and a child restarted after a kill builds its cases
    again)."""
    cached = Path(tempfile.gettempdir()) / f"bnn-audit-zip-bomb-{uncompressed}.npz"
    if cached.is_file():
        return cached.read_bytes()
    header = repr({"descr": "|u1", "fortran_order": False, "shape": (uncompressed,)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w", force_zip64=True) as f,
    ):
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
        block = bytes(1 << 22)
        for _ in range(uncompressed // len(block)):
            f.write(block)
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(cached)
    return buffer.getvalue()


def _idx(array, magic: bytes | None = None, dims: tuple | None = None) -> bytes:
    array = np.asarray(array)
    code = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}[
        array.dtype.kind + str(array.dtype.itemsize)
    ]
    dims = array.shape if dims is None else dims
    head = magic or bytes([0, 0, code, len(dims)])
    return head + struct.pack(f">{len(dims)}I", *dims) + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _csv(rows: list[str]) -> bytes:
    return "\n".join(rows).encode()


def _dataset_templates(rng: np.random.Generator) -> list[tuple[str, str, dict[str, bytes]]]:
    """(label, expectation, {file name: bytes}); the first file is the one loaded."""
    n = int(rng.integers(8, 40))
    x = rng.integers(0, 256, (n, 1, 4, 4)).astype(np.uint8)
    y = (np.arange(n) % 3).astype(np.uint8)
    good_rows = ["label,a,b"] + [f"{i % 2},{i},{-i}" for i in range(n)]
    big = int(rng.integers(2**31, 2**40))
    choice = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    return [
        # CSV
        (
            "csv label 1e9",
            EITHER,
            {"d.csv": _csv(["label,a"] + [f"{choice(['0', '1e9'])},{i}" for i in range(n)] + ["1e9,1"])},
        ),
        ("csv label huge int", EITHER, {"d.csv": _csv(["label,a", f"{big},1", "0,2", "0,3"])}),
        ("csv negative label", EITHER, {"d.csv": _csv(["label,a", "-5,1", "0,2", "-5,3", "0,4"])}),
        ("csv fractional label", REFUSE, {"d.csv": _csv(["label,a", "0.5,1", "1,2", "0,3"])}),
        ("csv NaN label", REFUSE, {"d.csv": _csv(["label,a", "nan,1", "1,2", "0,3"])}),
        ("csv inf feature", REFUSE, {"d.csv": _csv(["label,a", "0,inf", "1,2", "0,3", "1,4"])}),
        ("csv NaN feature", REFUSE, {"d.csv": _csv(["label,a", "0,nan", "1,2", "0,3", "1,4"])}),
        ("csv 1e308 feature", EITHER, {"d.csv": _csv(["label,a", "0,1e308", "1,2", "0,3", "1,4"])}),
        ("csv 1e999 feature", REFUSE, {"d.csv": _csv(["label,a", "0,1e999", "1,2", "0,3", "1,4"])}),
        ("csv no label column", REFUSE, {"d.csv": _csv(["a,b"] + [f"{i},{i}" for i in range(n)])}),
        ("csv ragged rows", REFUSE, {"d.csv": _csv(["label,a,b", "0,1", "1,2,3,4", "0,1,1"])}),
        ("csv text feature", REFUSE, {"d.csv": _csv(["label,a", "0,abc", "1,2"])}),
        ("csv empty", REFUSE, {"d.csv": b""}),
        ("csv header only", REFUSE, {"d.csv": b"label,a,b\n"}),
        ("csv header-only 2 MB", REFUSE, {"d.csv": b"label" + b",a" * (1 << 20)}),
        ("csv binary garbage", REFUSE, {"d.csv": rng.integers(0, 256, 300, dtype=np.uint8).tobytes()}),
        ("csv bad input_shape", REFUSE, {"d.csv": _csv(["# input_shape: 3,3", *good_rows])}),
        ("csv huge input_shape", REFUSE, {"d.csv": _csv([f"# input_shape: {big},{big}", *good_rows])}),
        ("csv hostile value_range", REFUSE, {"d.csv": _csv(["# value_range: nan,inf", *good_rows])}),
        ("csv one class", EITHER, {"d.csv": _csv(["label,a"] + [f"0,{i}" for i in range(n)])}),
        ("csv two rows", EITHER, {"d.csv": _csv(["label,a", "0,1", "1,2"])}),
        ("csv BOM", EITHER, {"d.csv": b"\xef\xbb\xbf" + _csv(good_rows)}),
        ("csv many columns", REFUSE, {"d.csv": b"label," + b"a," * 200_000 + b"a\n0" + b",1" * 200_001}),
        # npz
        ("npz not a zip", REFUSE, {"d.npz": rng.integers(0, 256, 200, dtype=np.uint8).tobytes()}),
        ("npz truncated", REFUSE, {"d.npz": _npz(x=x, y=y)[: int(rng.integers(30, 200))]}),
        ("npz no y", REFUSE, {"d.npz": _npz(x=x)}),
        ("npz no x", REFUSE, {"d.npz": _npz(y=y)}),
        ("npz object array", REFUSE, {"d.npz": _npz(x=np.array([{"a": 1}] * n, dtype=object), y=y)}),
        ("npz string labels", REFUSE, {"d.npz": _npz(x=x, y=np.array(["a"] * n))}),
        ("npz float labels", REFUSE, {"d.npz": _npz(x=x, y=y + 0.5)}),
        ("npz NaN inputs", REFUSE, {"d.npz": _npz(x=np.full((n, 3), np.nan, np.float32), y=y)}),
        ("npz inf inputs", REFUSE, {"d.npz": _npz(x=np.full((n, 3), np.inf, np.float32), y=y)}),
        ("npz complex inputs", REFUSE, {"d.npz": _npz(x=x.astype(np.complex64), y=y)}),
        ("npz length mismatch", REFUSE, {"d.npz": _npz(x=x, y=y[:-1])}),
        ("npz scalar x", REFUSE, {"d.npz": _npz(x=np.float32(1), y=y)}),
        ("npz empty", REFUSE, {"d.npz": _npz(x=np.zeros((0, 3), np.float32), y=np.zeros(0, np.int64))}),
        ("npz label 2**40", EITHER, {"d.npz": _npz(x=x, y=np.where(y == 1, 2**40, y).astype(np.int64))}),
        ("npz 2-D labels", REFUSE, {"d.npz": _npz(x=x, y=np.stack([y, y], 1))}),
        ("npz declared shape 2**40", REFUSE, {"d.npz": _npz_declaring((2**40,))}),
        ("npz declared shape (2**20, 2**20)", REFUSE, {"d.npz": _npz_declaring((2**20, 2**20))}),
        ("npz bad input_shape", REFUSE, {"d.npz": _npz(x=x.reshape(n, -1), y=y, input_shape=np.array([5, 5]))}),
        ("npz x_test mismatch", REFUSE, {"d.npz": _npz(x=x, y=y, x_test=x[:, :, :2], y_test=y)}),
        ("npz class_names wrong count", REFUSE, {"d.npz": _npz(x=x, y=y, class_names=np.array(["a"]))}),
        # IDX
        ("idx bad magic", REFUSE, {"d-images.idx": _idx(x[:, 0], magic=b"\x01\x02\x08\x03"), "d-labels.idx": _idx(y)}),
        (
            "idx unknown type",
            REFUSE,
            {"d-images.idx": _idx(x[:, 0], magic=b"\x00\x00\x07\x03"), "d-labels.idx": _idx(y)},
        ),
        ("idx truncated", REFUSE, {"d-images.idx": _idx(x[:, 0])[:-5], "d-labels.idx": _idx(y)}),
        ("idx trailing bytes", REFUSE, {"d-images.idx": _idx(x[:, 0]) + b"\0", "d-labels.idx": _idx(y)}),
        (
            "idx declares 60 GB",
            REFUSE,
            {"d-images.idx": _idx(x[:, 0], dims=(60000, 1000, 1000)), "d-labels.idx": _idx(y)},
        ),
        (
            "idx declares 2**32-1 dims",
            REFUSE,
            {"d-images.idx": _idx(x[:, 0], dims=(2**32 - 1, 2**32 - 1, 1)), "d-labels.idx": _idx(y)},
        ),
        ("idx label count mismatch", REFUSE, {"d-images.idx": _idx(x[:, 0]), "d-labels.idx": _idx(y[:-1])}),
        ("idx labels 2-D", REFUSE, {"d-images.idx": _idx(x[:, 0]), "d-labels.idx": _idx(np.stack([y, y], 1))}),
        ("idx float labels", REFUSE, {"d-images.idx": _idx(x[:, 0]), "d-labels.idx": _idx(y.astype(np.float32) + 0.5)}),
        (
            "idx NaN images",
            REFUSE,
            {"d-images.idx": _idx(np.full((n, 4, 4), np.nan, np.float32)), "d-labels.idx": _idx(y)},
        ),
        ("idx no labels file", REFUSE, {"d-images.idx": _idx(x[:, 0])}),
        ("idx empty", REFUSE, {"d-images.idx": b"", "d-labels.idx": _idx(y)}),
        ("idx header only", REFUSE, {"d-images.idx": b"\x00\x00\x08\x03", "d-labels.idx": _idx(y)}),
        (
            "idx.gz corrupt",
            REFUSE,
            {
                "d-images.idx.gz": gzip.compress(_idx(x[:, 0]))[:-12] + bytes(12),
                "d-labels.idx.gz": gzip.compress(_idx(y)),
            },
        ),
        (
            "idx.gz truncated",
            REFUSE,
            {"d-images.idx.gz": gzip.compress(_idx(x[:, 0]))[:40], "d-labels.idx.gz": gzip.compress(_idx(y))},
        ),
        (
            "idx.gz declares 2 GB of zeros",
            REFUSE,
            {
                "d-images.idx.gz": gzip.compress(
                    _idx(np.zeros((1, 1, 1), np.uint8), dims=(2000, 1000, 1000)) + bytes(1 << 22)
                ),
                "d-labels.idx.gz": gzip.compress(_idx(y)),
            },
        ),
        (
            "idx label 255 of 3 images",
            EITHER,
            {"d-images.idx": _idx(x[:3, 0]), "d-labels.idx": _idx(np.array([0, 255, 0], np.uint8))},
        ),
    ]


def dataset_cases(rng: np.random.Generator, tries: int) -> Iterator[Case]:
    from workbench.core.data import DataError, load_dataset

    folder = Path(tempfile.mkdtemp(prefix="bnn-audit-data-"))
    bombs = [  # built once: inflating a gigabyte takes seconds
        ("npz zip bomb 1.2 GB", REFUSE, {"d.npz": _zip_bomb(1200 << 20)}),
    ]
    count = 0
    while count < tries:
        for label, expect, files in bombs + _dataset_templates(rng):
            if count >= tries:
                return
            case_dir = folder / f"{count:05d}"

            def go(case_dir=case_dir, files=files):
                case_dir.mkdir()
                for name, content in files.items():
                    (case_dir / name).write_bytes(content)
                return load_dataset(str(case_dir / next(iter(files))), seed=0)

            count += 1
            yield Case(label, expect, go), (DataError,)
        bombs = []


# ---------------------------------------------------------------------------------------------- specs

_SPEC_VALUES = [
    float("nan"),
    float("inf"),
    -float("inf"),
    1e308,
    -1e308,
    10**30,
    -1,
    0,
    1.5,
    True,
    None,
    "1",
    "",
    [],
    {},
    [1] * 100,
    2**63,
]
_NONFINITE = (float("inf"), -float("inf"), 1e308, -1e308, 10**30, 2**63)
_NUMBER_FIELDS = {  # training spec fields the issue names (lr, clip, eps, gamma) and their neighbours
    ("optimizer", "lr"),
    ("weight_clip",),
    ("lr_schedule", "gamma"),
    ("optimizer", "momentum"),
    ("optimizer", "threshold"),
    ("optimizer", "gamma"),
    ("distillation", "alpha"),
    ("distillation", "temperature"),
    ("soft_binarization", "start_temperature"),
    ("validation_split",),
    ("test_split",),
    ("epochs",),
    ("batch_size",),
}


def _deep_shortcuts(depth: int) -> dict:
    layers = [{"type": "dense", "units": 4}]
    for _ in range(depth):
        layers = [{"type": "shortcut", "layers": layers}]
    return {"name": "deep", "input_shape": [4], "num_classes": 2, "layers": [*layers, {"type": "dense", "units": 2}]}


def _paths(value, prefix=()):
    """Every (path, value) in a nested spec."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield prefix + (key,), inner
            yield from _paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield prefix + (index,), inner
            yield from _paths(inner, prefix + (index,))


def _set(spec, path, value):
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def spec_cases(rng: np.random.Generator, tries: int) -> Iterator[Case]:
    from workbench.core.presets import preset
    from workbench.core.spec import SpecError, default_training_spec, validate_spec, validate_training_spec

    clean = (SpecError,)
    bases = [preset(name) for name in ("toy-mlp", "binary-cnn", "vgg-small")]
    training = default_training_spec()
    training_variants = [
        training,
        {**training, "optimizer": {"name": "bop", "lr": 0.01, "threshold": 1e-8, "gamma": 1e-4}},
        {
            **training,
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            "lr_schedule": {"name": "step", "step_size": 1, "gamma": 0.1},
        },
        {**training, "distillation": {"teacher": "float_twin", "alpha": 0.9, "temperature": 4.0}},
        {**training, "soft_binarization": {"start_temperature": 1.0, "end_temperature": 0.01}},
    ]
    fixed = []
    for depth in (8, 18, 22, 32, 33, 300, 3000):
        fixed.append(
            (f"shortcut nesting depth {depth}", REFUSE if depth > 32 else EITHER, validate_spec, _deep_shortcuts(depth))
        )
    for value in (float("inf"), 1e308, float("nan"), -1.0):
        for variant, path in (
            (0, ("optimizer", "lr")),
            (0, ("weight_clip",)),
            (1, ("optimizer", "gamma")),
            (2, ("lr_schedule", "gamma")),
            (2, ("optimizer", "momentum")),
            (3, ("distillation", "temperature")),
        ):
            spec = copy.deepcopy(training_variants[variant])
            _set(spec, path, value)
            fixed.append((f"training {'.'.join(path)} = {value!r}", REFUSE, validate_training_spec, spec))
        for base in bases[:2]:
            spec = copy.deepcopy(base)
            index = next(i for i, layer in enumerate(spec["layers"]) if layer["type"] == "batch_norm")
            spec["layers"][index]["eps"] = value
            fixed.append((f"{base['name']} batch_norm eps = {value!r}", REFUSE, validate_spec, spec))
            spec = copy.deepcopy(base)
            spec["layers"][0]["kernel_quantizer"] = {"name": "ste_sign", "clip": value}
            fixed.append((f"{base['name']} kernel_quantizer clip = {value!r}", REFUSE, validate_spec, spec))
    fixed += [
        (
            "units 10**9",
            REFUSE,
            validate_spec,
            {**bases[0], "layers": [{"type": "dense", "units": 10**9}, {"type": "dense", "units": 2}]},
        ),
        ("input_shape 2**20 x 2**20", REFUSE, validate_spec, {**bases[1], "input_shape": [1, 2**20, 2**20]}),
        (
            "1x20001 same conv",
            REFUSE,
            validate_spec,
            {
                **bases[1],
                "input_shape": [1, 1, 20001],
                "layers": [
                    {"type": "conv2d", "filters": 4, "kernel_size": [1, 20001], "padding": "same"},
                    {"type": "flatten"},
                    {"type": "dense", "units": 10},
                ],
            },
        ),
        ("not a dict", REFUSE, validate_spec, [1, 2]),
        (
            "layers 2*10**4",
            EITHER,
            validate_spec,
            {**bases[0], "layers": [{"type": "activation", "fn": "relu"}] * 20_000 + [{"type": "dense", "units": 2}]},
        ),
    ]
    for count, (label, expect, validate, spec) in enumerate(fixed):
        if count >= tries:
            return
        yield Case(label, expect, lambda v=validate, s=spec: v(s)), clean
    for count in range(len(fixed), tries):
        is_training = count % 3 == 0
        base = training_variants[count % len(training_variants)] if is_training else bases[count % len(bases)]
        spec = copy.deepcopy(base)
        paths = [path for path, _ in _paths(spec)]
        path = paths[int(rng.integers(len(paths)))]
        value = _SPEC_VALUES[int(rng.integers(len(_SPEC_VALUES)))]
        old = _get(spec, path)
        _set(spec, path, copy.deepcopy(value))
        hostile = isinstance(value, float) and math.isnan(value) or value in _NONFINITE or value in ([1] * 100, {})
        numeric_old = isinstance(old, (int, float)) and not isinstance(old, bool)
        # a non-finite or absurd number, or a list or dict where a number or a name was, is never a valid spec
        must = hostile and (numeric_old or isinstance(old, str) or (is_training and tuple(path) in _NUMBER_FIELDS))
        validate = validate_training_spec if is_training else validate_spec
        label = f"{'training' if is_training else base['name']} {'.'.join(map(str, path))} = {value!r:.40}"
        yield Case(label, REFUSE if must else EITHER, lambda v=validate, s=spec: v(s)), clean


def _get(spec, path):
    for key in path:
        spec = spec[key]
    return spec


# ---------------------------------------------------------------------------------------------- kernels

_THREADS = [0, -1, -(2**31), 10**6, 2**31, 2**63, 1.5, "2", None, True, float("nan")]
_KS = [-1, 2**31, 2**40, 1.5, "64", None, float("inf"), np.int64(-5), 10**30]


def _bits(rng, *shape):
    return rng.integers(0, 2**63, shape, dtype=np.uint64) & np.uint64(0x7FFFFFFFFFFFFFFF)


def kernel_cases(rng: np.random.Generator, tries: int) -> Iterator[Case]:
    from workbench.deploy import kernels

    def call(function, *args, **kwargs):
        return lambda: function(*args, **kwargs)

    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    for count in range(tries):
        kind = count % 8
        k = int(rng.integers(1, 200))
        w = (k + 63) // 64
        a, b = _bits(rng, 3, w), _bits(rng, 5, w)
        threshold, flip = rng.integers(-k, k, 5).astype(np.int32), np.zeros(5, np.uint8)
        hostile_array = pick(
            [
                a.astype(np.int64),
                a.astype(np.float64),
                a[:, ::-1] if w > 1 else a.T,
                a[None],
                a[0],
                np.empty((0,)),
                [[1, 2]],
                "bits",
                None,
                np.asfortranarray(_bits(rng, 3, 3)),
            ]
        )
        mutation = int(rng.integers(4))
        if kind == 0:  # xnor_gemm
            args = [a, b, k]
            if mutation == 0:
                args[0] = hostile_array
            elif mutation == 1:
                args[2] = pick(_KS + [k + 64, k - 64 if k > 64 else -k])
            elif mutation == 2:
                args[1] = _bits(rng, 5, w + 1)
            threads = pick(_THREADS) if mutation == 3 else 1
            label = f"xnor_gemm k={args[2]!r:.20} threads={threads!r}"
            yield (
                Case(label, _kernel_expect(mutation, threads), call(kernels.xnor_gemm, *args, threads=threads)),
                (ValueError,),
            )
        elif kind == 1:  # thresholds
            bad = pick(
                [
                    threshold.astype(np.float64) + 0.5,
                    np.full(5, np.nan),
                    threshold[:3],
                    np.full(5, 2**40),
                    "t",
                    None,
                    threshold.reshape(5, 1),
                ]
            )
            badflip = pick([np.full(5, 2, np.uint8), flip[:2], np.full(5, -1), "f", [True] * 6])
            args = (a, b, k, bad if mutation < 2 else threshold, badflip if mutation >= 2 else flip)
            yield (
                Case(
                    f"xnor_gemm_threshold thresholds/flip #{mutation}",
                    REFUSE,
                    call(kernels.xnor_gemm_threshold, *args, threads=1),
                ),
                (ValueError,),
            )
        elif kind == 2:  # uint8 rows
            u = rng.integers(0, 256, (3, k), dtype=np.uint8)
            bad_u = pick(
                [u.astype(np.int16), u.astype(np.float32), u[:, :-1] if k > 1 else u[:0, :0], u.T, u[None], "u"]
            )
            args = (
                bad_u if mutation < 2 else u,
                b if mutation != 2 else _bits(rng, 5, w + 2),
                pick(_KS) if mutation == 3 else k,
            )
            yield (
                Case(f"xnor_gemm_uint8 #{mutation}", REFUSE, call(kernels.xnor_gemm_uint8, *args, threads=1)),
                (ValueError,),
            )
        elif kind == 3:  # conv
            c = int(rng.integers(1, 130))
            cw = (c + 63) // 64
            x, weights = _bits(rng, 1, 6, 6, cw), _bits(rng, 4, 3, 3, cw)
            stride = pick([0, -1, -(2**40), "1", (1,), (1, 2, 3), 1.5, None, (0, 1)]) if mutation == 0 else 1
            padding = (
                pick(["bogus", -1, (1, 2, 3), 2**40, (-1, 0), None, 1.5, (2**62, 2**62)]) if mutation == 1 else "same"
            )
            args = (
                x if mutation != 2 else _bits(rng, 1, 6, 6, cw + 1),
                weights,
                c if mutation != 3 else pick(_KS + [c + 64]),
            )
            yield (
                Case(
                    f"xnor_conv2d stride={stride!r} padding={padding!r:.20} #{mutation}",
                    REFUSE,
                    call(kernels.xnor_conv2d, *args, stride=stride, padding=padding, threads=1),
                ),
                (ValueError,),
            )
        elif kind == 4:  # pooling and packing
            x = _bits(rng, 1, 4, 4, w)
            target = pick(
                [
                    call(kernels.max_pool2d_bits, x.astype(np.int64)),
                    call(kernels.max_pool2d_bits, x[0]),
                    call(kernels.max_pool2d_bits, x, flipped=np.ones(w * 64 + 1, bool)),
                    call(kernels.max_pool2d_bits, x, flipped="yes"),
                    call(kernels.pack_signs, np.array([1.0, np.nan])),
                    call(kernels.pack_signs, "abc"),
                    call(kernels.pack_signs, np.array([1 + 2j])),
                    call(kernels.unpack_signs, a, pick(_KS)),
                    call(kernels.unpack_signs, a.astype(np.float64), k),
                ]
            )
            yield Case(f"pool/pack #{count}", REFUSE, target), (ValueError,)
        elif kind == 5:  # im2col
            x = rng.integers(0, 256, (1, 2, 6, 6), dtype=np.uint8)
            args = pick(
                [
                    (x, 0, 3),
                    (x, 3, -1),
                    (x, 2**40, 3),
                    (x.astype(np.float32), 3, 3),
                    (x[0], 3, 3),
                    (x, 7, 7),
                    (x, "3", 3),
                    (x, 3, 3.5),
                ]
            )
            yield (
                Case(f"im2col_uint8 {args[1]!r} {args[2]!r}", REFUSE, call(kernels.im2col_uint8, *args)),
                (ValueError,),
            )
        elif kind == 6:  # bound calls: bad activations after good weights
            bound = kernels.bind_gemm(b, k, threshold, flip, threads=1)
            bad = pick(
                [a.astype(np.int64), _bits(rng, 3, w + 1), a[None], np.empty((0,)), "a", a[:, ::-1] if w > 1 else a.T]
            )
            yield Case(f"bind_gemm()(bad a) #{count}", REFUSE, call(bound, bad)), (ValueError,)
        else:  # bind with hostile weights or threads
            threads = pick(_THREADS)
            yield (
                Case(
                    f"bind_conv2d threads={threads!r}",
                    _kernel_expect(3, threads),
                    call(kernels.bind_conv2d, _bits(rng, 4, 3, 3, 1), 5, threads=threads),
                ),
                (ValueError,),
            )


def _kernel_expect(mutation: int, threads) -> str:
    if mutation != 3:
        return REFUSE if mutation in (0, 2) else EITHER
    valid = isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1
    return EITHER if valid or threads is None else REFUSE  # None: the default; large counts are clamped


def xnor_cases(rng: np.random.Generator, tries: int) -> Iterator[Case]:
    """The compiled functions called directly with buffers that do not agree: memory safety, not message style."""
    from workbench.deploy import _xnor

    path = _xnor.SCALAR
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    for count in range(tries):
        m, n, w = (int(v) for v in rng.integers(1, 6, 3))
        k = w * 64
        a, b = _bits(rng, m, w), _bits(rng, n, w)
        out = np.zeros((m, n), np.int32)
        kind = count % 7
        threads = pick([1, 2, 0, -1, 10**6]) if rng.integers(3) == 0 else 1
        if kind == 0:
            # buffers that disagree; a k that disagrees with the words is only wrong arithmetic, not unsafe
            args = pick([(a, _bits(rng, n, w + 3), k, out), (a, b, k, np.zeros((m + 1, n), np.int32))])
            target, label = lambda args=args: _xnor.gemm(*args, path, threads), "gemm"
        elif kind == 1:
            bits_out = np.zeros((m, (n + 63) // 64), np.uint64)
            th, fl = pick(
                [(np.zeros(n + 1, np.int32), np.zeros(n, np.uint8)), (np.zeros(n, np.int32), np.zeros(n + 2, np.uint8))]
            )
            target, label = lambda: _xnor.gemm_threshold(a, b, k, th, fl, bits_out, path, threads), "gemm_threshold"
        elif kind == 2:
            u = rng.integers(0, 256, (m, k + pick([1, 64, 65])), dtype=np.uint8)  # rows longer than b's words
            target, label = lambda: _xnor.gemm_uint8(u, b, out, path, threads), "gemm_uint8"
        elif kind == 3:
            x, weights = _bits(rng, 1, 5, 5, w), _bits(rng, 3, 3, 3, w + pick([0, 1]))
            stride, pad = pick([(1, 1), (0, 1), (-1, -1)]), pick([(0, 0), (-5, -5), (100, 100)])
            target = lambda: _xnor.conv2d(  # noqa: E731
                x,
                weights,
                k,
                stride[0],
                stride[1],
                pad[0],
                pad[1],
                np.zeros((1, 1, 1, 1), np.int32),
                None,
                None,
                path,
                threads,
            )  # noqa: E731
            label = f"conv2d stride {stride} pad {pad}"
        elif kind == 4:
            x = _bits(rng, 1, 4, 4, w)
            target, label = (
                lambda: _xnor.pool2x2(x, np.zeros(w + 2, np.uint64), np.zeros((1, 1, 1, w), np.uint64)),
                "pool2x2",
            )
        elif kind == 5:
            x = rng.integers(0, 256, (1, 2, 6, 6), dtype=np.uint8)
            kh = pick([3, 9, 0, -3])
            target = lambda: _xnor.im2col_uint8(x, kh, 3, 1, 1, 0, 0, 4, 4, np.zeros((2, 2), np.uint8))  # noqa: E731
            label = f"im2col_uint8 kh={kh}"
        else:  # buffers that agree, a hostile thread count (0 corrupted the heap, -1 ended the process)
            threads = pick([0, -1, -(2**31), 10**6, 2**31 - 1])
            target, label = lambda: _xnor.gemm(a, b, k, out, path, threads), "gemm (consistent buffers)"
            yield Case(f"_xnor.{label} threads={threads}", REFUSE if threads < 1 else EITHER, target), (Exception,)
            continue
        yield Case(f"_xnor.{label} threads={threads}", REFUSE, target), (Exception,)


# ---------------------------------------------------------------------------------------------- checkpoints


def _safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    length = struct.unpack_from("<Q", data, 0)[0]
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _safetensors_join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def checkpoint_cases(rng: np.random.Generator, tries: int) -> Iterator[Case]:
    import torch  # lazy: only this family needs torch directly

    from workbench.core.presets import preset
    from workbench.train import checkpoint as module
    from workbench.train.model import build_model

    folder = Path(tempfile.mkdtemp(prefix="bnn-audit-ckpt-"))
    torch.manual_seed(0)
    model = build_model(preset("toy-mlp"))
    original = (
        module.Checkpoint(epoch=3, model=model.state_dict(), meta={"run": "audit"})
        .save(folder / "seed.safetensors")
        .read_bytes()
    )
    digest = getattr(module, "_digest", None)

    def resealed(data: bytes) -> bytes:
        """Recompute the sha256 the way save() does, so that an edit reaches the checks behind it."""
        if digest is None:
            return data
        header, body = _safetensors_parts(data)
        metadata = header.get("__metadata__", {})
        if "sha256" not in metadata:
            return data
        path = folder / "reseal.safetensors"
        path.write_bytes(data)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        metadata["sha256"] = digest(tensors, metadata)
        return _safetensors_join(header, body)

    def load(data: bytes, index: int):
        def go():
            path = folder / f"{index:05d}.safetensors"
            path.write_bytes(data)
            return module.Checkpoint.load(path)

        return go

    header, body = _safetensors_parts(original)
    for count in range(tries):
        kind = count % 5
        data = bytearray(original)
        if kind == 0:  # flipped bytes in the tensors
            for _ in range(int(rng.integers(1, 21))):
                position = len(data) - len(body) + int(rng.integers(len(body)))
                data[position] ^= 1 << int(rng.integers(8))
            yield Case("flipped tensor bytes", REFUSE, load(bytes(data), count)), (ValueError, FileNotFoundError)
        elif kind == 1:
            yield (
                Case("truncated", REFUSE, load(bytes(data[: int(rng.integers(len(data)))]), count)),
                (ValueError, FileNotFoundError),
            )
        elif kind == 2:  # metadata edits, resealed half of the time
            edited = copy.deepcopy(header)
            field_name = ["epoch", "meta", "format"][int(rng.integers(3))]
            value = ["99", "-3", "abc", "", "1e9", "[]", "{", "3 "][int(rng.integers(8))]
            edited["__metadata__"][field_name] = value
            sealed = bool(rng.integers(2))
            data = _safetensors_join(edited, body)
            data = resealed(data) if sealed else data
            # a resealed epoch "99" is a well-formed file: only the run it belongs to can tell it is wrong
            expect = EITHER if sealed and field_name == "epoch" and value == "99" else REFUSE
            yield (
                Case(f"metadata {field_name}={value!r}{' (resealed)' if sealed else ''}", expect, load(data, count)),
                (ValueError, FileNotFoundError),
            )
        elif kind == 3:  # a NaN weight
            edited = bytearray(body)
            offset = header[next(key for key in header if key != "__metadata__")]["data_offsets"][0]
            edited[offset : offset + 4] = struct.pack("<f", float("nan"))
            data = _safetensors_join(header, bytes(edited))
            sealed = bool(rng.integers(2))
            yield (
                Case(
                    f"NaN weight{' (resealed)' if sealed else ''}",
                    EITHER if sealed else REFUSE,  # resealed: a well-formed checkpoint of a diverged run
                    load(resealed(data) if sealed else data, count),
                ),
                (ValueError, FileNotFoundError),
            )
        else:  # hostile header
            raw = [
                b"\xff" * 8,
                struct.pack("<Q", 2**62),
                struct.pack("<Q", 10) + b"{",
                original[:8] + b"[" * 5000,
                b"",
            ][int(rng.integers(5))]
            yield Case("hostile header", REFUSE, load(raw + bytes(16), count)), (ValueError, FileNotFoundError)


GENERATORS = {
    "bnn": bnn_cases,
    "datasets": dataset_cases,
    "specs": spec_cases,
    "kernels": kernel_cases,
    "xnor": xnor_cases,
    "checkpoints": checkpoint_cases,
}


# ---------------------------------------------------------------------------------------------- child: run tries


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def child(family: str, seed: int, tries: int, start: int, out: Path, huge_mib: float, slow: float) -> None:
    """Run tries start.. of a family, one JSON line per try ({"i", "begin"} first, so a kill names its try)."""
    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
    generators = dict(GENERATORS)
    extra = os.environ.get("BNN_AUDIT_EXTRA_FAMILY")  # a planted family (tests/test_audit.py tests the watcher)
    if extra:
        spec = importlib.util.spec_from_file_location("audit_extra", extra)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        generators["extra"] = module.cases
    with open(out, "a") as log:
        for index, (case, clean) in enumerate(generators[family](rng, tries)):
            if index < start:
                continue
            log.write(json.dumps({"i": index, "begin": True, "label": case.label}) + "\n")
            log.flush()
            result = _try(case, clean, huge_mib, slow)
            log.write(json.dumps({"i": index, **result}) + "\n")
            log.flush()


def _try(case: Case, clean: tuple, huge_mib: float, slow: float) -> dict:
    flags, detail = [], ""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.run()
        outcome = "silent" if case.expect == REFUSE else "accepted"
    except MemoryError as error:
        outcome, detail = "crash", f"MemoryError: {error}"
        flags.append("huge")
    except clean as error:
        outcome, detail = "clean", f"{type(error).__name__}: {str(error)[:160]}"
    except BaseException as error:  # noqa: BLE001 (the point: anything else is a finding)
        if isinstance(error, KeyboardInterrupt):
            raise
        outcome, detail = "crash", f"{type(error).__name__}: {str(error)[:160]}"
    seconds = time.perf_counter() - began
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) * 1024
    if max(traced, grown) > huge_mib * 2**20 and "huge" not in flags:
        flags.append("huge")
    if seconds > slow:
        flags.append("hang")
    return {
        "outcome": outcome,
        "flags": flags,
        "label": case.label,
        "detail": detail,
        "seconds": round(seconds, 3),
        "traced": traced,
    }


# ---------------------------------------------------------------------------------------------- parent: watch


@dataclass
class Row:
    family: str
    tries: int = 0
    counts: dict = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    hangs: int = 0
    huge: int = 0
    examples: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, result: dict) -> None:
        self.tries += 1
        self.counts[result["outcome"]] += 1
        self.hangs += "hang" in result["flags"]
        self.huge += "huge" in result["flags"]
        if (result["outcome"] in ("crash", "silent") or result["flags"]) and len(self.examples) < 8:
            flags = "".join("+" + flag for flag in result["flags"])
            self.examples.append(f"{result['outcome']}{flags}: {result['label']} -> {result['detail']}")


def _child_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def run_family(
    family: str, seed: int, tries: int, *, hang: float, slow: float, huge: float, kill: float, env=None
) -> Row:
    """Run a family in child processes, restarting after a try that killed the child (signal, memory, time)."""
    row, start, began = Row(family), 0, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bnn-audit-") as folder:
        log = Path(folder) / "tries.jsonl"
        while True:
            command = [
                sys.executable,
                __file__,
                "--child",
                family,
                "--seed",
                str(seed),
                "--tries",
                str(tries),
                "--start",
                str(start),
                "--out",
                str(log),
                "--huge",
                str(huge),
                "--slow",
                str(slow),
            ]
            # the child's temporary files (cases, the zip bomb it keeps across restarts) go with this folder
            child_env = dict(os.environ if env is None else env, TMPDIR=folder)
            process = subprocess.Popen(command, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            baseline, last_progress, killed, seen = None, time.monotonic(), None, 0
            while process.poll() is None:
                time.sleep(0.05)
                lines = log.read_text().splitlines() if log.exists() else []
                if len(lines) != seen:
                    seen, last_progress = len(lines), time.monotonic()
                rss = _child_rss_kib(process.pid)
                if lines and baseline is None:
                    baseline = rss  # after the imports and seeds, at the first try
                if baseline is not None and rss - baseline > kill * 1024:
                    killed = ("huge", f"killed: the process grew by {(rss - baseline) / 1024:.0f} MiB")
                elif time.monotonic() - last_progress > hang:
                    killed = ("hang", f"killed: no answer in {hang:.0f} s")
                if killed:
                    process.kill()
                    process.wait()
                    break
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            results, begun = {}, None
            for line in log.read_text().splitlines() if log.exists() else []:
                entry = json.loads(line)
                if entry.get("begin"):
                    begun = entry
                else:
                    results[entry["i"]] = entry
            if begun is not None and begun["i"] not in results:  # the try the child died in
                if killed:
                    flag, detail = killed
                    outcome = "crash"
                else:
                    flag = None
                    code = process.returncode
                    name = signal.Signals(-code).name if code < 0 else f"exit code {code}"
                    detail = (
                        f"the process died ({name}) {stderr.strip().splitlines()[-1][:160] if stderr.strip() else ''}"
                    )
                    outcome = "crash"
                results[begun["i"]] = {
                    "i": begun["i"],
                    "outcome": outcome,
                    "flags": [flag] if flag else [],
                    "label": begun["label"],
                    "detail": detail,
                }
                with open(log, "a") as handle:  # so the next child's results follow on
                    handle.write(json.dumps(results[begun["i"]]) + "\n")
                start = begun["i"] + 1
                if start < tries:
                    continue
            elif process.returncode != 0:
                raise RuntimeError(f"audit child for {family} failed outside a try:\n{stderr[-3000:]}")
            break
    for index in sorted(results):
        row.add(results[index])
    row.seconds = time.perf_counter() - began
    return row


def table(rows: list[Row]) -> str:
    columns = ("family", "tries", "clean", "accepted", "crashes", "hangs", "huge", "silent", "seconds")
    widths = (12, 6, 6, 9, 8, 6, 5, 7, 8)
    lines = [
        " ".join(
            f"{name:<{width}}" if i == 0 else f"{name:>{width}}" for i, (name, width) in enumerate(zip(columns, widths))
        )
    ]
    lines.append("-" * len(lines[0]))
    for row in rows:
        c = row.counts
        values = (row.family, row.tries, c["clean"], c["accepted"], c["crash"], row.hangs, row.huge, c["silent"])
        cells = [f"{v:<{w}}" if i == 0 else f"{v:>{w}}" for i, (v, w) in enumerate(zip(values, widths))]
        lines.append(" ".join(cells) + f" {row.seconds:>8.0f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", action="append", choices=FAMILIES, help="a family to run (repeatable; default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every family's number of tries")
    parser.add_argument("--hang", type=float, default=60.0, help="seconds without an answer before a try is killed")
    parser.add_argument("--slow", type=float, default=10.0, help="seconds after which a finished try counts as a hang")
    parser.add_argument("--huge", type=float, default=256.0, help="MiB traced or of peak RSS growth that count as huge")
    parser.add_argument("--kill", type=float, default=2048.0, help="MiB of RSS growth at which a try is killed")
    parser.add_argument("--examples", action="store_true", help="list up to 8 findings per family")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tries", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.seed, args.tries, args.start, args.out, args.huge, args.slow)
        return 0
    import workbench  # lazy: only to say which checkout was audited

    print(f"library: {Path(workbench.__file__).parent}  seed {args.seed}  scale {args.scale}", flush=True)
    rows = []
    for family in args.family or FAMILIES:
        tries = max(int(DEFAULT_TRIES[family] * args.scale), 1)
        rows.append(
            run_family(family, args.seed, tries, hang=args.hang, slow=args.slow, huge=args.huge, kill=args.kill)
        )
        print(f"  {family}: {rows[-1].tries} tries in {rows[-1].seconds:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    if args.examples:
        for row in rows:
            for example in row.examples:
                print(f"  {row.family}: {example}")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=1))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
