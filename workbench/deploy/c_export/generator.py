"""Lower a PackedModel to a self-contained C99 library: ``<name>.h``, ``<name>.c`` and ``<name>_selftest.c``.

Every op of the engine's program (docs/FORMAT.md, "Ops") becomes one call of a kernel from templates/runtime.c
(integer XNOR-popcount layers, the uint8 first layer, bits plumbing) or templates/real.c (float layers, instantiated
for float and double). The C follows the engine operation for operation: the same integer dot products and integer
thresholds (the first layer's folded by the engine's own rule), and for real values the same IEEE float32/float64
operations in the same precision as NumPy's promotion gives them (a binary layer's ``dot * scale + shift`` is
float64 in the engine, so it is double here). Only float matrix products (float_dense, float_conv2d, the real-input
first layer, avg_pool, tanh) may differ in their last bits: NumPy sums them in BLAS order, the C in index order.

Weights are repacked from the file's uint64 words to uint32 words (same bit order; a group's padding word dropped,
checked to be zero), so 32-bit targets work on whole words and 64-bit ones read two at a time. Activations live
in one static arena planned by ``arena.Arena``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from workbench.core.quantizer_catalog import QUANTIZERS
from workbench.core.shapes import conv_output_size, padding_pair, words
from workbench.deploy import kernels
from workbench.deploy.c_export.arena import Arena
from workbench.deploy.engine import Engine
from workbench.deploy.packed import PackedLayer, PackedModel

TEMPLATES = Path(__file__).with_name("templates")

_C_KEYWORDS = """
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile
while main
"""
C_KEYWORDS = frozenset(_C_KEYWORDS.split())

# Every switch of templates/runtime.c and real.c, written 0 or 1 at the top of <name>.c.
_NEEDS = [
    "POPCOUNT",
    "POP_XOR",
    "POP_AND",
    "OUTPUT",
    "GEOMETRY",
    "BINARY_DENSE",
    "BINARY_CONV",
    "PLANES",
    "INPUT_DENSE",
    "INPUT_CONV",
    "POOL_BITS",
    "PREPROCESS",
    "ADD_MIXED",
    "FLOAT_ARGMAX",
    "MATH",
]
_REAL_KERNELS = [
    "SIGN",
    "AFFINE",
    "FDENSE",
    "FCONV",
    "MAXPOOL",
    "AVGPOOL",
    "ACT",
    "QUANT",
    "FLATTEN",
    "ADD",
    "TOFLOAT",
    "INPUT_REAL",
]
_REAL = {"f32": ("float", "32", "tanhf", "rintf"), "f64": ("double", "64", "tanh", "rint")}
_DEPENDS = {
    "BINARY_DENSE": ("POPCOUNT", "POP_XOR", "OUTPUT"),
    "BINARY_CONV": ("POPCOUNT", "POP_XOR", "OUTPUT", "GEOMETRY"),
    "INPUT_DENSE": ("POPCOUNT", "POP_AND", "OUTPUT", "PLANES"),
    "INPUT_CONV": ("POPCOUNT", "POP_AND", "OUTPUT", "PLANES", "GEOMETRY"),
    "POOL_BITS": ("GEOMETRY",),
}
_GEOMETRY_KERNELS = ("FCONV", "MAXPOOL", "AVGPOOL", "INPUT_REAL")
_ACTIVATIONS = {
    "relu": "BNN_RELU",
    "hardtanh": "BNN_HARDTANH",
    "tanh": "BNN_TANH",
    "prelu": "BNN_PRELU",
    "identity": "BNN_IDENTITY",
}


class CExportError(ValueError):
    """A model the C exporter cannot write: names the layer and what is missing."""


@dataclass
class CLibrary:
    """An exported model: its files (name -> text) and what the exporter planned."""

    name: str
    files: dict[str, str]
    input_shape: tuple[int, ...]
    num_classes: int
    arena_bytes: int
    peak_live_bytes: int
    weight_bytes: int
    scores_are_dots: bool
    ops: list[str] = field(default_factory=list)


def c_name(text: str) -> str:
    """A C identifier from a model name: lower case, [a-z0-9_], not starting with a digit, not a keyword."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", str(text)).strip("_").lower() or "model"
    if name[0].isdigit():
        name = "m_" + name
    return name + "_model" if name in C_KEYWORDS else name


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name or "") or name in C_KEYWORDS:
        raise CExportError(f"name {name!r} is not a usable C identifier (letters, digits, _; not a keyword)")
    return name


