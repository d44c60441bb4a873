"""The .bnn file and the packed model it holds: round trips, alignment and checksum, clear errors on bad files
and on programs the engine cannot run (every attr, array and meta field checked at load), no torch to read it."""

import contextlib
import copy
import hashlib
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

from workbench.deploy import bnnfile, packed
from workbench.deploy.bnnfile import BnnFormatError
from workbench.deploy.engine import Engine
from workbench.deploy.kernels import pack_signs
from workbench.deploy.packed import PackedLayer, PackedModel, PackedModelError


def signs(rng, *shape):
    """Packed random +-1 weights along the last axis (padding bits 0, as the format requires)."""
    return pack_signs(rng.choice(np.array([-1, 1], np.int8), shape))


def small_model(seed=0):
    """flatten -> input_dense (12 -> 70, bits) -> binary_dense (70 -> 3, float logits)."""
    rng = np.random.default_rng(seed)
    layers = [
        PackedLayer("0_flatten", "flatten", {"in_shape": [12]}, {}),
        PackedLayer(
            "1_dense",
            "input_dense",
            {"k": 12, "in_shape": [12], "out_shape": [70], "output": "bits"},
            {"weight_bits": signs(rng, 70, 12), "scale": rng.normal(size=70), "shift": rng.normal(size=70)},
        ),
        PackedLayer(
            "3_dense",
            "binary_dense",
            {"k": 70, "in_shape": [70], "out_shape": [3], "output": "float"},
            {
                "weight_bits": signs(rng, 3, 70),
                "scale": rng.normal(size=3).astype(np.float32),
                "shift": np.zeros(3, np.float32),
            },
        ),
    ]
    meta = {
        "input_shape": [12],
        "num_classes": 3,
        "class_names": ["a", "b", "c"],
        "preprocessing": {"kind": "none"},
        "network_spec": {"name": "t"},
        "test_accuracy": 0.5,
    }
    return PackedModel(meta=meta, layers=layers)


