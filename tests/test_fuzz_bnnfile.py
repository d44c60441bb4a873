"""Fuzz the .bnn reader and the engine behind it, from real packed files (presets and the mixed and float networks of
tests/random_models.py, with random weights): mutated, truncated and hostile files raise BnnFormatError, never
crash, hang or allocate what a length field claims; every mutant the reader accepts runs in the engine on a
small batch, giving (N, num_classes) float32 logits or an EngineError, nothing else, within a bounded memory.
Mutations are re-sealed with a valid checksum half of the time, so that they reach the header, array and
program checks instead of stopping at the checksum."""

import hashlib
import json
import math
import re
import struct
import tracemalloc
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from random_models import FLOATS_SPEC, MIXED_SPEC, random_packed

from workbench.core.presets import preset
from workbench.deploy import bnnfile
from workbench.deploy.bnnfile import BnnFormatError
from workbench.deploy.engine import Engine, EngineError

SEED_SPECS = {
    "toy-mlp": preset("toy-mlp"),
    "binary-cnn": preset("binary-cnn"),
    "mixed": MIXED_SPEC,
    "floats": FLOATS_SPEC,
}
MEMORY_BOUND = 64 * 2**20  # what running one accepted mutant (load, prepare, two batches of 2) may allocate


def seed_bytes(index: int, spec: dict) -> bytes:
    """Seed file ``index``: ``spec`` with random weights, packed (tools/audit.py mutates the same seeds)."""
    return bnnfile.to_bytes(random_packed(spec, seed=index, zero_gamma=0))


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return {name: seed_bytes(i, spec) for i, (name, spec) in enumerate(SEED_SPECS.items())}


def reseal(data: bytes) -> bytes:
    body = data[:-32] if len(data) >= 32 else data
    return body + hashlib.sha256(body).digest()


def with_header(data: bytes, header) -> bytes:
    """Replace the JSON header, keeping the array bytes where they were (so offsets stay meaningful)."""
    length = struct.unpack_from("<I", data, 12)[0]
    raw = json.dumps(header).encode()
    start = bnnfile._aligned(16 + length)
    new_start = bnnfile._aligned(16 + len(raw))
    body = data[:8] + struct.pack("<I", 1) + struct.pack("<I", len(raw)) + raw
    body += bytes(max(0, start - len(body)))
    return reseal(body + data[start:] if new_start <= start else body + data[new_start:])


@dataclass
class Tally:
    """What the mutants did: rejected by the reader (which check), ran in the engine, or refused by it."""

    tried: int = 0
    rejected: int = 0
    ran: int = 0
    engine_errors: int = 0
    peak_bytes: int = 0
    seen: set = field(default_factory=set)

    def __str__(self):
        return (
            f"{self.tried} mutants: {self.rejected} rejected cleanly ({len(self.seen)} distinct checks), "
            f"{self.ran} accepted and ran, {self.engine_errors} accepted and refused by the engine (EngineError)"
            + (f", peak {self.peak_bytes / 2**20:.1f} MiB per accepted mutant traced" if self.peak_bytes else "")
        )


_WHERE = re.compile(r"^layer \d+ \(.*?, op '?\w+'?\): ")


def kind(error: Exception) -> str:
    """Which check fired: the message's first words, without the layer it names."""
    return re.sub(r"\d+", "#", " ".join(_WHERE.sub("", str(error)).split()[:3]))