def words32(bits: int) -> int:
    return -(-bits // 32)


def pack32(mask: np.ndarray) -> np.ndarray:
    """bool (..., K) -> uint32 (..., ceil(K/32)): bit i % 32 of word i // 32 set where True (docs/FORMAT.md order)."""
    mask = np.asarray(mask, dtype=bool)
    packed = np.packbits(mask, axis=-1, bitorder="little")
    missing = 4 * words32(mask.shape[-1]) - packed.shape[-1]
    if missing:
        packed = np.pad(packed, [(0, 0)] * (mask.ndim - 1) + [(0, missing)])
    return np.ascontiguousarray(packed).view("<u4").astype(np.uint32)


def repack(w64: np.ndarray, bits: int, where: str) -> np.ndarray:
    """uint64 words packed along the last axis (one group of ceil(bits/64) words) -> uint32 words, ceil(bits/32)
    per group: the low half of each uint64 first. A dropped upper half must be zero (it holds only padding bits)."""
    w64 = np.ascontiguousarray(w64).astype("<u8", copy=False)
    halves = w64.view("<u4").reshape(*w64.shape[:-1], 2 * w64.shape[-1])
    keep = words32(bits)
    if halves[..., keep:].any():
        raise CExportError(f"{where}: array 'weight_bits' has padding bits set past the {bits} bits of a word group")
    return np.ascontiguousarray(halves[..., :keep]).astype(np.uint32)


# ---------------------------------------------------------------------------------------------- C literals


def _format(values: np.ndarray, ctype: str) -> list[str]:
    flat = np.ascontiguousarray(values).reshape(-1)
    if ctype == "uint32_t":
        return list(np.char.mod("0x%08x", flat.astype(np.uint64)))
    if ctype in ("uint8_t", "uint16_t"):
        return [str(v) for v in flat.astype(np.int64).tolist()]
    if ctype == "int32_t":
        return ["(-2147483647 - 1)" if v == -(2**31) else str(v) for v in flat.astype(np.int64).tolist()]
    if ctype in ("float", "double"):
        digits = "%.9g" if ctype == "float" else "%.17g"
        text = np.char.mod(digits, flat.astype(np.float32 if ctype == "float" else np.float64))
        plain = (np.char.find(text, ".") < 0) & (np.char.find(text, "e") < 0)
        text = np.where(plain, np.char.add(text, ".0"), text)
        return list(np.char.add(text, "f") if ctype == "float" else text)
    raise AssertionError(ctype)


def _rows_of(items: list[str], per_line: int = 12, indent: str = "    ") -> str:
    return ",\n".join(indent + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))


