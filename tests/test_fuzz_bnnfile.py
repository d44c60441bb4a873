"""Fuzz the .bnn reader: mutated, truncated and hostile files raise BnnFormatError, never crash, hang or
allocate what a length field claims. Mutations are re-sealed with a valid checksum half of the time, so
that they reach the header and array checks instead of stopping at the checksum."""
import hashlib
import json
import struct

import numpy as np
import pytest

from workbench.deploy import bnnfile
from workbench.deploy.bnnfile import BnnFormatError
from workbench.deploy.packed import PackedLayer, PackedModel


def seed_file():
    rng = np.random.default_rng(1)
    layers = [
        PackedLayer("0_conv2d", "binary_conv2d", {"filters": 8, "kernel_size": 3},
                    {"weight_bits": rng.integers(0, 2**63, (8, 3, 3, 1), dtype=np.uint64),
                     "thresholds": rng.integers(-9, 9, 8).astype(np.int32), "flip": np.zeros(8, np.uint8)}),
        PackedLayer("1_flatten", "flatten", {}, {}),
        PackedLayer("2_dense", "binary_dense", {"units": 4},
                    {"weight_bits": rng.integers(0, 2**63, (4, 2), dtype=np.uint64),
                     "scale": np.ones(4, np.float32), "shift": np.zeros(4, np.float32)}),
    ]
    meta = {"input_shape": [1, 4, 4], "num_classes": 4, "class_names": list("abcd")}
    return bnnfile.to_bytes(PackedModel(meta, layers))


def reseal(data: bytes) -> bytes:
    body = data[:-32] if len(data) >= 32 else data
    return body + hashlib.sha256(body).digest()


def with_header(data: bytes, header: dict) -> bytes:
    """Replace the JSON header, keeping the array bytes where they were (so offsets stay meaningful)."""
    length = struct.unpack_from("<I", data, 12)[0]
    raw = json.dumps(header).encode()
    start = bnnfile._aligned(16 + length)
    new_start = bnnfile._aligned(16 + len(raw))
    body = data[:8] + struct.pack("<I", 1) + struct.pack("<I", len(raw)) + raw
    body += bytes(max(0, start - len(body)))
    return reseal(body + data[start:] if new_start <= start else body + data[new_start:])


def check(data: bytes, seen: set):
    """Load, accepting success or a BnnFormatError; remember which check fired (its first words)."""
    try:
        bnnfile.from_bytes(data)
    except BnnFormatError as error:
        seen.add(" ".join(str(error).split()[:2]))


def byte_mutations(rng, data):
    for _ in range(6000):
        mutated = bytearray(data)
        kind = rng.integers(4)
        if kind == 0:  # bit flips
            for _ in range(rng.integers(1, 4)):
                position = rng.integers(len(mutated))
                mutated[position] ^= 1 << int(rng.integers(8))
        elif kind == 1:  # byte overwrites
            position = rng.integers(len(mutated))
            mutated[position:position + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        elif kind == 2:  # truncation
            mutated = mutated[:rng.integers(len(mutated))]
        else:  # huge or random header length
            mutated[12:16] = struct.pack("<I", int(rng.choice([2**32 - 1, 2**24, len(data), rng.integers(2**32)])))
        yield bytes(mutated) if rng.integers(2) else reseal(bytes(mutated))


HOSTILE_VALUES = [2**62, -1, 10**30, 1.5, "64", None, [], {}, True, 2**31 - 1, [2**40, 2**40], [-3], "<u8", "O",
                  "|V8", [1] * 100]


def header_mutations(rng, data):
    length = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[16:16 + length])
    for _ in range(4000):
        mutated = json.loads(json.dumps(header))
        layer = mutated["layers"][int(rng.integers(len(mutated["layers"])))]
        target = rng.integers(6)
        value = HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))]
        if target == 0 and layer["arrays"]:
            key = list(layer["arrays"])[int(rng.integers(len(layer["arrays"])))]
            field = ["dtype", "shape", "offset", "nbytes"][int(rng.integers(4))]
            layer["arrays"][key][field] = value
        elif target == 1:
            layer[["name", "op", "attrs", "arrays"][int(rng.integers(4))]] = value
        elif target == 2:
            mutated["meta"][["input_shape", "num_classes"][int(rng.integers(2))]] = value
        elif target == 3:
            mutated[["meta", "layers"][int(rng.integers(2))]] = value
        elif target == 4 and layer["arrays"]:  # a consistent but enormous declaration
            key = list(layer["arrays"])[0]
            layer["arrays"][key].update(dtype="<u8", shape=[2**30, 2**30], nbytes=2**63)
        else:
            mutated = value
        yield with_header(data, mutated)


def test_fuzz_byte_mutations_never_crash():
    data, seen = seed_file(), set()
    for mutated in byte_mutations(np.random.default_rng(0), data):
        check(mutated, seen)
    assert {"SHA-256 checksum", "not a", "header is"} <= seen


def test_fuzz_header_mutations_never_crash():
    data, seen = seed_file(), set()
    for mutated in header_mutations(np.random.default_rng(1), data):
        check(mutated, seen)
    # the mutations reach the field checks behind the checksum, not just the checksum
    assert len(seen) >= 8, seen


@pytest.mark.parametrize("text", ["[" * 100000, '{"meta": ' * 5000, "\xff\xfe", "1" * 5000, "null"])
def test_hostile_json_headers(text):
    data = seed_file()
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    body = data[:12] + struct.pack("<I", len(raw)) + raw
    with pytest.raises(BnnFormatError):
        bnnfile.from_bytes(reseal(body + bytes(64)))


def test_seed_file_is_valid():
    assert len(bnnfile.from_bytes(seed_file()).layers) == 3
