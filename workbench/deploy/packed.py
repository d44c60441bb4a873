"""The packed model: what a trained network becomes for the XNOR engine, and what a .bnn file holds.

A ``PackedModel`` is a flat program of layers (ops) over NumPy arrays plus JSON metadata. It is produced
by ``workbench.train.packing.pack`` (which needs torch), written and read by ``workbench.deploy.bnnfile`` and run by
``workbench.deploy.engine.Engine`` (neither of which imports torch). The ops, their attrs and arrays are
documented in docs/FORMAT.md ("Ops"); this module states them once and ``PackedModel.check`` walks the
program as the engine will run it (which activation each op gets, of what shape), so that the writer, the
reader and the engine refuse a model that does not fit together before anything is allocated from it,
with a ``PackedModelError`` naming the layer, the attr or array, what was expected and what came.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workbench.core.shapes import WORD_BITS, conv_output_size, padding_pair, words
from workbench.core.spec import ACTIVATIONS, normalize_quantizer

DTYPE_NAMES = {"<u8": "uint64", "<i4": "int32", "<f4": "float32", "<f8": "float64", "|u1": "uint8", "|i1": "int8"}
ALLOWED_DTYPES = tuple(DTYPE_NAMES)  # what a .bnn array may be; each op's arrays are stricter (OPS)

# op name -> {array name: dtype} of every array the op may hold; which ones it needs depends on its attrs
# (a binary layer's output: thresholds and flip for "bits", scale and shift for "float"), see _Walk
_BINARY_ARRAYS = {"weight_bits": "<u8", "thresholds": "<i4", "flip": "|u1", "scale": "<f4", "shift": "<f4"}
_INPUT_ARRAYS = {"weight_bits": "<u8", "scale": "<f8", "shift": "<f8"}
OPS: dict[str, dict[str, str]] = {
    # binary (XNOR) layers on packed input bits; output bits (thresholds) or float32 (affine)
    "binary_dense": _BINARY_ARRAYS,
    "binary_conv2d": _BINARY_ARRAYS,
    # binary-weight layers on real-valued input (the first layer): exact on uint8 input
    "input_dense": _INPUT_ARRAYS,
    "input_conv2d": _INPUT_ARRAYS,
    # real input -> packed bits: +1 where x >= threshold (rsign) or x >= 0
    "sign": {"thresholds": "<f4"},
    "max_pool_bits": {"use_or": "|u1"},
    "flatten": {},
    # float32 layers (full precision or not XNOR-able), weights dequantized
    "float_dense": {"weight": "<f4", "bias": "<f4"},
    "float_conv2d": {"weight": "<f4", "bias": "<f4"},
    "float_affine": {"scale": "<f4", "shift": "<f4"},
    "max_pool": {},
    "avg_pool": {},
    "activation": {"alpha": "<f4"},
    "quantize": {"thresholds": "<f4"},  # rsign's per-channel thresholds
    # real-valued shortcut: save the input, run the block, add it back
    "residual_begin": {},
    "residual_add": {},
}

PADDINGS = ("same", "valid")
OUTPUTS = ("bits", "float")
PREPROCESSING_KINDS = ("none", "affine")

# What a model may make the engine hold or do for one sample, checked before anything is allocated (a file
# of a few KB must not make the engine allocate gigabytes). docs/FORMAT.md, "Limits", states them.
MAX_LAYERS = 100_000  # ops in the program
FLOAT32_MAX = float(np.finfo(np.float32).max)  # a float attribute must stay finite as float32
MAX_ACTIVATION_VALUES = 2**24  # values of the input and of every op's output, per sample (64 MiB as float32)
MAX_PATCH_VALUES = 2**25  # im2col patch values OH * OW * KH * KW * C of a float or first-layer conv, per sample
MAX_WORK = 2**34  # multiply-adds (word operations for XNOR layers) of the whole program, per sample
INT32_MAX = 2**31 - 1
MAX_INPUT_K = INT32_MAX // 255  # a first layer's exact uint8 dot, at most 255 * K in magnitude, fits in int32


class PackedModelError(ValueError):
    """A packed model whose layers do not fit together (names the layer and what is wrong)."""


@dataclass
class PackedLayer:
    """One op of the engine's program: its name (spec layer name), kind, JSON attributes and arrays."""

    name: str
    op: str
    attrs: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def check(self, index: int) -> None:
        """Raise PackedModelError when the op is unknown, an array unknown to it or not a NumPy array of its dtype.

        What the op needs beyond that (attrs, shapes, values) depends on its input: ``PackedModel.check``.
        """
        where = f"layer {index} ({self.name!r}, op {self.op!r})"
        if not isinstance(self.name, str):
            raise PackedModelError(f"layer {index}: name must be a string, got {self.name!r}")
        if self.op not in OPS:
            raise PackedModelError(f"{where}: unknown op, expected one of {sorted(OPS)}")
        if not isinstance(self.attrs, dict) or not isinstance(self.arrays, dict):
            raise PackedModelError(f"{where}: attrs and arrays must be dicts")
        known = OPS[self.op]
        unknown = [key for key in self.arrays if key not in known]
        if unknown:
            raise PackedModelError(f"{where}: unexpected array(s) {unknown}, expected {list(known) or 'none'}")
        for key, array in self.arrays.items():
            if not isinstance(array, np.ndarray) or array.dtype.str != known[key]:
                got = getattr(getattr(array, "dtype", None), "str", type(array).__name__)
                raise PackedModelError(
                    f"{where}: array {key!r} must be a NumPy array of {known[key]} ({DTYPE_NAMES[known[key]]}), "
                    f"got {got}"
                )