def _c_string(text: str) -> str:
    out = []
    for ch in str(text):
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127 and ch != "?":
            out.append(ch)
        else:
            out.extend(f"\\{byte:03o}" for byte in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def fill(text: str, values: dict[str, object]) -> str:
    """Replace every {{key}} of a template; a placeholder left without a value is a bug."""

    def value(match):
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value")
        return str(values[key])

    return re.sub(r"\{\{(\w+)\}\}", value, text)


# ---------------------------------------------------------------------------------------------- lowering


@dataclass(frozen=True)
class _Val:
    """An activation between two ops: "input" (the caller's uint8 array), "bits", "real" or "dots" (int32)."""

    kind: str
    shape: tuple[int, ...]
    buf: int | None = None
    dtype: str = "f32"  # real: "f32" or "f64"
    groups: int = 1  # a bits vector: groups of group_bits bits, each padded to whole words (a flattened map)
    group_bits: int = 0

    @property
    def values(self) -> int:
        return math.prod(self.shape)

    @property
    def words(self) -> int:
        if len(self.shape) == 3:
            c, h, w = self.shape
            return h * w * words32(c)
        return self.groups * words32(self.group_bits)

    @property
    def nbytes(self) -> int:
        if self.kind == "bits":
            return 4 * self.words
        return self.values * (8 if self.kind == "real" and self.dtype == "f64" else 4)

    @property
    def ctype(self) -> str:
        return {"bits": "uint32_t", "dots": "int32_t", "input": "uint8_t"}.get(self.kind) or _REAL[self.dtype][0]


class _Lowering:
    def __init__(self, packed: PackedModel, name: str):
        self.packed = packed
        self.name = name
        self.engine = Engine(packed, threads=1)  # its integer rule for the uint8 first layer, stated once there
        self.arena = Arena()
        self.arrays: list[str] = []
        self.weight_bytes = 0
        self.calls: list[tuple[int, str, object]] = []  # (step, comment, code(at) -> str)
        self.needs: set[str] = {"FLOAT_ARGMAX"}
        self.stack: list[_Val] = []
        self.ops: list[str] = []
        self.last_affine: tuple[str, str] | None = None  # the last layer's scale/shift when scores are dots
        self.step = 0
        self.layer: PackedLayer | None = None

    # ------------------------------------------------------------------------------ helpers

    def where(self) -> str:
        return f"layer {self.step} ({self.layer.name!r}, op {self.layer.op})"

    def fail(self, message: str):
        raise CExportError(f"{self.where()}: {message}")

    def need(self, *names: str) -> None:
        for name in names:
            self.needs.add(name)
            self.needs.update(_DEPENDS.get(name, ()))

    def need_real(self, kernel: str, dtype: str) -> str:
        """Instantiate a typed kernel; returns its C suffix."""
        self.needs.add(f"{kernel}_{dtype.upper()}")
        if kernel in _GEOMETRY_KERNELS:
            self.needs.add("GEOMETRY")
        return dtype

    def const(self, ctype: str, what: str, values, per_line: int = 12) -> str:
        array = np.asarray(values)
        if array.size == 0:
            return "NULL"
        name = f"L{self.step}_{what}"
        items = _format(array, ctype)
        self.arrays.append(f"static const {ctype} {name}[{len(items)}] = {{\n{_rows_of(items, per_line)}\n}};")
        self.weight_bytes += len(items) * {"uint8_t": 1, "uint16_t": 2, "double": 8}.get(ctype, 4)
        return name

    def struct(self, ctype: str, what: str, fields: dict[str, object]) -> str:
        name = f"L{self.step}_{what}"
        body = ", ".join(f".{key} = {value}" for key, value in fields.items())
        self.arrays.append(f"static const {ctype} {name} = {{{body}}};")
        return name

    def new(self, kind: str, shape, dtype: str = "f32", groups: int = 1, group_bits: int = 0) -> _Val:
        val = _Val(kind, tuple(shape), None, dtype, groups, group_bits)
        return replace(val, buf=self.arena.new(val.nbytes, self.step, f"{self.layer.name} {kind}"))

    def scratch(self, nbytes: int, what: str) -> int:
        return self.arena.new(nbytes, self.step, f"{self.layer.name} {what}")

    def use(self, *vals: _Val) -> None:
        for val in vals:
            if val.buf is not None:
                self.arena.use(val.buf, self.step)

    def writable(self, val: _Val) -> bool:
        """Whether an op may write its output over val: an arena buffer no open shortcut still needs."""
        return val.buf is not None and all(saved.buf != val.buf for saved in self.stack)

    def call(self, code, comment: str = "") -> None:
        self.calls.append((self.step, comment or f"{self.layer.name}: {self.layer.op}", code))

    @staticmethod
    def ptr(at, val: _Val) -> str:
        return "input" if val.kind == "input" else at(val.buf, val.ctype)

    def geometry(self, h, w, c, cw, kh, kw, stride, top, left, oh, ow) -> str:
        return self.struct(
            "bnn_geom_t",
            "geom",
            dict(h=h, w=w, c=c, cw=cw, kh=kh, kw=kw, stride=stride, top=top, left=left, oh=oh, ow=ow),
        )

    def real(self, val: _Val) -> _Val:
        """Real activations: the raw input goes through the preprocessing first (float32 NHWC), as the engine."""
        if val.kind == "real":
            return val
        if val.kind != "input":
            self.fail(f"takes real activations, got {val.kind}")
        c, h, w = (val.shape[0], 1, 1) if len(val.shape) == 1 else val.shape
        out = self.new("real", val.shape)
        s, o = np.float32(self.engine.pixel_scale), np.float32(self.engine.pixel_offset)
        self.need("PREPROCESS")
        lit = _format(np.array([s, o], np.float32), "float")
        self.call(
            lambda at: f"bnn_preprocess(input, {c}, {h}, {w}, {lit[0]}, {lit[1]}, {self.ptr(at, out)});",
            f"{self.layer.name}: preprocessing x = u * {s} + {o}",
        )
        return out

    # ------------------------------------------------------------------------------ the program

    def run(self) -> _Val:
        val = _Val("input", self.packed.input_shape)
        last = len(self.packed.layers) - 1
        for index, layer in enumerate(self.packed.layers):
            self.step, self.layer = index, layer
            handler = getattr(self, "_" + layer.op, None)
            if handler is None:
                self.fail("is not supported by the C exporter")
            before = len(self.arena.buffers)
            val = handler(layer, val, index == last)
            self.ops.append(
                f"{index:3d} {layer.name:<16} {layer.op:<16} -> {val.kind} {list(val.shape)}"
                + (f" {val.dtype}" if val.kind == "real" else "")
                + ("" if len(self.arena.buffers) > before else " (no new buffer)")
            )
        self.step = len(self.packed.layers)
        return val

    def _binary_out(self, layer: PackedLayer, count: int, shape, final: bool) -> tuple[str, _Val]:
        """The bnn_out_t of a binary layer and its output activation."""
        if layer.attrs["output"] == "bits":
            thr = self.const("int32_t", "thr", layer.arrays["thresholds"])
            flip = self.const("uint8_t", "flip", layer.arrays["flip"], 24)
            out = self.struct("bnn_out_t", "out", dict(mode="BNN_OUT_BITS", count=count, thr=thr, flip=flip))
            if len(shape) == 1:
                return out, self.new("bits", shape, groups=1, group_bits=count)
            return out, self.new("bits", shape)
        scale = self.const("float", "scale", layer.arrays["scale"].astype(np.float32))
        shift = self.const("float", "shift", layer.arrays["shift"].astype(np.float32))
        if final and len(shape) == 1:
            self.last_affine = (scale, shift)
            return self.struct("bnn_out_t", "out", dict(mode="BNN_OUT_DOTS", count=count)), self.new("dots", shape)
        out = self.struct("bnn_out_t", "out", dict(mode="BNN_OUT_REAL", count=count, scale=scale, shift=shift))
        return out, self.new("real", shape, "f64")  # int32 dots * float32 scale: float64 in NumPy

    # ------------------------------------------------------------------------------ binary layers

    def _binary_dense(self, layer, val, final):
        k, w = int(layer.attrs["k"]), layer.arrays["weight_bits"]
        rows = w.shape[0]
        groups = w.reshape(rows, val.groups, words(val.group_bits))
        w32 = repack(groups, val.group_bits, self.where()).reshape(rows, -1)
        if w32.shape[1] != val.words:
            self.fail(f"weight rows of {w32.shape[1]} words do not match the input's {val.words}")
        weights = self.const("uint32_t", "w", w32)
        out, y = self._binary_out(layer, rows, (rows,), final)
        self.need("BINARY_DENSE")
        self.use(val)
        self.call(
            lambda at: f"bnn_binary_dense({self.ptr(at, val)}, {val.words}, {k}, {weights}, &{out}, {self.ptr(at, y)});"
        )
        return y

    def _binary_conv2d(self, layer, val, final):
        c, h, w = val.shape
        wb = layer.arrays["weight_bits"]
        o, kh, kw, _ = wb.shape
        stride, padding = int(layer.attrs["stride"]), layer.attrs["padding"]
        (top, bottom), (left, right) = padding_pair(padding, kh), padding_pair(padding, kw)
        oh, ow = conv_output_size(h, kh, stride, top, bottom), conv_output_size(w, kw, stride, left, right)
        weights = self.const("uint32_t", "w", repack(wb, c, self.where()))
        cw = words32(c)
        geom = self.geometry(h, w, c, cw, kh, kw, stride, top, left, oh, ow)
        out, y = self._binary_out(layer, o, (o, oh, ow), final)
        patch = self.scratch(4 * kh * kw * cw, "patch")
        self.need("BINARY_CONV")
        self.use(val)
        self.call(
            lambda at: (
                f"bnn_binary_conv({self.ptr(at, val)}, &{geom}, {kh * kw * c}, {weights}, &{out}, "
                f"{self.ptr(at, y)}, {at(patch, 'uint32_t')});"
            )
        )
        return y

    # ------------------------------------------------------------------------------ first layer

    def _input_out(self, layer, count, rule_sums, k, shape, final) -> tuple[str, _Val]:
        """bnn_out_t of a first layer on uint8 input: integer thresholds (the engine's rule) or the float affine.
        rule_sums: the sum of the +-1 weights over the taps inside the image, (classes, count)."""
        a, b = layer.arrays["scale"].astype(np.float64), layer.arrays["shift"].astype(np.float64)
        if layer.attrs["output"] == "bits":
            thresholds, flip = Engine._int32_rule(self.engine._integer_rule(a, b, rule_sums), k)
            if not (flip == flip[:1]).all():
                self.fail("the threshold direction varies with the position")  # it depends on the slope only
            thr = self.const("int32_t", "thr", thresholds)
            flips = self.const("uint8_t", "flip", flip[0], 24)
            out = self.struct("bnn_out_t", "out", dict(mode="BNN_OUT_BITS", count=count, thr=thr, flip=flips))
            if len(shape) == 1:
                return out, self.new("bits", shape, groups=1, group_bits=count)
            return out, self.new("bits", shape)
        fields = dict(
            mode="BNN_OUT_AFFINE",
            count=count,
            a=self.const("double", "a", a, 4),
            b=self.const("double", "b", b, 4),
            wsum=self.const("int32_t", "wsum", rule_sums),
            ps=_format(np.array([self.engine.pixel_scale]), "double")[0],
            po=_format(np.array([self.engine.pixel_offset]), "double")[0],
        )
        return self.struct("bnn_out_t", "out", fields), self.new("real", shape, "f32")

    def _input_dense(self, layer, val, final):
        k, wb = int(layer.attrs["k"]), layer.arrays["weight_bits"]
        rows = wb.shape[0]
        w32 = repack(wb, k, self.where())
        if val.kind != "input":
            return self._input_real(layer, self.real(val), wb, 1, 1, k, 1, 1, 1, (0, 0), (0, 0), (rows,))
        total = kernels.unpack_signs(wb, k).astype(np.int64).sum(axis=1)
        out, y = self._input_out(layer, rows, total[None, :], k, (rows,), final)
        weights = self.const("uint32_t", "w", w32)
        pw = words32(k)
        planes = self.scratch(4 * max(8 * pw, 32 if k <= 32 else 0), "bit planes")
        self.need("INPUT_DENSE")
        self.call(
            lambda at: (
                f"bnn_input_dense(input, {k}, {weights}, {pw}, &{out}, {self.ptr(at, y)}, {at(planes, 'uint32_t')});"
            )
        )
        return y

    def _input_conv2d(self, layer, val, final):
        c, h, w = val.shape
        wb = layer.arrays["weight_bits"]
        o, kh, kw, _ = wb.shape
        stride, padding = int(layer.attrs["stride"]), layer.attrs["padding"]
        (top, bottom), (left, right) = padding_pair(padding, kh), padding_pair(padding, kw)
        oh, ow = conv_output_size(h, kh, stride, top, bottom), conv_output_size(w, kw, stride, left, right)
        if val.kind != "input":
            return self._input_real(
                layer, self.real(val), wb, h, w, c, kh, kw, stride, (top, bottom), (left, right), (o, oh, ow)
            )
        signs = kernels.unpack_signs(wb, c).astype(np.int64)  # (O, KH, KW, C)
        k = kh * kw * c
        weights = self.const("uint32_t", "w", pack32(signs.reshape(o, k) < 0))
        # which taps fall inside the image depends on the output row and column: a few classes of each
        row_masks = [tuple(0 <= y * stride - top + i < h for i in range(kh)) for y in range(oh)]
        col_masks = [tuple(0 <= x * stride - left + j < w for j in range(kw)) for x in range(ow)]
        row_kinds, col_kinds = list(dict.fromkeys(row_masks)), list(dict.fromkeys(col_masks))
        taps = signs.sum(axis=3)  # (O, KH, KW)
        sums = np.array([[(taps * np.outer(r, q)[None]).sum(axis=(1, 2)) for q in col_kinds] for r in row_kinds])
        sums = sums.reshape(len(row_kinds) * len(col_kinds), o)
        out, y = self._input_out(layer, o, sums, k, (o, oh, ow), final)
        if len(row_kinds) * len(col_kinds) > 1:
            rows = self.const("uint16_t", "rows", [row_kinds.index(m) for m in row_masks], 24)
            cols = self.const("uint16_t", "cols", [col_kinds.index(m) for m in col_masks], 24)
        else:
            rows = cols = "NULL"
        geom = self.geometry(h, w, c, 0, kh, kw, stride, top, left, oh, ow)
        pw = words32(k)
        planes = self.scratch(4 * max(8 * pw, 32 if k <= 32 else 0), "bit planes")
        self.need("INPUT_CONV")
        self.call(
            lambda at: (
                f"bnn_input_conv(input, &{geom}, {weights}, {pw}, {rows}, {cols}, {len(col_kinds)}, "
                f"&{out}, {self.ptr(at, y)}, {at(planes, 'uint32_t')});"
            )
        )
        return y

    def _input_real(self, layer, x, wb, h, w, c, kh, kw, stride, pad_h, pad_w, shape):
        """A first layer reached by real activations: the engine's float path (docs/FORMAT.md, input_dense)."""
        count = shape[0]
        weights = self.const("uint32_t", "w", repack(wb, c, self.where()))
        a = self.const("double", "a", layer.arrays["scale"].astype(np.float64), 4)
        b = self.const("double", "b", layer.arrays["shift"].astype(np.float64), 4)
        oh, ow = (shape[1], shape[2]) if len(shape) == 3 else (1, 1)
        geom = self.geometry(h, w, c, words32(c), kh, kw, stride, pad_h[0], pad_w[0], oh, ow)
        bits = layer.attrs["output"] == "bits"
        if bits:
            y = self.new("bits", shape, groups=1, group_bits=count) if len(shape) == 1 else self.new("bits", shape)
        else:
            y = self.new("real", shape, "f32")
        s = self.need_real("INPUT_REAL", x.dtype)
        self.use(x)
        self.call(
            lambda at: (
                f"nan_seen |= bnn_input_real_{s}({self.ptr(at, x)}, &{geom}, {weights}, {count}, {a}, {b}, "
                f"{int(bits)}, {self.ptr(at, y)});"
            )
        )
        return y

    # ------------------------------------------------------------------------------ bits plumbing

    def _sign(self, layer, val, final):
        x = self.real(val)
        thr = layer.arrays.get("thresholds")
        thr = self.const("float", "thr", thr) if thr is not None else "NULL"
        c = x.shape[0]
        positions = math.prod(x.shape[1:])
        y = self.new("bits", x.shape, groups=1, group_bits=c) if len(x.shape) == 1 else self.new("bits", x.shape)
        s = self.need_real("SIGN", x.dtype)
        self.use(x)
        self.call(
            lambda at: f"nan_seen |= bnn_sign_{s}({self.ptr(at, x)}, {positions}, {c}, {thr}, {self.ptr(at, y)});"
        )
        return y

    def _max_pool_bits(self, layer, val, final):
        c, h, w = val.shape
        size, stride = int(layer.attrs["pool_size"]), int(layer.attrs["stride"])
        oh, ow = conv_output_size(h, size, stride), conv_output_size(w, size, stride)
        use_or = layer.arrays.get("use_or")
        mask = self.const("uint32_t", "use_or", pack32(use_or > 0)) if use_or is not None and use_or.any() else "NULL"
        geom = self.geometry(h, w, c, words32(c), size, size, stride, 0, 0, oh, ow)
        y = self.new("bits", (c, oh, ow))
        self.need("POOL_BITS")
        self.use(val)
        self.call(lambda at: f"bnn_pool_bits({self.ptr(at, val)}, &{geom}, {mask}, {self.ptr(at, y)});")
        return y

    def _flatten(self, layer, val, final):
        features = val.values
        if val.kind == "input" or len(val.shape) == 1:
            return replace(val, shape=(features,))
        if val.kind == "bits":
            c, h, w = val.shape
            return replace(val, shape=(features,), groups=h * w, group_bits=c)
        c, h, w = val.shape
        y = self.new("real", (features,), val.dtype)
        s = self.need_real("FLATTEN", val.dtype)
        self.use(val)
        self.call(lambda at: f"bnn_flatten_{s}({self.ptr(at, val)}, {h}, {w}, {c}, {self.ptr(at, y)});")
        return y

    # ------------------------------------------------------------------------------ float ops

    def _in_place_or_new(self, x: _Val, shape, dtype: str) -> _Val:
        if dtype == x.dtype and self.writable(x) and tuple(shape) == x.shape:
            return x
        return self.new("real", shape, dtype)

    def _float_dense(self, layer, val, final):
        x = self.real(val)
        weight = layer.arrays["weight"]
        count, features = weight.shape
        w = self.const("float", "w", weight, 8)
        bias = self.const("float", "bias", layer.arrays["bias"]) if "bias" in layer.arrays else "NULL"
        y = self.new("real", (count,), x.dtype)
        s = self.need_real("FDENSE", x.dtype)
        self.use(x)
        self.call(lambda at: f"bnn_fdense_{s}({self.ptr(at, x)}, {features}, {w}, {bias}, {count}, {self.ptr(at, y)});")
        return y

    def _float_conv2d(self, layer, val, final):
        x = self.real(val)
        c, h, w = x.shape
        weight = layer.arrays["weight"]  # OIHW
        o, _, kh, kw = weight.shape
        stride, padding = int(layer.attrs["stride"]), layer.attrs["padding"]
        (top, bottom), (left, right) = padding_pair(padding, kh), padding_pair(padding, kw)
        oh, ow = conv_output_size(h, kh, stride, top, bottom), conv_output_size(w, kw, stride, left, right)
        wt = self.const("float", "w", np.ascontiguousarray(weight.transpose(0, 2, 3, 1)), 8)  # OHWI
        bias = self.const("float", "bias", layer.arrays["bias"]) if "bias" in layer.arrays else "NULL"
        geom = self.geometry(h, w, c, 0, kh, kw, stride, top, left, oh, ow)
        ctype = _REAL[x.dtype][0]
        pad = _format(np.array([float(layer.attrs["pad_value"])]), "float" if x.dtype == "f32" else "double")[0]
        y = self.new("real", (o, oh, ow), x.dtype)
        s = self.need_real("FCONV", x.dtype)
        self.use(x)
        self.call(
            lambda at: (
                f"bnn_fconv_{s}({self.ptr(at, x)}, &{geom}, {wt}, {bias}, ({ctype}){pad}, {o}, {self.ptr(at, y)});"
            )
        )
        return y

    def _float_affine(self, layer, val, final):
        x = self.real(val)
        c, positions = x.shape[0], math.prod(x.shape[1:])
        scale = self.const("float", "scale", layer.arrays["scale"])
        shift = self.const("float", "shift", layer.arrays["shift"])
        y = self._in_place_or_new(x, x.shape, x.dtype)
        s = self.need_real("AFFINE", x.dtype)
        self.use(x, y)
        self.call(
            lambda at: f"bnn_affine_{s}({self.ptr(at, x)}, {positions}, {c}, {scale}, {shift}, {self.ptr(at, y)});"
        )
        return y

    def _pool(self, layer, val, kernel: str):
        x = self.real(val)
        c, h, w = x.shape
        size, stride = int(layer.attrs["pool_size"]), int(layer.attrs["stride"])
        oh, ow = conv_output_size(h, size, stride), conv_output_size(w, size, stride)
        geom = self.geometry(h, w, c, 0, size, size, stride, 0, 0, oh, ow)
        y = self.new("real", (c, oh, ow), x.dtype if kernel == "MAXPOOL" else "f32")
        s = self.need_real(kernel, x.dtype)
        self.use(x)
        self.call(lambda at: f"bnn_{kernel.lower()}_{s}({self.ptr(at, x)}, &{geom}, {self.ptr(at, y)});")
        return y

    def _max_pool(self, layer, val, final):
        return self._pool(layer, val, "MAXPOOL")

    def _avg_pool(self, layer, val, final):
        return self._pool(layer, val, "AVGPOOL")

    def _activation(self, layer, val, final):
        x = self.real(val)
        fn = layer.attrs["fn"]
        if fn not in _ACTIVATIONS:
            self.fail(f"activation {fn!r} is not supported by the C exporter")
        alpha = self.const("float", "alpha", layer.arrays["alpha"]) if fn == "prelu" else "NULL"
        if fn == "tanh":
            self.needs.add("MATH")
        c, positions = x.shape[0], math.prod(x.shape[1:])
        y = self._in_place_or_new(x, x.shape, "f32")
        s = self.need_real("ACT", x.dtype)
        self.use(x, y)
        self.call(
            lambda at: (
                f"bnn_act_{s}({self.ptr(at, x)}, {positions}, {c}, {_ACTIVATIONS[fn]}, {alpha}, {self.ptr(at, y)});"
            )
        )
        return y

    def _quantize(self, layer, val, final):
        x = self.real(val)
        q = layer.attrs["quantizer"]
        info = QUANTIZERS.get(q["name"])
        formula = info.eval_formula if info else None
        thr, param = "NULL", 0.0
        if formula == "sign":
            kind = "BNN_Q_SIGN"
            if layer.arrays.get("thresholds") is not None:
                thr = self.const("float", "thr", layer.arrays["thresholds"])
        elif formula == "scaled_sign":
            kind = "BNN_Q_SCALED_SIGN"
        elif formula == "heaviside":
            kind = "BNN_Q_HEAVISIDE"
        elif formula == "ternary":
            if q.get("ternary_weight_networks", False):
                self.fail(
                    f"quantizer {q['name']!r} with ternary_weight_networks takes its threshold from the mean "
                    "over the whole batch: a batch-dependent output the C library (one input) cannot give"
                )
            kind, param = "BNN_Q_TERNARY", float(np.float32(q["threshold"]))
        elif formula == "dorefa":
            if q.get("mode", "activations") == "weights":
                self.fail(
                    f"quantizer {q['name']!r} in weights mode normalises by the maximum over the whole batch: "
                    "a batch-dependent output the C library (one input) cannot give"
                )
            kind, param = "BNN_Q_DOREFA", float(np.float32(2.0 ** q["bits"] - 1.0))
            self.needs.add("MATH")
        else:
            self.fail(f"quantizer {q['name']!r} (eval formula {formula!r}) is not supported by the C exporter")
        c, positions = x.shape[0], math.prod(x.shape[1:])
        y = self._in_place_or_new(x, x.shape, "f32")
        lit = _format(np.array([param], np.float32), "float")[0]
        s = self.need_real("QUANT", x.dtype)
        self.use(x, y)
        self.call(
            lambda at: f"bnn_quant_{s}({self.ptr(at, x)}, {positions}, {c}, {kind}, {thr}, {lit}, {self.ptr(at, y)});"
        )
        return y

    def _residual_begin(self, layer, val, final):
        x = self.real(val)
        self.stack.append(x)
        self.use(x)
        return x

    def _residual_add(self, layer, val, final):
        x = self.real(val)
        saved = self.stack.pop()
        dtype = "f64" if "f64" in (x.dtype, saved.dtype) else "f32"
        if x.dtype == dtype and self.writable(x):
            y = x
        elif saved.dtype == dtype and self.writable(saved):
            y = saved
        else:
            y = self.new("real", x.shape, dtype)
        self.use(x, saved, y)
        n = x.values
        if x.dtype == saved.dtype:
            s = self.need_real("ADD", dtype)
            self.call(lambda at: f"bnn_add_{s}({self.ptr(at, x)}, {self.ptr(at, saved)}, {self.ptr(at, y)}, {n});")
        else:
            f32, f64 = (x, saved) if x.dtype == "f32" else (saved, x)
            self.need("ADD_MIXED")
            self.call(lambda at: f"bnn_add_mixed({self.ptr(at, f32)}, {self.ptr(at, f64)}, {self.ptr(at, y)}, {n});")
        return y


# ---------------------------------------------------------------------------------------------- the library


def _runtime_source(needs: set[str]) -> str:
    switches = [f"#define BNN_NEED_{name} {int(name in needs)}" for name in _NEEDS]
    typed = []
    for dtype, (ctype, bits, tanh, rint) in _REAL.items():
        flags = [
            f"#define BNN_NEED_{kernel}_{dtype.upper()} {int(f'{kernel}_{dtype.upper()}' in needs)}"
            for kernel in _REAL_KERNELS
        ]
        switches += flags
        if any(f"{kernel}_{dtype.upper()}" in needs for kernel in _REAL_KERNELS):
            text = _template("real.c")
            for key, value in {
                "@T@": ctype,
                "@S@": dtype,
                "@SU@": dtype.upper(),
                "@BITS@": bits,
                "@TANH@": tanh,
                "@RINT@": rint,
            }.items():
                text = text.replace(key, value)
            typed.append(text)
    return "\n".join(switches) + "\n\n" + _template("runtime.c") + "\n" + "\n".join(typed)


def reference_scores(packed: PackedModel, inputs: np.ndarray, threads: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """What an exported model's scores and logits must be, from the engine: (scores, logits (N, classes) float32).

    When the last op is a binary dense layer with float output, the C scores are its integer dot products: the
    engine gives them when that layer's scale is 1 and shift 0 (exact in float32 for |dot| < 2^24). Otherwise the
    scores are the logits.
    """
    inputs = np.asarray(inputs)
    logits = Engine(packed, threads=threads).logits(inputs)
    last = packed.layers[-1]
    if last.op != "binary_dense" or last.attrs.get("output") != "float":
        return logits, logits
    if int(last.attrs["k"]) >= 2**24:
        raise ValueError(f"the last layer's dot products over k={last.attrs['k']} bits may not be exact in float32")
    ones = PackedLayer(last.name, last.op, dict(last.attrs), dict(last.arrays))
    ones.arrays["scale"] = np.ones_like(last.arrays["scale"])
    ones.arrays["shift"] = np.zeros_like(last.arrays["shift"])
    dots = Engine(PackedModel(packed.meta, [*packed.layers[:-1], ones]), threads=threads).logits(inputs)
    return np.rint(dots).astype(np.int32), logits


def generate(
    packed: PackedModel, name: str | None = None, selftest_input: np.ndarray | None = None, source: str = ""
) -> CLibrary:
    """The C library of a packed model (files in memory); CExportError names a layer it cannot export."""
    packed.check()
    spec_name = (packed.meta.get("network_spec") or {}).get("name") or "model"
    name = check_name(name or c_name(spec_name))
    lowering = _Lowering(packed, name)
    out = lowering.run()
    classes, upper = packed.num_classes, name.upper()
    dots = out.kind == "dots"
    if out.kind != "real" and not dots:
        raise CExportError(f"the last op gives {out.kind}, not the logits")
    # the logits buffer and the final code, after every op
    if dots:
        logits = lowering.arena.new(4 * classes, lowering.step, "logits")
        scale, shift = lowering.last_affine
        final = [
            lambda at: f"if (scores) for (i = 0; i < {classes}; i++) scores[i] = {lowering.ptr(at, out)}[i];",
            lambda at: f"{name}_logits({lowering.ptr(at, out)}, {at(logits, 'float')});",
        ]
        logits_body = (
            f"    int32_t i;\n    for (i = 0; i < {classes}; i++) {{\n"
            f"        double z = (double)scores[i] * (double){scale}[i];\n"
            f"        logits[i] = (float)(z + (double){shift}[i]);\n    }}"
        )
        logits_of = lambda at: at(logits, "float")  # noqa: E731
    else:
        if out.dtype == "f64":
            logits = lowering.arena.new(4 * classes, lowering.step, "logits")
            lowering.need_real("TOFLOAT", "f64")
            final = [lambda at: f"bnn_tofloat_f64({lowering.ptr(at, out)}, {classes}, {at(logits, 'float')});"]
            logits_of = lambda at: at(logits, "float")  # noqa: E731
        else:
            lowering.use(out)
            final = []
            logits_of = lambda at: lowering.ptr(at, out)  # noqa: E731
        final.append(lambda at: f"if (scores) for (i = 0; i < {classes}; i++) scores[i] = {logits_of(at)}[i];")
        logits_body = f"    int32_t i;\n    for (i = 0; i < {classes}; i++) logits[i] = scores[i];"
    if out.buf is not None:
        lowering.arena.use(out.buf, lowering.step)
    arena_bytes = lowering.arena.place()

    def at(buf, ctype):
        return f"BNN_AT({ctype}, {lowering.arena.buffers[buf].offset})"

    body = ["    int nan_seen = 0;", "    int32_t i;"]
    for _, comment, code in lowering.calls:
        body.append(f"    /* {comment} */")
        body.append(f"    {code(at)}")
        body.append("    BNN_BARRIER();")
    body.append("    /* scores and the class */")
    body += [f"    {code(at)}" for code in final]
    body.append(f"    return nan_seen ? {upper}_ERROR_NAN : bnn_argmax({logits_of(at)}, {classes});")

    score_type = "int32_t" if dots else "float"
    header = _header(packed, name, arena_bytes, lowering.weight_bytes, dots, score_type, source)
    names = ",\n".join("    " + _c_string(n) for n in packed.class_names)
    source_c = "\n".join(
        [
            f"/* {name}.c: the binary neural network {spec_name!r} as portable C99, exported by bnn-workbench"
            f"{' (' + source + ')' if source else ''}.",
            " * Generated: edit the model, not this file. Build with -std=c99 or -ffp-contract=off (docs/DEPLOY.md).",
            " *",
            " * The program (op, output):",
            *[f" *   {line}" for line in lowering.ops],
            " */",
            f'#include "{name}.h"',
            "",
            _runtime_source(lowering.needs),
            "/* ------------------------------------------------------------------------------------------ weights */",
            "",
            *[a + "\n" for a in lowering.arrays],
            f"const char *const {name}_class_names[{upper}_NUM_CLASSES] = {{\n{names}\n}};",
            "",
            "/* -------------------------------------------------------------------------------------------- arena */",
            "",
            f"#ifndef {upper}_ARENA_ATTRIBUTE",
            f'#define {upper}_ARENA_ATTRIBUTE /* e.g. __attribute__((section(".ram2"))) to place it */',
            "#endif",
            f"static union {{\n    double align;\n    unsigned char bytes[{max(arena_bytes, 8)}];\n}} {name}_arena "
            f"{upper}_ARENA_ATTRIBUTE;",
            f"#define BNN_AT(T, offset) ((T *)(void *)({name}_arena.bytes + (offset)))",
            "",
            f"void {name}_logits(const {name}_score_t *scores, float *logits) {{",
            logits_body,
            "}",
            "",
            f"int {name}_predict(const uint8_t *input, {name}_score_t *scores) {{",
            *body,
            "}",
            "",
        ]
    )
    selftest = _selftest(packed, name, dots, selftest_input)
    return CLibrary(
        name=name,
        files={f"{name}.h": header, f"{name}.c": source_c, f"{name}_selftest.c": selftest},
        input_shape=packed.input_shape,
        num_classes=classes,
        arena_bytes=arena_bytes,
        peak_live_bytes=lowering.arena.peak_live(),
        weight_bytes=lowering.weight_bytes,
        scores_are_dots=dots,
        ops=lowering.ops,
    )


def layout(shape) -> str:
    return f"C x H x W = {' x '.join(map(str, shape))}" if len(shape) == 3 else f"{shape[0]} features"


def _header(packed, name, arena_bytes, weight_bytes, dots, score_type, source) -> str:
    upper, shape = name.upper(), packed.input_shape
    if len(shape) == 3:
        macros = "\n".join(
            f"#define {upper}_INPUT_{axis} {size}" for axis, size in zip(("CHANNELS", "HEIGHT", "WIDTH"), shape)
        )
    else:
        macros = f"#define {upper}_INPUT_FEATURES {shape[0]}"
    doc = (
        "Scores are the last layer's integer XNOR dot products (k - 2 popcount), exact on every target; the logits "
        "are their float affine map, as the engine computes it."
        if dots
        else "Scores are the float32 logits of the last op."
    )
    spec_name = (packed.meta.get("network_spec") or {}).get("name") or name
    return fill(
        _template("model.h"),
        dict(
            name=name,
            NAME=upper,
            title=spec_name,
            source=source or "a packed model",
            layout=layout(shape),
            input_macros=macros,
            input_bytes=math.prod(shape),
            num_classes=packed.num_classes,
            arena_bytes=arena_bytes,
            weight_bytes=weight_bytes,
            scores_doc=doc,
            scores_are_dots=int(dots),
            score_type=score_type,
        ),
    )


def _selftest(packed, name, dots, selftest_input) -> str:
    shape = packed.input_shape
    if selftest_input is None:
        selftest_input = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        what = "a seeded random input"
    else:
        what = "an input of the model's data"
    selftest_input = np.asarray(selftest_input, dtype=np.uint8).reshape(shape)
    scores, logits = reference_scores(packed, selftest_input[None])
    expected = _format(scores[0], "int32_t" if dots else "float")
    return fill(
        _template("selftest.c"),
        dict(
            name=name,
            NAME=name.upper(),
            selftest_source=what,
            selftest_input=_rows_of(_format(selftest_input, "uint8_t"), 24),
            selftest_expected=_rows_of(expected, 8),
            selftest_class=int(np.argmax(logits[0])),
        ),
    )
