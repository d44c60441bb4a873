"""The .bnn file: round trips, alignment and checksum, clear errors on bad files, and no torch to read it."""
import hashlib
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

from workbench.deploy import bnnfile
from workbench.deploy.bnnfile import BnnFormatError
from workbench.deploy.packed import PackedLayer, PackedModel, PackedModelError


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    layers = [
        PackedLayer("0_flatten", "flatten", {}, {}),
        PackedLayer("1_dense", "input_dense", {"in_features": 12, "units": 70},
                    {"weight_bits": rng.integers(0, 2**63, (70, 1), dtype=np.uint64),
                     "scale": rng.normal(size=70), "shift": rng.normal(size=70)}),
        PackedLayer("3_dense", "binary_dense", {"in_features": 70, "units": 3},
                    {"weight_bits": rng.integers(0, 2**63, (3, 2), dtype=np.uint64),
                     "scale": rng.normal(size=3).astype(np.float32), "shift": np.zeros(3, np.float32)}),
    ]
    meta = {"input_shape": [12], "num_classes": 3, "class_names": ["a", "b", "c"],
            "preprocessing": {"kind": "none"}, "network_spec": {"name": "t"}, "test_accuracy": 0.5}
    return PackedModel(meta=meta, layers=layers)


def test_round_trip_keeps_meta_arrays_and_dtypes(tmp_path):
    packed = small_model()
    size = bnnfile.save(packed, tmp_path / "m.bnn")
    assert size == (tmp_path / "m.bnn").stat().st_size
    loaded = bnnfile.load(tmp_path / "m.bnn")
    assert loaded.meta == packed.meta
    assert [(l.name, l.op, l.attrs) for l in loaded.layers] == [(l.name, l.op, l.attrs) for l in packed.layers]
    for a, b in zip(packed.layers, loaded.layers):
        assert a.arrays.keys() == b.arrays.keys()
        for key in a.arrays:
            assert b.arrays[key].dtype == a.arrays[key].dtype
            np.testing.assert_array_equal(b.arrays[key], a.arrays[key])


def test_layout_follows_the_format_document():
    data = bnnfile.to_bytes(small_model())
    magic, version, header_length = struct.unpack_from("<8sII", data, 0)
    assert magic == b"\x89BNN\r\n\x1a\n" and version == 1
    header = json.loads(data[16:16 + header_length])
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    weights = header["layers"][1]["arrays"]["weight_bits"]
    assert weights["offset"] % 64 == 0 and weights["offset"] >= 16 + header_length
    raw = np.frombuffer(data, "<u8", count=70, offset=weights["offset"])
    np.testing.assert_array_equal(raw, small_model().layers[1].arrays["weight_bits"].ravel())
    assert len(data) % 64 == 32


def test_truncated_file_names_the_array_and_sizes(tmp_path):
    data = bnnfile.to_bytes(small_model())
    header_length = struct.unpack_from("<I", data, 12)[0]
    cut = bytearray(data[:16 + header_length + 40])
    cut += bytes(32)
    with pytest.raises(BnnFormatError, match=r"of array 'layers\.1\.weight_bits' lies beyond the end"):
        bnnfile.from_bytes(bytes(cut))


@pytest.mark.parametrize("mutation, message", [
    (lambda d: b"PK\x03\x04" + d[4:], "magic"),
    (lambda d: d[:8] + struct.pack("<I", 7) + d[12:], "version 7"),
    (lambda d: d[:12] + struct.pack("<I", 2**31) + d[16:], "header length"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum"),
    (lambda d: d[:10], "too short"),
])
def test_bad_files_raise_clear_errors(mutation, message):
    with pytest.raises(BnnFormatError, match=message):
        bnnfile.from_bytes(mutation(bnnfile.to_bytes(small_model())))


def test_load_names_the_file(tmp_path):
    path = tmp_path / "broken.bnn"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="broken.bnn"):
        bnnfile.load(path)


def test_writer_rejects_bad_layers():
    packed = small_model()
    packed.layers[2].arrays.pop("weight_bits")
    with pytest.raises(PackedModelError, match="3_dense.*weight_bits"):
        bnnfile.to_bytes(packed)
    packed = small_model()
    packed.layers[0].op = "conv3d"
    with pytest.raises(PackedModelError, match="unknown op"):
        bnnfile.to_bytes(packed)


def test_reader_imports_without_torch(tmp_path):
    bnnfile.save(small_model(), tmp_path / "m.bnn")
    code = ("import sys; from workbench.deploy import bnnfile; m = bnnfile.load(sys.argv[1]); "
            "assert len(m.layers) == 3; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.bnn")], check=True,
                   cwd=pathlib.Path(__file__).resolve().parent.parent)