def f32(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


def every_op_model(seed=0):
    """A hand-written program with every op the engine runs, on a (2, 6, 6) image; the layer order below is
    what the rejection cases index."""
    rng = np.random.default_rng(seed)
    conv = {"stride": 1, "padding": "same", "kernel_size": 3}
    layers = [
        PackedLayer(
            "0_conv2d",  # 0
            "input_conv2d",
            {"k": 2, "in_shape": [2, 6, 6], "out_shape": [4, 6, 6], "output": "bits", **conv},
            {"weight_bits": signs(rng, 4, 3, 3, 2), "scale": rng.normal(size=4), "shift": rng.normal(size=4)},
        ),
        PackedLayer(
            "1_max_pool",  # 1
            "max_pool_bits",
            {"pool_size": 2, "stride": 2, "out_shape": [4, 3, 3]},
            {"use_or": np.array([0, 1, 0, 1], np.uint8)},
        ),
        PackedLayer(
            "2_conv2d",  # 2
            "binary_conv2d",
            {"k": 4, "in_shape": [4, 3, 3], "out_shape": [5, 3, 3], "output": "float", **conv},
            {"weight_bits": signs(rng, 5, 3, 3, 4), "scale": f32(rng, 5), "shift": f32(rng, 5)},
        ),
        PackedLayer("3_activation", "activation", {"fn": "prelu"}, {"alpha": f32(rng, 5)}),  # 3
        PackedLayer("4_shortcut", "residual_begin", {"shape": [5, 3, 3]}, {}),  # 4
        PackedLayer(
            "4.0_conv2d",  # 5
            "quantize",
            {"quantizer": {"name": "rsign", "clip": 1.0}},
            {"thresholds": f32(rng, 5)},
        ),
        PackedLayer(
            "4.0_conv2d",  # 6
            "float_conv2d",
            {"stride": 1, "padding": "same", "pad_value": 1.0},
            {"weight": f32(rng, 5, 5, 3, 3), "bias": f32(rng, 5)},
        ),
        PackedLayer("4_shortcut", "residual_add", {"shape": [5, 3, 3]}, {}),  # 7
        PackedLayer("5_batch_norm", "float_affine", {}, {"scale": f32(rng, 5), "shift": f32(rng, 5)}),  # 8
        PackedLayer("6_max_pool", "max_pool", {"pool_size": 2, "stride": 1}, {}),  # 9
        PackedLayer("7_avg_pool", "avg_pool", {"pool_size": 1, "stride": 1}, {}),  # 10
        PackedLayer("8_conv2d", "sign", {"channels": 5}, {"thresholds": f32(rng, 5)}),  # 11
        PackedLayer(
            "8_conv2d",  # 12
            "binary_conv2d",
            {"k": 5, "in_shape": [5, 2, 2], "out_shape": [6, 2, 2], "output": "bits", **conv, "kernel_size": 1},
            {
                "weight_bits": signs(rng, 6, 1, 1, 5),
                "thresholds": rng.integers(-3, 3, 6).astype(np.int32),
                "flip": np.array([0, 1, 0, 1, 1, 0], np.uint8),
            },
        ),
        PackedLayer("10_flatten", "flatten", {"in_shape": [6, 2, 2]}, {}),  # 13
        PackedLayer(
            "11_dense",  # 14: dense on flattened bits, k = 64 * H * W * words(C)
            "binary_dense",
            {"k": 256, "in_shape": [24], "out_shape": [7], "output": "bits"},
            {
                "weight_bits": signs(rng, 7, 256),
                "thresholds": rng.integers(-9, 9, 7).astype(np.int32),
                "flip": np.zeros(7, np.uint8),
            },
        ),
        PackedLayer(
            "12_dense",  # 15
            "binary_dense",
            {"k": 7, "in_shape": [7], "out_shape": [8], "output": "float"},
            {"weight_bits": signs(rng, 8, 7), "scale": f32(rng, 8), "shift": f32(rng, 8)},
        ),
        PackedLayer("13_dense", "quantize", {"quantizer": {"name": "dorefa", "bits": 2, "mode": "activations"}}),
        PackedLayer("13_dense", "float_dense", {}, {"weight": f32(rng, 3, 8), "bias": f32(rng, 3)}),  # 17
    ]
    meta = {
        "input_shape": [2, 6, 6],
        "num_classes": 3,
        "class_names": ["a", "b", "c"],
        "preprocessing": {"kind": "affine", "scale": 2 / 255, "offset": -1.0},
    }
    return PackedModel(meta=meta, layers=layers)


@contextlib.contextmanager
def unchecked():
    """Write a model the writer would refuse (to test the reader)."""
    original = PackedModel.check
    PackedModel.check = lambda self: None
    try:
        yield
    finally:
        PackedModel.check = original


def unchecked_bytes(model: PackedModel) -> bytes:
    with unchecked():
        return bnnfile.to_bytes(model)


def test_round_trip_keeps_meta_arrays_and_dtypes(tmp_path):
    for model in (small_model(), every_op_model()):
        size = bnnfile.save(model, tmp_path / "m.bnn")
        assert size == (tmp_path / "m.bnn").stat().st_size
        loaded = bnnfile.load(tmp_path / "m.bnn")
        assert loaded.meta == model.meta
        assert [(la.name, la.op, la.attrs) for la in loaded.layers] == [
            (la.name, la.op, la.attrs) for la in model.layers
        ]
        for a, b in zip(model.layers, loaded.layers):
            assert a.arrays.keys() == b.arrays.keys()
            for key in a.arrays:
                assert b.arrays[key].dtype == a.arrays[key].dtype
                np.testing.assert_array_equal(b.arrays[key], a.arrays[key])


def test_the_hand_written_programs_run():
    u = np.random.default_rng(0).integers(0, 256, (3, 2, 6, 6), dtype=np.uint8)
    assert Engine(every_op_model()).logits(u).shape == (3, 3)
    assert Engine(small_model()).logits(np.zeros((2, 12), np.float32)).shape == (2, 3)


def test_layout_follows_the_format_document():
    data = bnnfile.to_bytes(small_model())
    magic, version, header_length = struct.unpack_from("<8sII", data, 0)
    assert magic == b"\x89BNN\r\n\x1a\n" and version == 1
    header = json.loads(data[16 : 16 + header_length])
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    weights = header["layers"][1]["arrays"]["weight_bits"]
    assert weights["offset"] % 64 == 0 and weights["offset"] >= 16 + header_length
    raw = np.frombuffer(data, "<u8", count=70, offset=weights["offset"])
    np.testing.assert_array_equal(raw, small_model().layers[1].arrays["weight_bits"].ravel())
    assert len(data) % 64 == 32


def test_truncated_file_names_the_array_and_sizes(tmp_path):
    data = bnnfile.to_bytes(small_model())
    header_length = struct.unpack_from("<I", data, 12)[0]
    cut = bytearray(data[: 16 + header_length + 40])
    cut += bytes(32)
    with pytest.raises(BnnFormatError, match=r"of array 'layers\.1\.weight_bits' lies beyond the end"):
        bnnfile.from_bytes(bytes(cut))


def reseal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda d: b"PK\x03\x04" + d[4:], "magic"),
        (lambda d: d[:8] + struct.pack("<I", 7) + d[12:], "version 7"),
        (lambda d: d[:12] + struct.pack("<I", 2**31) + d[16:], "header length"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum"),
        (lambda d: d[:10], "too short"),
        # bytes the layout does not account for
        (lambda d: reseal(d[:-32] + bytes(64)), r"must end at byte \d+ .* 64 unaccounted bytes before the checksum"),
        (lambda d: reseal(d[:-33] + b"\x01"), r"non-zero byte at offset \d+ in the padding before the checksum"),
    ],
)
def test_bad_files_raise_clear_errors(mutation, message):
    with pytest.raises(BnnFormatError, match=message):
        bnnfile.from_bytes(mutation(bnnfile.to_bytes(small_model())))