@dataclass
class PackedModel:
    """A network ready for the engine: ``meta`` (JSON: spec, preprocessing, class names, training) and ops."""

    meta: dict
    layers: list[PackedLayer]

    def check(self) -> None:
        """Raise PackedModelError unless the engine can run this program as docs/FORMAT.md specifies it.

        Checks the meta the engine reads, every layer's op, attrs and arrays (dtype, shape, values), and walks
        the activation through the program: what each op receives (input, real or bits, of which shape) must
        be what it takes, the shortcuts must pair up, the last op must give (N, num_classes) float logits, and
        no op may exceed the limits (MAX_*) for one sample.
        """
        _check_meta(self.meta)
        if not isinstance(self.layers, list):
            raise PackedModelError(f"layers must be a list, got {type(self.layers).__name__}")
        if len(self.layers) > MAX_LAYERS:
            raise PackedModelError(f"{len(self.layers)} layers exceed the limit of {MAX_LAYERS}")
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, PackedLayer):
                raise PackedModelError(f"layer {index}: must be a PackedLayer, got {type(layer).__name__}")
            layer.check(index)
        _Walk(self).run()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.meta["input_shape"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names") or [str(i) for i in range(self.num_classes)])

    @property
    def nbytes(self) -> int:
        """Bytes of all arrays (what the engine holds in memory, without metadata)."""
        return sum(array.nbytes for layer in self.layers for array in layer.arrays.values())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_meta(meta) -> None:
    """The meta fields the engine and the reports read: input_shape, num_classes, class_names, preprocessing."""
    if not isinstance(meta, dict):
        raise PackedModelError(f"meta must be an object, got {type(meta).__name__}")
    shape = meta.get("input_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) in (1, 3) and all(_is_int(v) and v > 0 for v in shape)):
        raise PackedModelError(f"meta field 'input_shape' must be [F] or [C, H, W] of positive integers, got {shape!r}")
    if math.prod(shape) > MAX_ACTIVATION_VALUES:
        raise PackedModelError(
            f"meta field 'input_shape' {list(shape)} has {math.prod(shape):,} values per sample, more than the "
            f"limit of {MAX_ACTIVATION_VALUES:,}"
        )
    classes = meta.get("num_classes")
    if not (_is_int(classes) and 0 < classes <= MAX_ACTIVATION_VALUES):
        raise PackedModelError(
            f"meta field 'num_classes' must be an integer from 1 to {MAX_ACTIVATION_VALUES:,}, got {classes!r}"
        )
    if "class_names" in meta:
        names = meta["class_names"]
        if not (isinstance(names, list) and len(names) == classes and all(isinstance(n, str) for n in names)):
            got = f"{len(names)} entries" if isinstance(names, list) else repr(names)
            if isinstance(names, list) and len(names) == classes:
                at = next(i for i, n in enumerate(names) if not isinstance(n, str))
                got = f"{names[at]!r} ({type(names[at]).__name__}) at index {at}"
            raise PackedModelError(
                f"meta field 'class_names' must be a list of {classes} strings (num_classes), got {got}"
            )
    if "preprocessing" in meta:
        pre = meta["preprocessing"]
        if not isinstance(pre, dict) or pre.get("kind") not in PREPROCESSING_KINDS:
            got = pre.get("kind") if isinstance(pre, dict) else pre
            raise PackedModelError(
                f"meta field 'preprocessing' must be an object with 'kind' one of {list(PREPROCESSING_KINDS)}, "
                f"got {got!r}"
            )
        if pre["kind"] == "affine":
            for key in ("scale", "offset"):
                if not _is_number(pre.get(key)):
                    raise PackedModelError(
                        f"meta field 'preprocessing.{key}' must be a finite number, got {pre.get(key)!r}"
                    )
            if pre["scale"] == 0:
                raise PackedModelError("meta field 'preprocessing.scale' must not be 0 (every input would be equal)")


@dataclass(frozen=True)
class _Act:
    """The activation between two ops: kind "input", "real" or "bits"; shape channels-first, (C, H, W) or (F,).

    A bits vector holds ``bits`` sign bits in words(bits) words: F, or 64 * H * W * words(C) after a flatten of
    a bits map (each position's channels padded to whole words, docs/FORMAT.md "Flattened bits").
    """

    kind: str
    shape: tuple[int, ...]
    bits: int = 0


_MISSING = object()


class _Op:
    """One layer under check: reads its attrs and arrays, failing with messages that name the layer."""

    def __init__(self, index: int, layer: PackedLayer):
        self.layer = layer
        self.where = f"layer {index} ({layer.name!r}, op {layer.op!r})"

    def fail(self, message: str):
        raise PackedModelError(f"{self.where}: {message}")

    def attr(self, key: str, expected: str):
        value = self.layer.attrs.get(key, _MISSING)
        if value is _MISSING:
            self.fail(f"attr {key!r} is missing, expected {expected}")
        return value

    def int_attr(self, key: str, low: int = 1) -> int:
        value = self.attr(key, f"an integer >= {low}")
        if not _is_int(value) or value < low:
            self.fail(f"attr {key!r} must be an integer >= {low}, got {value!r}")
        return value

    def choice_attr(self, key: str, options: tuple[str, ...]) -> str:
        value = self.attr(key, f"one of {list(options)}")
        if not isinstance(value, str) or value not in options:
            self.fail(f"attr {key!r} must be one of {list(options)}, got {value!r}")
        return value

    def number_attr(self, key: str) -> float:
        """A float attribute: finite once the engine casts it to float32 (1e308 would become inf)."""
        value = self.attr(key, "a finite float32 number")
        if not (_is_number(value) and abs(value) <= FLOAT32_MAX):
            self.fail(f"attr {key!r} must be a finite float32 number (|x| <= {FLOAT32_MAX:.4g}), got {value!r}")
        return value

    def shape_attr(self, key: str, expected: tuple[int, ...], what: str) -> None:
        value = self.attr(key, f"{list(expected)} ({what})")
        if not (isinstance(value, (list, tuple)) and all(_is_int(v) for v in value) and tuple(value) == expected):
            self.fail(f"attr {key!r} must be {list(expected)} ({what}), got {value!r}")

    def array(self, key: str, shape: tuple, what: str, required: bool = True) -> np.ndarray | None:
        """The array ``key`` (its dtype checked by PackedLayer.check) with ``shape``; float arrays finite."""
        array = self.layer.arrays.get(key)
        if array is None:
            if required:
                dtype = OPS[self.layer.op][key]
                self.fail(f"array {key!r} is missing, expected {_show(shape)} {dtype} ({what})")
            return None
        if array.shape != shape:
            self.fail(f"array {key!r} must have shape {_show(shape)} ({what}), got {_show(array.shape)}")
        if array.dtype.kind == "f":
            bad = ~np.isfinite(array)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                self.fail(
                    f"array {key!r} must be finite, got {int(bad.sum())} NaN or infinite value(s), "
                    f"the first {array[first]} at index {list(first)}"
                )
        return array

    def flags(self, key: str, shape: tuple, what: str, required: bool = True) -> None:
        """A uint8 array of 0/1 flags."""
        array = self.array(key, shape, what, required)
        if array is not None and array.size and array.max() > 1:
            first = tuple(int(i) for i in np.argwhere(array > 1)[0])
            self.fail(f"array {key!r} must hold only 0 and 1, got {int(array[first])} at index {list(first)}")

    def forbid(self, keys: tuple[str, ...], why: str) -> None:
        present = [key for key in keys if key in self.layer.arrays]
        if present:
            self.fail(f"unexpected array(s) {present} {why}")

    def packed_weights(self, ndim: int, k: int) -> np.ndarray:
        """weight_bits: ndim axes of at least 1, words(k) words in the last, the padding bits past k all 0."""
        w = self.layer.arrays.get("weight_bits")
        layout, axes = ("(O, words)", "O") if ndim == 2 else ("(O, KH, KW, words)", "O, KH, KW")
        if w is None:
            self.fail(f"array 'weight_bits' is missing, expected {layout} <u8")
        if w.ndim != ndim or w.shape[-1] != words(k) or min(w.shape) < 1:
            self.fail(
                f"array 'weight_bits' must have shape {layout} with {axes} >= 1 and ceil(k/64) = {words(k)} "
                f"words for k={k}, got {_show(w.shape)}"
            )
        if k % WORD_BITS:
            padding = np.uint64((2**64 - 1) ^ ((1 << (k % WORD_BITS)) - 1))
            if (w[..., -1] & padding).any():
                self.fail(
                    f"array 'weight_bits' has padding bits set: bits {k % WORD_BITS} to 63 of each last word "
                    f"(past k={k}) must be 0"
                )
        return w


def _show(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


class _Walk:
    """Runs the program on shapes: each op's checks, what it gives the next, the limits per sample."""

    def __init__(self, packed: PackedModel):
        self.packed = packed
        self.work = 0
        self.saved: list[tuple[int, ...]] = []  # the shapes residual_begin saved

    def run(self) -> None:
        meta = self.packed.meta
        act = _Act("input", tuple(meta["input_shape"]))
        for index, layer in enumerate(self.packed.layers):
            op = _Op(index, layer)
            act = getattr(self, "_" + layer.op)(op, act)
            values = math.prod(act.shape)
            if values > MAX_ACTIVATION_VALUES:
                op.fail(
                    f"its output {_show(act.shape)} has {values:,} values per sample, more than the limit of "
                    f"{MAX_ACTIVATION_VALUES:,}"
                )
            self.work += values
            if self.work > MAX_WORK:
                op.fail(
                    f"the program up to here takes {self.work:,} operations per sample, more than the limit of "
                    f"{MAX_WORK:,}"
                )
        if self.saved:
            raise PackedModelError(f"{len(self.saved)} residual_begin op(s) without their residual_add")
        classes = meta["num_classes"]
        if act.kind != "real" or act.shape != (classes,):
            got = "packed bits" if act.kind == "bits" else "the raw input" if act.kind == "input" else "real"
            layers = self.packed.layers
            where = _Op(len(layers) - 1, layers[-1]).where + ": " if layers else "no ops: "
            raise PackedModelError(
                f"{where}the last op must give float logits ({classes},) (num_classes), got {got} {_show(act.shape)}"
            )

    # ------------------------------------------------------------------------------ helpers

    @staticmethod
    def _takes(op: _Op, act: _Act, kinds: tuple[str, ...], rank: int | None = None) -> _Act:
        names = {"bits": "packed bits", "real": "real activations", "input": "the raw input"}
        if act.kind not in kinds:
            op.fail(f"takes {' or '.join(names[k] for k in kinds)}, got {names[act.kind]} {_show(act.shape)}")
        if rank is not None and len(act.shape) != rank:
            what = "a vector (F,)" if rank == 1 else "a feature map (C, H, W)"
            op.fail(f"takes {what}, got {_show(act.shape)} (a flatten missing or misplaced?)")
        return act

    def _add_work(self, op: _Op, amount: int) -> None:
        self.work += amount
        if self.work > MAX_WORK:
            op.fail(f"takes {amount:,} operations per sample: the program would exceed the limit of {MAX_WORK:,}")

    @staticmethod
    def _conv_output(op: _Op, h: int, w: int, kernel: int, stride: int, padding: str, what: str = "kernel"):
        oh = conv_output_size(h, kernel, stride, *padding_pair(padding, kernel))
        ow = conv_output_size(w, kernel, stride, *padding_pair(padding, kernel))
        if oh < 1 or ow < 1:
            op.fail(
                f"a {kernel}x{kernel} {what} with {padding!r} padding and stride {stride} leaves no output on "
                f"the {h}x{w} input"
            )
        return oh, ow

    @staticmethod
    def _square_kernel(op: _Op, kh: int, kw: int, array: str, sized: bool = True) -> None:
        """KH = KW, and the ``kernel_size`` attr says so (``sized``: the binary and first-layer convs have one)."""
        if kh != kw:
            op.fail(f"array {array!r} must hold a square kernel (KH = KW), got {kh}x{kw}")
        if sized:
            size = op.int_attr("kernel_size")
            if size != kh:
                op.fail(f"attr 'kernel_size' must be the kernel size {kh} of array {array!r}, got {size}")

    @staticmethod
    def _patches(op: _Op, oh: int, ow: int, kernel: int, channels: int) -> None:
        values = oh * ow * kernel * kernel * channels
        if values > MAX_PATCH_VALUES:
            op.fail(
                f"its {oh}x{ow} positions of {kernel}x{kernel}x{channels} patches are {values:,} values per "
                f"sample, more than the limit of {MAX_PATCH_VALUES:,}"
            )

    @staticmethod
    def _binary_output(op: _Op, out: int) -> str:
        """thresholds and flip (output "bits") or scale and shift (output "float"), one per output channel."""
        output = op.choice_attr("output", OUTPUTS)
        if output == "bits":
            op.forbid(("scale", "shift"), "with output 'bits' (it takes thresholds and flip)")
            op.array("thresholds", (out,), "one per output channel")
            op.flags("flip", (out,), "one per output channel")
            return "bits"
        op.forbid(("thresholds", "flip"), "with output 'float' (it takes scale and shift)")
        op.array("scale", (out,), "one per output channel")
        op.array("shift", (out,), "one per output channel")
        return "real"

    # ------------------------------------------------------------------------------ binary ops

    def _binary_dense(self, op: _Op, act: _Act) -> _Act:
        self._takes(op, act, ("bits",), 1)
        k = op.int_attr("k")
        if k != act.bits:
            op.fail(f"attr 'k' must be the input's bit count {act.bits}, got {k}")
        out = op.packed_weights(2, k).shape[0]
        op.shape_attr("in_shape", act.shape, "the input's features")
        op.shape_attr("out_shape", (out,), "the rows of weight_bits")
        kind = self._binary_output(op, out)
        self._add_work(op, out * words(k))
        return _Act(kind, (out,), out)

    def _binary_conv2d(self, op: _Op, act: _Act) -> _Act:
        c, h, w = self._takes(op, act, ("bits",), 3).shape
        k = op.int_attr("k")
        if k != c:
            op.fail(f"attr 'k' must be the input's channel count {c}, got {k}")
        o, kh, kw, _ = op.packed_weights(4, k).shape
        self._square_kernel(op, kh, kw, "weight_bits")
        if kh * kw * c > INT32_MAX:
            op.fail(f"its dot products of K = KH*KW*C = {kh * kw * c:,} terms do not fit in int32")
        stride, padding = op.int_attr("stride"), op.choice_attr("padding", PADDINGS)
        oh, ow = self._conv_output(op, h, w, kh, stride, padding)
        op.shape_attr("in_shape", act.shape, "the input's (C, H, W)")
        op.shape_attr("out_shape", (o, oh, ow), "the output's (O, OH, OW)")
        kind = self._binary_output(op, o)
        self._add_work(op, o * oh * ow * kh * kw * words(c))
        return _Act(kind, (o, oh, ow))

    # ------------------------------------------------------------------------------ first layer

    def _input_dense(self, op: _Op, act: _Act) -> _Act:
        (features,) = self._takes(op, act, ("input", "real"), 1).shape
        k = op.int_attr("k")
        if k != features:
            op.fail(f"attr 'k' must be the input's feature count {features}, got {k}")
        if k > MAX_INPUT_K:
            op.fail(f"attr 'k' {k:,} is too large: the exact uint8 dot (up to 255 * k) must fit in int32")
        out = op.packed_weights(2, k).shape[0]
        op.shape_attr("in_shape", act.shape, "the input's features")
        op.shape_attr("out_shape", (out,), "the rows of weight_bits")
        output = op.choice_attr("output", OUTPUTS)
        op.array("scale", (out,), "one per output channel")
        op.array("shift", (out,), "one per output channel")
        self._add_work(op, out * k)
        return _Act("bits" if output == "bits" else "real", (out,), out)

    def _input_conv2d(self, op: _Op, act: _Act) -> _Act:
        c, h, w = self._takes(op, act, ("input", "real"), 3).shape
        k = op.int_attr("k")
        if k != c:
            op.fail(f"attr 'k' must be the input's channel count {c}, got {k}")
        o, kh, kw, _ = op.packed_weights(4, k).shape
        self._square_kernel(op, kh, kw, "weight_bits")
        if kh * kw * c > MAX_INPUT_K:
            op.fail(
                f"its patches of K = KH*KW*C = {kh * kw * c:,} values are too long: the exact uint8 dot "
                f"(up to 255 * K) must fit in int32"
            )
        stride, padding = op.int_attr("stride"), op.choice_attr("padding", PADDINGS)
        oh, ow = self._conv_output(op, h, w, kh, stride, padding)
        self._patches(op, oh, ow, kh, c)
        op.shape_attr("in_shape", act.shape, "the input's (C, H, W)")
        op.shape_attr("out_shape", (o, oh, ow), "the output's (O, OH, OW)")
        output = op.choice_attr("output", OUTPUTS)
        op.array("scale", (o,), "one per output channel")
        op.array("shift", (o,), "one per output channel")
        self._add_work(op, o * oh * ow * kh * kw * c)
        return _Act("bits" if output == "bits" else "real", (o, oh, ow))

    # ------------------------------------------------------------------------------ bits plumbing

    def _sign(self, op: _Op, act: _Act) -> _Act:
        self._takes(op, act, ("input", "real"))
        channels = act.shape[0]
        given = op.int_attr("channels")
        if given != channels:
            op.fail(f"attr 'channels' must be the input's channel count {channels}, got {given}")
        op.array("thresholds", (channels,), "one per channel", required=False)
        return _Act("bits", act.shape, channels if len(act.shape) == 1 else 0)

    def _max_pool_bits(self, op: _Op, act: _Act) -> _Act:
        c, h, w = self._takes(op, act, ("bits",), 3).shape
        size, stride = op.int_attr("pool_size"), op.int_attr("stride")
        oh, ow = self._conv_output(op, h, w, size, stride, "valid", "pool")
        op.shape_attr("out_shape", (c, oh, ow), "the output's (C, OH, OW)")
        op.flags("use_or", (c,), "one per channel", required=False)
        self._add_work(op, oh * ow * words(c) * size * size)
        return _Act("bits", (c, oh, ow))

    def _flatten(self, op: _Op, act: _Act) -> _Act:
        op.shape_attr("in_shape", act.shape, "the input's shape")
        features = math.prod(act.shape)
        if act.kind != "bits":
            return _Act(act.kind, (features,))
        if len(act.shape) == 1:
            return act
        c, h, w = act.shape
        return _Act("bits", (features,), WORD_BITS * h * w * words(c))

    # ------------------------------------------------------------------------------ float ops

    @staticmethod
    def _weight(op: _Op, ndim: int, layout: str) -> int:
        """The output count O of a float weight of ``ndim`` axes, each at least 1 (op.array checks the rest)."""
        weight = op.layer.arrays.get("weight")
        if weight is None:
            op.fail(f"array 'weight' is missing, expected {layout} <f4")
        if weight.ndim != ndim or min(weight.shape) < 1:
            op.fail(f"array 'weight' must have shape {layout}, got {_show(weight.shape)}")
        return weight.shape[0]

    def _float_dense(self, op: _Op, act: _Act) -> _Act:
        (features,) = self._takes(op, act, ("input", "real"), 1).shape
        out = self._weight(op, 2, f"(O, {features}): F = {features}, the input's features")
        op.array("weight", (out, features), "(O, F), F the input's features")
        op.array("bias", (out,), "one per output", required=False)
        self._add_work(op, out * features)
        return _Act("real", (out,))

    def _float_conv2d(self, op: _Op, act: _Act) -> _Act:
        c, h, w = self._takes(op, act, ("input", "real"), 3).shape
        o = self._weight(op, 4, f"OIHW (O, {c}, KH, KW): I = {c}, the input's channels")
        _, _, kh, kw = op.layer.arrays["weight"].shape
        op.array("weight", (o, c, kh, kw), "OIHW, I the input's channels")
        self._square_kernel(op, kh, kw, "weight", sized=False)
        op.array("bias", (o,), "one per output channel", required=False)
        stride, padding = op.int_attr("stride"), op.choice_attr("padding", PADDINGS)
        op.number_attr("pad_value")
        oh, ow = self._conv_output(op, h, w, kh, stride, padding)
        self._patches(op, oh, ow, kh, c)
        self._add_work(op, o * oh * ow * kh * kw * c)
        return _Act("real", (o, oh, ow))

    def _float_affine(self, op: _Op, act: _Act) -> _Act:
        channels = self._takes(op, act, ("input", "real")).shape[0]
        op.array("scale", (channels,), "one per channel")
        op.array("shift", (channels,), "one per channel")
        return _Act("real", act.shape)

    def _pool(self, op: _Op, act: _Act) -> _Act:
        c, h, w = self._takes(op, act, ("input", "real"), 3).shape
        size, stride = op.int_attr("pool_size"), op.int_attr("stride")
        oh, ow = self._conv_output(op, h, w, size, stride, "valid", "pool")
        self._add_work(op, c * oh * ow * size * size)
        return _Act("real", (c, oh, ow))

    _max_pool = _avg_pool = _pool

    def _activation(self, op: _Op, act: _Act) -> _Act:
        channels = self._takes(op, act, ("input", "real")).shape[0]
        fn = op.choice_attr("fn", ACTIVATIONS)
        if fn == "prelu":
            op.array("alpha", (channels,), "one per channel")
        else:
            op.forbid(("alpha",), f"for fn {fn!r} (only prelu takes alpha)")
        return _Act("real", act.shape)

    def _quantize(self, op: _Op, act: _Act) -> _Act:
        channels = self._takes(op, act, ("input", "real")).shape[0]
        q = op.attr("quantizer", "a quantizer object {'name': ..., params} (docs/SPEC.md)")
        if not isinstance(q, dict):
            op.fail(f"attr 'quantizer' must be a quantizer object {{'name': ..., params}}, got {q!r}")
        try:
            normalize_quantizer(q, role="input")
        except Exception as bad:  # core.spec raises its private _Bad: what the quantizer should have been
            op.fail(f"attr 'quantizer' is not a valid input quantizer: expected {bad}, got {q!r}")
        if q["name"] == "rsign":
            op.array("thresholds", (channels,), "rsign's threshold per channel")
        else:
            op.forbid(("thresholds",), f"for quantizer {q['name']!r} (only rsign takes thresholds)")
        return _Act("real", act.shape)

    def _residual_begin(self, op: _Op, act: _Act) -> _Act:
        self._takes(op, act, ("input", "real"))
        op.shape_attr("shape", act.shape, "the input's shape")
        self.saved.append(act.shape)
        return _Act("real", act.shape)

    def _residual_add(self, op: _Op, act: _Act) -> _Act:
        self._takes(op, act, ("input", "real"))
        if not self.saved:
            op.fail("has no residual_begin before it")
        saved = self.saved.pop()
        if act.shape != saved:
            op.fail(f"adds the shortcut's {_show(saved)} to {_show(act.shape)}: the block must keep the shape")
        op.shape_attr("shape", act.shape, "the shortcut's shape")
        return _Act("real", act.shape)