def check(data: bytes, tally: Tally, how: str, measure: bool = False) -> None:
    """Load; an accepted mutant then runs in the engine on uint8 and float32 batches of 2. Anything but a
    BnnFormatError from the reader or an EngineError from the engine fails the test, naming the mutation.
    With ``measure``, every 4th accepted mutant's allocations (load to logits) are traced and bounded."""
    tally.tried += 1
    try:
        model = bnnfile.from_bytes(data)
    except BnnFormatError as error:
        tally.rejected += 1
        tally.seen.add(kind(error))
        return
    except Exception as error:
        raise AssertionError(
            f"mutant {tally.tried} ({how}): the reader crashed: {type(error).__name__}: {error}"
        ) from error
    measure = measure and (tally.ran + tally.engine_errors) % 4 == 0  # tracemalloc slows numpy down: a sample
    if measure:
        tracemalloc.start()
    try:
        engine = Engine(model, threads=1)
        rng = np.random.default_rng(tally.tried)
        u = rng.integers(0, 256, (2, *model.input_shape), dtype=np.uint8)
        for x in (u, rng.normal(size=u.shape).astype(np.float32)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # float overflow in mutated weights is allowed
                logits = engine.logits(x)
            assert logits.shape == (2, model.num_classes) and logits.dtype == np.float32, (how, logits.shape)
        tally.ran += 1
    except EngineError:
        tally.engine_errors += 1
    except Exception as error:
        raise AssertionError(
            f"mutant {tally.tried} ({how}): accepted, then the engine crashed: {type(error).__name__}: {error}"
        ) from error
    finally:
        if measure:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            tally.peak_bytes = max(tally.peak_bytes, peak)
            assert peak < MEMORY_BOUND, f"mutant {tally.tried} ({how}) made the engine allocate {peak:,} bytes"


def byte_mutations(rng, data, count):
    for _ in range(count):
        mutated = bytearray(data)
        kind = int(rng.integers(4))
        if kind == 0:  # bit flips
            how = "bit flips"
            for _ in range(rng.integers(1, 4)):
                position = rng.integers(len(mutated))
                mutated[position] ^= 1 << int(rng.integers(8))
        elif kind == 1:  # byte overwrites
            position = rng.integers(len(mutated))
            how = f"4 random bytes at {position}"
            mutated[position : position + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        elif kind == 2:  # truncation
            how = "truncated"
            mutated = mutated[: rng.integers(len(mutated))]
        else:  # huge or random header length
            how = "header length"
            mutated[12:16] = struct.pack("<I", int(rng.choice([2**32 - 1, 2**24, len(data), rng.integers(2**32)])))
        sealed = bool(rng.integers(2))
        yield how + (" (resealed)" if sealed else ""), reseal(bytes(mutated)) if sealed else bytes(mutated)


HOSTILE_VALUES = [
    2**62,
    -1,
    0,
    10**30,
    1.5,
    float("nan"),
    float("inf"),
    1e308,
    "64",
    "same",
    "bits",
    None,
    [],
    {},
    True,
    2**31 - 1,
    [2**40, 2**40],
    [-3],
    [1, 1, 1],
    [2**12, 2**12, 1],
    "<u8",
    "O",
    "|V8",
    [1] * 100,
]
SAME_SIZE_DTYPES = {"<u8": "<f8", "<f8": "<u8", "<i4": "<f4", "<f4": "<i4", "|u1": "|i1", "|i1": "|u1"}


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def header_mutations(rng, data, count):
    length = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[16 : 16 + length])
    for _ in range(count):
        # a copy of what a mutation may change (the network spec in the meta, the bulk of the header, is shared)
        meta = dict(header["meta"], preprocessing=dict(header["meta"]["preprocessing"]))
        mutated = dict(header, meta=meta, layers=json.loads(json.dumps(header["layers"])))
        index = int(rng.integers(len(mutated["layers"])))
        layer = mutated["layers"][index]
        target = int(rng.integers(10))
        value = _pick(rng, HOSTILE_VALUES)
        arrays = list(layer["arrays"])
        how = f"layer {index} ({layer['op']}): "
        if target == 0 and arrays:
            key, name = _pick(rng, arrays), _pick(rng, ["dtype", "shape", "offset", "nbytes"])
            layer["arrays"][key][name] = value
            how += f"array {key} {name} = {value!r}"
        elif target == 1:
            name = _pick(rng, ["name", "op", "attrs", "arrays"])
            layer[name] = value
            how += f"{name} = {value!r}"
        elif target == 2:
            name = _pick(rng, ["input_shape", "num_classes", "class_names", "preprocessing"])
            mutated["meta"][name] = value
            how = f"meta {name} = {value!r}"
        elif target == 3:
            name = _pick(rng, ["meta", "layers"])
            mutated[name] = value
            how = f"header {name} = {value!r}"
        elif target == 4 and arrays:  # a consistent but enormous declaration
            layer["arrays"][arrays[0]].update(dtype="<u8", shape=[2**30, 2**30], nbytes=2**63)
            how += f"array {arrays[0]} enormous"
        elif target in (5, 6) and layer["attrs"]:  # an attr of the op: the program checks
            key = _pick(rng, sorted(layer["attrs"]))
            layer["attrs"][key] = value
            how += f"attr {key} = {value!r}"
        elif target == 7 and arrays:  # the same bytes read as another dtype: the op's dtype checks
            key = _pick(rng, arrays)
            declaration = layer["arrays"][key]
            declaration["dtype"] = SAME_SIZE_DTYPES[declaration["dtype"]]
            how += f"array {key} as {declaration['dtype']}"
        elif target == 8 and arrays:  # the same bytes in another shape: the op's shape checks
            key = _pick(rng, arrays)
            declaration = layer["arrays"][key]
            shape = declaration["shape"]
            declaration["shape"] = [math.prod(shape)] if rng.integers(2) or len(shape) < 2 else shape[::-1]
            how += f"array {key} shape {declaration['shape']}"
        elif target == 9:
            pre = mutated["meta"]["preprocessing"]
            name = _pick(rng, ["scale", "offset", "kind"])
            pre[name] = value
            how = f"meta preprocessing {name} = {value!r}"
        else:
            mutated = value
            how = f"header = {value!r}"
        yield how, with_header(data, mutated)


@pytest.mark.parametrize("name", SEED_SPECS)
def test_fuzz_byte_mutations_never_crash(seeds, name):
    tally = Tally()
    for how, mutated in byte_mutations(np.random.default_rng(0), seeds[name], 1500):
        check(mutated, tally, how)
    print(f"\n{name} byte mutations: {tally}")
    assert "SHA-# checksum mismatch:" in tally.seen and len(tally.seen) >= 10, tally.seen
    assert tally.ran >= 30, tally  # the mutants reach the engine, not just the reader's checks


@pytest.mark.parametrize("name", SEED_SPECS)
def test_fuzz_header_mutations_never_crash(seeds, name):
    tally = Tally()
    for how, mutated in header_mutations(np.random.default_rng(1), seeds[name], 1000):
        check(mutated, tally, how, measure=True)
    print(f"\n{name} header mutations: {tally}")
    # the mutations reach the field and program checks behind the checksum, not just the checksum
    assert len(tally.seen) >= 25, tally.seen
    assert any(k.startswith("attr ") for k in tally.seen) and any(k.startswith("array ") for k in tally.seen)
    assert any(k.startswith("meta field") for k in tally.seen), tally.seen
    assert tally.ran > 20, tally


@pytest.mark.parametrize("text", ["[" * 100000, '{"meta": ' * 5000, "\xff\xfe", "1" * 5000, "null"])
def test_hostile_json_headers(seeds, text):
    data = seeds["toy-mlp"]
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    body = data[:12] + struct.pack("<I", len(raw)) + raw
    with pytest.raises(BnnFormatError):
        bnnfile.from_bytes(reseal(body + bytes(64)))


def test_seed_files_are_valid_and_run(seeds):
    ops = set()
    for data in seeds.values():
        model = bnnfile.from_bytes(data)
        ops |= {layer.op for layer in model.layers}
        assert Engine(model).logits(np.zeros((1, *model.input_shape), np.uint8)).shape == (1, model.num_classes)
    assert len(ops) >= 14, ops