def test_non_zero_padding_between_header_and_arrays_is_refused():
    data = bytearray(bnnfile.to_bytes(small_model()))
    header_length = struct.unpack_from("<I", data, 12)[0]
    if bnnfile._aligned(16 + header_length) == 16 + header_length:
        pytest.skip("no padding after this header")
    data[16 + header_length] = 7
    with pytest.raises(BnnFormatError, match=r"non-zero byte .* before array 'layers\.1\.weight_bits'"):
        bnnfile.from_bytes(reseal(bytes(data[:-32])))


def test_load_names_the_file(tmp_path):
    path = tmp_path / "broken.bnn"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="broken.bnn"):
        bnnfile.load(path)


def test_writer_rejects_bad_layers():
    model = small_model()
    model.layers[2].arrays.pop("weight_bits")
    with pytest.raises(PackedModelError, match="3_dense.*weight_bits"):
        bnnfile.to_bytes(model)
    model = small_model()
    model.layers[0].op = "conv3d"
    with pytest.raises(PackedModelError, match="unknown op"):
        bnnfile.to_bytes(model)


def _set(where, key, value):
    def mutate(model):
        target = model.meta if where == "meta" else model.layers[where[0]].__dict__[where[1]]
        if value is _DELETE:
            del target[key]
        else:
            target[key] = value(target.get(key)) if callable(value) else value

    return mutate


_DELETE = object()
F = np.float32


def _padding_bit(w):
    w = w.copy()
    w.reshape(-1, w.shape[-1])[0, -1] |= np.uint64(1) << np.uint64(63)
    return w


def _first(value):
    def change(array):
        array = array.copy()
        array.flat[0] = value
        return array

    return change


def _with_input_shape(shape):
    def mutate(model):
        model.meta["input_shape"] = shape
        model.layers[0].attrs.update(in_shape=shape)

    return mutate


def _float_conv_net(input_shape, kernel):
    """One 'same' float conv of a (KH, KW) kernel on ``input_shape``, flattened into one logit: a file of a few KB."""

    def mutate(model):
        model.meta.update(input_shape=input_shape, num_classes=1, class_names=["x"])
        conv = {"stride": 1, "padding": "same", "pad_value": 0.0}
        model.layers[:] = [
            PackedLayer("0_conv2d", "float_conv2d", conv, {"weight": np.zeros((1, 1, *kernel), F)}),
            PackedLayer("1_flatten", "flatten", {"in_shape": input_shape}),
            PackedLayer("2_dense", "float_dense", {}, {"weight": np.zeros((1, int(np.prod(input_shape))), F)}),
        ]

    return mutate


def _four_classes(model):
    model.meta.update(num_classes=4, class_names=list("abcd"))


def _drop(index):
    def mutate(model):
        del model.layers[index]

    return mutate


EVERY = "every"
SMALL = "small"
REJECTIONS = [
    # arrays: dtype, shape, values
    (
        EVERY,
        _set((1, "arrays"), "use_or", np.zeros(4, F)),
        r"layer 1 \('1_max_pool', op 'max_pool_bits'\): array 'use_or' must be a NumPy array of \|u1 \(uint8\), "
        r"got <f4",
    ),
    (
        EVERY,
        _set((1, "arrays"), "use_or", np.zeros(3, np.uint8)),
        r"array 'use_or' must have shape \(4,\) .*got \(3,\)",
    ),
    (EVERY, _set((1, "arrays"), "use_or", _first(2)), r"array 'use_or' must hold only 0 and 1, got 2 at index \[0\]"),
    (EVERY, _set((12, "arrays"), "thresholds", np.zeros(6, F)), r"layer 12 .*array 'thresholds' must be .*<i4"),
    (EVERY, _set((12, "arrays"), "thresholds", np.zeros(5, np.int32)), r"'thresholds' must have shape \(6,\)"),
    (EVERY, _set((12, "arrays"), "flip", _first(3)), r"layer 12 .*array 'flip' must hold only 0 and 1, got 3"),
    (EVERY, _set((12, "arrays"), "scale", np.ones(6, F)), r"unexpected array\(s\) \['scale'\] with output 'bits'"),
    (EVERY, _set((2, "arrays"), "scale", _first(np.nan)), r"layer 2 .*array 'scale' must be finite, got 1 NaN"),
    (EVERY, _set((2, "arrays"), "shift", np.ones(4, F)), r"layer 2 .*array 'shift' must have shape \(5,\)"),
    (EVERY, _set((0, "arrays"), "scale", np.ones(4, F)), r"layer 0 .*'scale' must be a NumPy array of <f8"),
    (EVERY, _set((0, "arrays"), "shift", _first(np.inf)), r"layer 0 .*'shift' must be finite.* inf at index \[0\]"),
    (EVERY, _set((17, "arrays"), "weight", _first(-np.inf)), r"layer 17 .*array 'weight' must be finite"),
    (EVERY, _set((17, "arrays"), "bias", np.zeros(4, F)), r"layer 17 .*array 'bias' must have shape \(3,\)"),
    (
        EVERY,
        _set((6, "arrays"), "weight", np.zeros((5, 4, 3, 3), F)),
        r"layer 6 .*'weight' must have shape \(5, 5, 3, 3\)",
    ),
    (EVERY, _set((6, "arrays"), "weight", np.zeros((5, 5, 1, 3), F)), r"'weight' must hold a square kernel .* 1x3"),
    (EVERY, _set((3, "arrays"), "alpha", _DELETE), r"layer 3 .*array 'alpha' is missing, expected \(5,\) <f4"),
    (EVERY, _set((5, "arrays"), "thresholds", _DELETE), r"layer 5 .*array 'thresholds' is missing"),
    (EVERY, _set((11, "arrays"), "thresholds", np.zeros(4, F)), r"layer 11 .*'thresholds' must have shape \(5,\)"),
    (EVERY, _set((14, "arrays"), "weight_bits", _padding_bit), None),  # k = 256: no padding bits, accepted
    (EVERY, _set((15, "arrays"), "weight_bits", _padding_bit), r"layer 15 .*'weight_bits' has padding bits set"),
    (EVERY, _set((0, "arrays"), "weight_bits", _padding_bit), r"layer 0 .*'weight_bits' has padding bits set"),
    (EVERY, _set((15, "arrays"), "weight_bits", np.zeros((8, 2), np.uint64)), r"ceil\(k/64\) = 1 words for k=7"),
    (
        SMALL,
        _set((2, "arrays"), "weight_bits", np.zeros((3, 2, 1), np.uint64)),
        r"'weight_bits' must have shape \(O, words\)",
    ),
    # attrs: enums, integers, shapes
    (EVERY, _set((2, "attrs"), "output", "maybe"), r"attr 'output' must be one of \['bits', 'float'\], got 'maybe'"),
    (EVERY, _set((2, "attrs"), "padding", "full"), r"layer 2 .*attr 'padding' must be one of \['same', 'valid'\]"),
    (EVERY, _set((6, "attrs"), "padding", _DELETE), r"layer 6 .*attr 'padding' is missing, expected one of"),
    (
        EVERY,
        _set((6, "attrs"), "pad_value", float("nan")),
        r"attr 'pad_value' must be a finite float32 number .*, got nan",
    ),
    (
        EVERY,
        _set((6, "attrs"), "pad_value", 1e308),
        r"attr 'pad_value' must be a finite float32 number .*, got 1e\+308",
    ),
    (EVERY, _set((2, "attrs"), "stride", 0), r"attr 'stride' must be an integer >= 1, got 0"),
    (EVERY, _set((2, "attrs"), "stride", True), r"attr 'stride' must be an integer >= 1, got True"),
    (EVERY, _set((2, "attrs"), "k", 5), r"layer 2 .*attr 'k' must be the input's channel count 4, got 5"),
    (EVERY, _set((14, "attrs"), "k", 24), r"layer 14 .*attr 'k' must be the input's bit count 256, got 24"),
    (
        EVERY,
        _set((2, "attrs"), "kernel_size", 5),
        r"attr 'kernel_size' must be the kernel size 3 of array 'weight_bits'",
    ),
    (EVERY, _set((2, "attrs"), "out_shape", [5, 4, 4]), r"attr 'out_shape' must be \[5, 3, 3\] .*got \[5, 4, 4\]"),
    (EVERY, _set((0, "attrs"), "in_shape", [2, 7, 6]), r"layer 0 .*attr 'in_shape' must be \[2, 6, 6\]"),
    (EVERY, _set((13, "attrs"), "in_shape", [24]), r"layer 13 .*attr 'in_shape' must be \[6, 2, 2\]"),
    (EVERY, _set((1, "attrs"), "out_shape", [4, 2, 2]), r"layer 1 .*attr 'out_shape' must be \[4, 3, 3\]"),
    (EVERY, _set((11, "attrs"), "channels", 4), r"attr 'channels' must be the input's channel count 5, got 4"),
    (EVERY, _set((3, "attrs"), "fn", "gelu"), r"attr 'fn' must be one of \['relu', .*got 'gelu'"),
    (
        EVERY,
        _set((8, "arrays"), "alpha", np.ones(5, F)),
        r"unexpected array\(s\) \['alpha'\], expected \['scale', 'shift'\]",
    ),
    (EVERY, _set((9, "attrs"), "pool_size", 10**30), r"a 10{30}x10{30} pool with 'valid' padding .* leaves no output"),
    (EVERY, _set((12, "attrs"), "padding", "valid"), None),  # a 1x1 kernel: the same output, accepted
    (EVERY, _set((2, "attrs"), "padding", "valid"), r"attr 'out_shape' must be \[5, 1, 1\]"),
    (
        EVERY,
        _set((5, "attrs"), "quantizer", {"name": "rsign", "clip": -1.0}),
        r"attr 'quantizer' is not a valid input quantizer: expected rsign parameter 'clip'",
    ),
    (
        EVERY,
        _set((5, "attrs"), "quantizer", {"name": "nope"}),
        r"attr 'quantizer' is not a valid input quantizer: expected a known quantizer",
    ),
    (
        EVERY,
        _set((16, "attrs"), "quantizer", {"name": "dorefa", "bits": 2, "mode": "weights"}),
        r"layer 16 .*attr 'quantizer' is not a valid input quantizer: expected a quantizer for inputs",
    ),
    (
        EVERY,
        _set((16, "arrays"), "thresholds", np.zeros(8, F)),
        r"unexpected array\(s\) \['thresholds'\] for quantizer",
    ),
    # the program: what reaches each op
    (
        EVERY,
        _drop(0),
        r"layer 0 \('1_max_pool', op 'max_pool_bits'\): takes packed bits, got the raw input \(2, 6, 6\)",
    ),
    (EVERY, _drop(11), r"layer 11 .*op 'binary_conv2d'\): takes packed bits, got real activations \(5, 2, 2\)"),
    (EVERY, _drop(13), r"layer 13 \('11_dense', op 'binary_dense'\): takes a vector \(F,\), got \(6, 2, 2\)"),
    (EVERY, _drop(2), r"layer 2 .*op 'activation'\): takes the raw input or real activations, got packed bits"),
    (EVERY, _drop(4), r"layer 6 .*op 'residual_add'\): has no residual_begin before it"),
    (EVERY, _drop(7), r"1 residual_begin op\(s\) without their residual_add"),
    (EVERY, _drop(17), r"the last op must give float logits \(3,\) \(num_classes\), got real \(8,\)"),
    (SMALL, _drop(2), r"the last op must give float logits \(3,\) .*got packed bits \(70,\)"),
    # meta
    (EVERY, _four_classes, r"the last op must give float logits \(4,\) \(num_classes\), got real \(3,\)"),
    (EVERY, _set("meta", "class_names", ["a", "b"]), r"'class_names' must be a list of 3 strings .*got 2 entries"),
    (
        EVERY,
        _set("meta", "class_names", ["a", "b", 3]),
        r"'class_names' must be a list of 3 strings .*got 3 \(int\) at index 2",
    ),
    (EVERY, _set("meta", "preprocessing", {"kind": "standardize"}), r"'preprocessing' must be an object with 'kind'"),
    (
        EVERY,
        _set("meta", "preprocessing", {"kind": "affine", "scale": float("inf"), "offset": 0}),
        r"'preprocessing\.scale' must be a finite number",
    ),
    (
        EVERY,
        _set("meta", "preprocessing", {"kind": "affine", "scale": 0.5}),
        r"'preprocessing\.offset' must be a finite number, got None",
    ),
    (
        EVERY,
        _set("meta", "preprocessing", {"kind": "affine", "scale": 0, "offset": 1}),
        r"'preprocessing\.scale' must not be 0",
    ),
    (EVERY, _set("meta", "input_shape", [2, 6]), r"'input_shape' must be \[F\] or \[C, H, W\]"),
    # limits: what a small file may make the engine allocate
    (SMALL, _with_input_shape([10**9]), r"'input_shape' \[1000000000\] has 1,000,000,000 values per sample, more than"),
    (  # 40 KB of weights, 167 MB of patches per sample
        SMALL,
        _float_conv_net([1, 64, 64], (101, 101)),
        r"layer 0 .*64x64 positions of 101x101x1 patches are 41,783,296 values per sample, more than the limit",
    ),
    (SMALL, _float_conv_net([1, 1, 20001], (64, 64)), r"layer 0 .*1x20001 positions of 64x64x1 patches are"),
    (SMALL, _float_conv_net([1, 1, 20001], (1, 20001)), r"layer 0 .*'weight' must hold a square kernel .* 1x20001"),
    (SMALL, _float_conv_net([1, 1, 20001], (3, 3)), None),  # a small kernel on that input: accepted, runs
]


@pytest.mark.parametrize("base, mutation, message", REJECTIONS)
def test_the_loader_rejects_what_the_engine_cannot_run(base, mutation, message):
    model = every_op_model() if base == EVERY else small_model()
    mutation(model)
    data = unchecked_bytes(model)
    if message is None:  # a control: the change is one the format allows
        model.check()
        logits = Engine(bnnfile.from_bytes(data)).logits(np.zeros((1, *model.input_shape), np.uint8))
        assert logits.shape == (1, model.num_classes)
        return
    with pytest.raises(PackedModelError, match=message):
        model.check()
    with pytest.raises(PackedModelError, match=message):
        Engine(model)
    with pytest.raises(BnnFormatError, match=message):
        bnnfile.from_bytes(data)


def test_limits_are_checked_before_the_engine_allocates(monkeypatch):
    """The limits are module constants: lowered, they refuse the model that passed a moment before."""
    model = every_op_model()
    model.check()
    monkeypatch.setattr(packed, "MAX_PATCH_VALUES", 36 * 9 * 2 - 1)
    with pytest.raises(PackedModelError, match=r"layer 0 .*6x6 positions of 3x3x2 patches are 648 values"):
        model.check()
    monkeypatch.setattr(packed, "MAX_PATCH_VALUES", 2**25)
    monkeypatch.setattr(packed, "MAX_WORK", 1000)
    with pytest.raises(PackedModelError, match=r"layer 0 .*the program would exceed the limit of 1,000"):
        model.check()


def test_hostile_attr_values_never_crash_the_check():
    """Every attr of every op set to values of the wrong type: a PackedModelError each time, nothing else."""
    hostile = [None, -1, 0, 2**62, 1.5, float("nan"), "same", [], [1] * 100, {}, True]
    base = every_op_model()
    for index, layer in enumerate(base.layers):
        for key in layer.attrs:
            for value in hostile:
                model = copy.deepcopy(base)
                model.layers[index].attrs[key] = value
                with contextlib.suppress(PackedModelError):
                    model.check()


def test_reader_imports_without_torch(tmp_path):
    bnnfile.save(small_model(), tmp_path / "m.bnn")
    code = (
        "import sys; from workbench.deploy import bnnfile; m = bnnfile.load(sys.argv[1]); "
        "assert len(m.layers) == 3; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.bnn")],
        check=True,
        cwd=pathlib.Path(__file__).resolve().parent.parent,
    )
