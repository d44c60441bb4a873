"""The XNOR engine: runs a PackedModel (or a .bnn file) on NumPy arrays through workbench.deploy.kernels.

Input is a batch in the spec's channels-first layout, (N, C, H, W) or (N, F), either uint8 raw values
(images: the first layer then runs in exact integers, docs/FORMAT.md) or float32 already preprocessed
(x = u * scale + offset; the first layer then runs in float32). Inside, activations are NHWC: packed
sign bits between binary layers, float32 elsewhere. Everything that can be is prepared at load, so a
layer costs one kernel call and little Python. No torch here.
"""

from __future__ import annotations

import math
import time

import numpy as np

from workbench.core.quantizer_catalog import QUANTIZERS
from workbench.core.shapes import conv_output_size, padding_pair, words
from workbench.deploy import _xnor, bnnfile, kernels
from workbench.deploy.packed import PackedModel


class EngineError(ValueError):
    """Input of the wrong shape or dtype, or an op that refuses its activations at run time (NaN before a sign),
    naming the op. A model that does not fit together is refused before, by ``PackedModel.check``
    (PackedModelError; BnnFormatError from a file)."""


def _im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: tuple[int, int], value: float) -> np.ndarray:
    """NHWC float -> (N, OH, OW, KH*KW*C) patches, padded with ``value``."""
    if pad != (0, 0):
        x = np.pad(x, ((0, 0), pad, pad, (0, 0)), constant_values=value)
    n, h, w, c = x.shape
    oh, ow = conv_output_size(h, kh, stride), conv_output_size(w, kw, stride)
    patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, OH', OW', C, KH, KW
    patches = patches[:, ::stride, ::stride][:, :oh, :ow]
    return np.ascontiguousarray(patches.transpose(0, 1, 2, 4, 5, 3)).reshape(n, oh, ow, kh * kw * c)


def _pool_float(x: np.ndarray, size: int, stride: int, reduce) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    return reduce(windows, axis=(-2, -1))


def _rows(x: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, features), also for an empty batch (where reshape(N, -1) is ambiguous)."""
    return x.reshape(len(x), math.prod(x.shape[1:]))


def _nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


_ONE, _ZERO = np.float32(1), np.float32(0)


def _eval_sign(q, thresholds):
    """sign(x - t) with sign(0) = +1; t: the rsign thresholds per channel, none for the plain signs."""
    return lambda x: np.where((x - thresholds if thresholds is not None else x) >= 0, _ONE, -_ONE)


def _eval_scaled_sign(q, thresholds):
    """sign(x) * mean |x| per output channel (row), as magnitude_aware_sign on a weight tensor (mean in float64)."""

    def f(x):
        scale = _rows(np.abs(x)).astype(np.float64).mean(axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
        return np.where(x >= 0, _ONE, -_ONE) * scale.astype(np.float32)

    return f


def _eval_heaviside(q, thresholds):
    return lambda x: np.where(x >= 0, _ONE, _ZERO)


def _eval_ternary(q, thresholds):
    """+1 above t, -1 below -t, else 0; t fixed, or 0.7 * mean|x| (TWN; mean in float64, as the trainer)."""

    def f(x):
        if q.get("ternary_weight_networks", False):
            t = np.float32(0.7 * np.abs(x).astype(np.float64).mean()) if x.size else _ZERO
        else:
            t = np.float32(q["threshold"])
        return (x > t).astype(np.float32) - (x < -t).astype(np.float32)

    return f


def _eval_dorefa(q, thresholds):
    """mode activations: round(n * clip(x, 0, 1)) / n with n = 2^bits - 1; mode weights: 2 * that of
    tanh(x) / (2 max|tanh(x)|) + 1/2, minus 1 (tanh in float64, rounded to float32, as the trainer)."""
    levels = np.float32(2.0 ** q["bits"] - 1.0)
    if q.get("mode", "activations") != "weights":
        return lambda x: np.round(np.clip(x, _ZERO, _ONE) * levels) / levels

    def weights(x):
        t = np.tanh(x.astype(np.float64)).astype(np.float32)
        m = np.abs(t).max(initial=_ZERO)
        normed = (t / (2 * m) if m > 0 else np.zeros_like(t)) + np.float32(0.5)
        return 2 * (np.round(normed * levels) / levels) - 1

    return weights


# Eval-mode output of each catalogue entry's ``eval_formula``: (quantizer dict, thresholds or None) -> x -> y.
EVAL_FORMULAS = {
    "sign": _eval_sign,
    "scaled_sign": _eval_scaled_sign,
    "heaviside": _eval_heaviside,
    "ternary": _eval_ternary,
    "dorefa": _eval_dorefa,
}


class Engine:
    """Runs a packed model: ``predict(x)``, ``logits(x)``, ``trace(x)``; ``threads`` for the kernels."""

    def __init__(self, packed: PackedModel | str, threads: int | None = None):
        if not isinstance(packed, PackedModel):
            packed = bnnfile.load(packed)
        packed.check()
        self.packed = packed
        self.threads = threads
        # One thread decision per network call, not one per layer: every layer's kernel reads the count that
        # the policy sets before each logits call (a ThreadChoice over the whole call under threads=None).
        self._policy = kernels.thread_policy(threads)
        self._kernel_threads = self._policy if isinstance(self._policy, kernels.ThreadCount) else kernels.ThreadCount()
        self.input_shape = packed.input_shape
        self.num_classes = packed.num_classes
        pre = packed.meta.get("preprocessing") or {"kind": "none"}
        if pre.get("kind") == "affine":
            self.pixel_scale, self.pixel_offset = float(pre["scale"]), float(pre["offset"])
        else:
            self.pixel_scale, self.pixel_offset = 1.0, 0.0
        self.steps = []
        self._chain_parts = {}  # layer index -> its part of a DenseChain (the dense layers that can be one)
        self._body_parts = {}  # layer index -> its bound conv or pooling, for a BitBody
        self._first_conv = None  # a uint8 first conv into bits (bind_input_conv2d), for a ConvNet
        for index, layer in enumerate(packed.layers):
            self._index = index
            try:
                self.steps.append((layer.name, layer.op, getattr(self, "_build_" + layer.op)(layer)))
            except (KeyError, TypeError, IndexError, ValueError) as error:
                raise EngineError(
                    f"layer {index} ({layer.name!r}, op {layer.op}): cannot be prepared: "
                    f"{type(error).__name__}: {error}"
                ) from None
        del self._index
        self._chain = self._build_chain()
        self._body = self._build_body()
        self._net = self._build_net()

    # ------------------------------------------------------------------------------ public API

    def logits(self, x) -> np.ndarray:
        """float32 (N, num_classes) for a batch of uint8 or float32 inputs (N, *input_shape)."""
        state = self._check_input(x)
        return self._policy.run(len(state[1]), lambda count: self._logits_on(count, state))

    def _logits_on(self, threads: int, state) -> np.ndarray:
        self._kernel_threads.count = threads
        if self._chain is not None and self._chain_from == 0 and state[1].dtype == np.uint8:
            u = state[1]  # the whole network in one compiled call
            return self._chain(u.reshape(len(u), self._chain_features))
        if self._net is not None and state[0] == "input" and state[1].dtype == np.uint8:
            try:  # the whole network in one compiled call
                return self._net(state[1])
            except ValueError as error:
                raise self._layer_error(0, error) from None
        if self._chain is not None and self._chain_from > 0:
            if self._body is not None:  # the first layer, then its body in one compiled call
                state = self._step(0, state)
                try:
                    state = ("bits", self._body(self._bits(state)))
                except ValueError as error:
                    raise self._layer_error(1, error) from None
            else:
                for index in range(self._chain_from):
                    state = self._step(index, state)
            try:
                return self._chain(_rows(self._bits(state)))
            except ValueError as error:
                raise self._layer_error(self._chain_from, error) from None
        for index in range(len(self.steps)):
            state = self._step(index, state)
        return self._as_output(state)

    def predict(self, x) -> np.ndarray:
        """Class indices (N,) int64."""
        return self.logits(x).argmax(axis=1)

    def trace(self, x) -> tuple[np.ndarray, list[dict]]:
        """(logits, per op: name, op, seconds, and "bits" (the packed output) where the output is bits)."""
        state = self._check_input(x)
        records = []
        for index, (name, op, _) in enumerate(self.steps):
            start = time.perf_counter()
            state = self._step(index, state)
            seconds = time.perf_counter() - start
            record = {"name": name, "op": op, "seconds": seconds}
            if state[0] == "bits":
                record["bits"] = state[1].copy()
            records.append(record)
        return self._as_output(state), records

    def _step(self, index: int, state):
        """Run op ``index``; a refusal (a kernel's ValueError, e.g. NaN activations before a sign) names the op."""
        try:
            return self.steps[index][2](state)
        except ValueError as error:
            raise self._layer_error(index, error) from None

    def _layer_error(self, index: int, error: ValueError) -> EngineError:
        name, op, _ = self.steps[index]
        return EngineError(f"layer {index} ({name!r}, op {op}): {error}")

    # ------------------------------------------------------------------------------ states

    def _check_input(self, x):
        x = np.asarray(x)
        if x.ndim != 1 + len(self.input_shape) or tuple(x.shape[1:]) != self.input_shape:
            raise EngineError(
                f"input: expected shape (N, {', '.join(map(str, self.input_shape))}) (channels-first), got {x.shape}"
            )
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.floating):
                raise EngineError(f"input: expected uint8 raw values or float32 preprocessed inputs, got {x.dtype}")
            x = x.astype(np.float32, copy=False)
        self._saved = []
        return ("input", x)

    def _as_output(self, state) -> np.ndarray:
        kind, value = state
        if kind != "real" or value.ndim != 2 or value.shape[1] != self.num_classes:
            raise EngineError(
                f"the last op must give float logits (N, {self.num_classes}), got {kind} "
                f"{getattr(value, 'shape', None)}"
            )
        return value.astype(np.float32, copy=False)

    def _real(self, state) -> np.ndarray:
        """Float32 NHWC (or (N, F)) activations; raw input goes through the preprocessing first."""
        kind, x = state
        if kind == "real":
            return x
        if kind == "input":
            if x.dtype == np.uint8:
                x = x.astype(np.float32) * np.float32(self.pixel_scale) + np.float32(self.pixel_offset)
            return _nchw_to_nhwc(x)
        raise EngineError("a float op received packed bits")

    @staticmethod
    def _bits(state) -> np.ndarray:
        if state[0] != "bits":
            raise EngineError(f"a binary op received {state[0]} activations, expected packed bits")
        return state[1]

    def _build_chain(self):
        """One kernels.bind_dense_chain for the network's dense layers at its end: the whole network when it is
        [flatten] uint8 dense -> binary dense ... -> binary dense to logits (the binary MLP; ``_chain_from`` 0),
        or, after convolutions, the [flatten] binary dense ... -> logits tail, on the bits the op before it gives
        (VGG-small). Bit for bit what the op loop gives (tests/test_engine.py); None where nothing fits."""
        ops = [op for _, op, _ in self.steps]
        start = len(ops)
        while start > 0 and self._chain_parts.get(start - 1) is not None:
            start -= 1
        parts = [self._chain_parts[index] for index in range(start, len(ops))]
        self._chain_from = start
        while self._chain_from > 0 and ops[self._chain_from - 1] == "flatten":
            self._chain_from -= 1
        if len(parts) < 2 or parts[-1][0] != "last" or any(part[0] != "bits" for part in parts[1:-1]):
            return None
        if parts[0][0] == "u8":
            self._chain_features = int(np.prod(self.input_shape))
            if self._chain_from != 0 or parts[0][2] != self._chain_features:
                return None
            first, middle = parts[0][1:], parts[1:-1]
        elif self._chain_from > 0:
            first, middle = None, parts[:-1]
        else:
            return None
        try:
            return kernels.bind_dense_chain(
                first, [part[1:] for part in middle], parts[-1][1:], threads=self._kernel_threads
            )
        except ValueError:  # layers the chain cannot take (PackedModel.check passed them): the op loop runs them
            return None

    def _build_body(self):
        """One kernels.bind_bit_body for the binary convs and 2x2 poolings between a first layer that gives bits
        and the dense chain (VGG-small's body), or None where anything else sits between them. Bit for bit what
        the op loop gives (tests/test_engine.py)."""
        if self._chain is None or self._chain_from < 2 or self.packed.layers[0].attrs.get("output") != "bits":
            return None
        parts = [self._body_parts.get(index) for index in range(1, self._chain_from)]
        if any(part is None for part in parts) or "out_shape" not in self.packed.layers[0].attrs:
            return None
        channels, height, width = (int(v) for v in self.packed.layers[0].attrs["out_shape"])
        try:
            return kernels.bind_bit_body(parts, (height, width, words(channels)), threads=self._kernel_threads)
        except ValueError:  # shapes the body cannot take: the op loop runs them
            return None

    def _build_net(self):
        """One kernels.bind_conv_net for a uint8 first conv into bits, its BitBody and its dense tail (VGG-small,
        binary-cnn), or None where the network is not those three. Bit for bit what the op loop gives."""
        if self._first_conv is None or self._body is None or self._chain is None:
            return None
        try:
            return kernels.bind_conv_net(self._first_conv, self._body, self._chain, threads=self._kernel_threads)
        except ValueError:  # parts that do not fit one another: the calls above run them
            return None

    # ------------------------------------------------------------------------------ binary ops

    def _build_binary_dense(self, layer):
        w, k = np.ascontiguousarray(layer.arrays["weight_bits"]), int(layer.attrs["k"])
        if w.ndim != 2 or w.shape[1] != words(k):
            raise ValueError(f"weight_bits shape {w.shape} does not match k={k}")
        return self._binary_output(layer, lambda **kw: kernels.bind_gemm(w, k, threads=self._kernel_threads, **kw))

    def _build_binary_conv2d(self, layer):
        w, c = np.ascontiguousarray(layer.arrays["weight_bits"]), int(layer.attrs["k"])
        stride, padding = int(layer.attrs["stride"]), layer.attrs["padding"]
        if w.ndim != 4 or w.shape[3] != words(c):
            raise ValueError(f"weight_bits shape {w.shape} does not match k={c}")
        return self._binary_output(
            layer,
            lambda **kw: kernels.bind_conv2d(w, c, stride=stride, padding=padding, threads=self._kernel_threads, **kw),
        )

    def _binary_output(self, layer, bind):
        """The layer's step with its kernel bound at load: fused thresholds to bits, or dots * scale + shift."""
        dense = layer.op == "binary_dense"
        if dense:
            w, k = np.ascontiguousarray(layer.arrays["weight_bits"]), int(layer.attrs["k"])
        if layer.attrs["output"] == "bits":
            thresholds = np.ascontiguousarray(layer.arrays["thresholds"], dtype=np.int32)
            flip = np.ascontiguousarray(layer.arrays["flip"], dtype=np.uint8)
            kernel = bind(thresholds=thresholds, flip=flip)
            if dense:
                self._chain_parts[self._index] = ("bits", w, k, thresholds, flip)
            else:
                self._body_parts[self._index] = kernel
            return lambda s: ("bits", kernel(self._bits(s)))
        kernel = bind()
        scale = layer.arrays["scale"].astype(np.float32)
        shift = layer.arrays["shift"].astype(np.float32)
        if dense and scale.shape == shift.shape == (w.shape[0],):
            self._chain_parts[self._index] = ("last", w, k, scale, shift)
        return lambda s: ("real", kernel(self._bits(s)) * scale + shift)

    # ------------------------------------------------------------------------------ first layer

    def _build_input_dense(self, layer):
        w, k = np.ascontiguousarray(layer.arrays["weight_bits"]), int(layer.attrs["k"])
        signs = kernels.unpack_signs(w, k).astype(np.float32)  # (O, K) +-1 for float input
        total = signs.sum(axis=1, dtype=np.int64)
        a, b = layer.arrays["scale"].astype(np.float64), layer.arrays["shift"].astype(np.float64)
        to_bits = layer.attrs["output"] == "bits"
        if to_bits:
            # uint8 input: one kernel call, exact integer dots compared with integer thresholds
            rule = self._int32_rule(self._integer_rule(a, b, total), k)
            exact = kernels.bind_gemm(w, k, *rule, uint8=True, threads=self._kernel_threads)
            if rule[0].ndim == 1:
                self._chain_parts[self._index] = ("u8", w, k, *rule)
        else:
            exact = kernels.bind_gemm(w, k, uint8=True, threads=self._kernel_threads)

        def run(state):
            kind, x = state
            if kind == "input" and x.dtype == np.uint8:
                u = exact(np.ascontiguousarray(_rows(x)))
                if to_bits:
                    return ("bits", u)
                dot_x = self.pixel_scale * u + self.pixel_offset * total
            else:
                dot_x = (_rows(self._real(state)) @ signs.T).astype(np.float64)
            z = a * dot_x + b
            return ("bits", kernels.pack_signs(z)) if to_bits else ("real", z.astype(np.float32))

        return run

    @staticmethod
    def _int32_rule(rule, k):
        """The integer rule as int32 thresholds and flip flags for the fused kernels: |dot(u, w)| <= 255 k,
        so thresholds beyond that range are clipped to 255 k + 1 (never / always met, as before)."""
        thresholds, direction = rule
        bound = 255 * k + 1
        return np.clip(thresholds, -bound, bound).astype(np.int32), (direction < 0).astype(np.uint8)

    def _build_input_conv2d(self, layer):
        w, c = np.ascontiguousarray(layer.arrays["weight_bits"]), int(layer.attrs["k"])
        o, kh, kw, _ = w.shape
        stride, padding = int(layer.attrs["stride"]), layer.attrs["padding"]
        _, h, width = layer.attrs["in_shape"]  # checked against what reaches the op (PackedModel.check)
        signs = kernels.unpack_signs(w, c).astype(np.float32)  # (O, KH, KW, C)
        tap_sums = signs.sum(axis=3).astype(np.int64)  # (O, KH, KW)
        oh, ow = kernels.conv_output_shape(h, width, kh, kw, stride, padding)
        pad = padding_pair(padding, kh)
        (top, _), (left, _) = pad, padding_pair(padding, kw)
        # sum of the weights over the taps that fall inside the image, per output position
        valid = np.zeros((oh, ow, o), np.int64)
        rows, cols = np.arange(oh) * stride - top, np.arange(ow) * stride - left
        for i in range(kh):
            for j in range(kw):
                inside = ((rows + i >= 0) & (rows + i < h))[:, None] & ((cols + j >= 0) & (cols + j < width))[None]
                valid += inside[:, :, None] * tap_sums[None, None, :, i, j]
        a, b = layer.arrays["scale"].astype(np.float64), layer.arrays["shift"].astype(np.float64)
        matrix = np.ascontiguousarray(signs.reshape(o, -1).T)
        to_bits = layer.attrs["output"] == "bits"
        # uint8 input: im2col of the pixels (padded with 0, so padded taps add nothing) against the weights
        # packed along the whole patch K = KH*KW*C, exact integer dots in one kernel call
        k = kh * kw * c
        patch_bits = kernels.pack_signs(signs.reshape(o, k))
        thresholds, flip = self._int32_rule(self._integer_rule(a, b, valid), k) if to_bits else (None, None)
        # thresholds (OH, OW, O) vary with the position where padded taps drop out of the sum; the direction
        # (flip) is per channel. One fused kernel call either way: im2col row i is position i % (OH * OW).
        per_channel = to_bits and thresholds.size > 0 and bool((thresholds == thresholds[:1, :1]).all())
        if to_bits:  # im2col and the thresholded GEMM in one compiled call
            first = kernels.bind_input_conv2d(
                patch_bits,
                (kh, kw),
                c,
                (h, width),
                thresholds[0, 0] if per_channel else thresholds.reshape(oh * ow, o),
                flip[0, 0],
                stride,
                padding,
                threads=self._kernel_threads,
            )
            if self._index == 0:  # the network's first layer: a ConvNet's first part
                self._first_conv = first
        else:
            exact = kernels.bind_gemm(patch_bits, k, uint8=True, threads=self._kernel_threads)
            # the im2col of pixels with its geometry checked once here (the input's shape is checked per batch)
            kernels.im2col_uint8(np.zeros((0, c, h, width), np.uint8), kh, kw, stride, padding)
            pad_top, _, pad_left, _ = kernels._padding(padding, kh, kw)

        def run(state):
            kind, x = state
            if kind == "input" and x.dtype == np.uint8:
                if to_bits:
                    return ("bits", first(x))
                n = len(x)
                cols = np.empty((n * oh * ow, k), dtype=np.uint8)
                _xnor.im2col_uint8(np.ascontiguousarray(x), kh, kw, stride, stride, pad_top, pad_left, oh, ow, cols)
                u = exact(cols).reshape(n, oh, ow, o)
                dot_x = self.pixel_scale * u + self.pixel_offset * valid
            else:
                dot_x = (_im2col(self._real(state), kh, kw, stride, pad, 0.0) @ matrix).astype(np.float64)
            z = a * dot_x + b
            return ("bits", kernels.pack_signs(z)) if to_bits else ("real", z.astype(np.float32))

        return run

    def _integer_rule(self, a, b, weight_sums):
        """Integer thresholds on dot(u, w) for uint8 input: sign(a * (scale * U + offset * S) + b) becomes
        +1 iff direction * (U - T) >= 0, T per channel (and per position where S varies with padding)."""
        slope = a * self.pixel_scale
        with np.errstate(divide="ignore", invalid="ignore"):
            boundary = -(b + a * self.pixel_offset * weight_sums) / slope
        limit = 2**40
        thresholds = np.where(slope > 0, np.ceil(boundary), np.floor(boundary))
        constant = np.where(b + a * self.pixel_offset * weight_sums >= 0, -limit, limit)
        thresholds = np.where(slope == 0, constant, np.nan_to_num(thresholds, nan=limit, posinf=limit, neginf=-limit))
        direction = np.where(slope < 0, -1, 1)
        return np.clip(thresholds, -limit, limit).astype(np.int64), np.broadcast_to(direction, thresholds.shape).astype(
            np.int64
        )

    # ------------------------------------------------------------------------------ bits plumbing

    def _build_sign(self, layer):
        thresholds = layer.arrays.get("thresholds")

        def run(state):
            x = self._real(state)
            return ("bits", kernels.pack_signs(x - thresholds if thresholds is not None else x))

        return run

    def _build_max_pool_bits(self, layer):
        size, stride = int(layer.attrs["pool_size"]), int(layer.attrs["stride"])
        use_or = layer.arrays.get("use_or")
        flipped = np.asarray(use_or) > 0 if use_or is not None else False
        if size == 2 and stride == 2:  # AND (max of +-1) per channel, OR (min) where the next threshold is flipped
            pool = kernels.bind_max_pool2d_bits(flipped)
            self._body_parts[self._index] = pool
            return lambda s: ("bits", pool(self._bits(s)))
        mask = kernels.pack_signs(np.where(flipped, -1, 1).astype(np.int8)) if use_or is not None else None

        def run(state):
            bits = self._bits(state)
            low = _pool_float(bits, size, stride, np.bitwise_and.reduce)
            if mask is None or not mask.any():
                return ("bits", low)
            return ("bits", (low & ~mask) | (_pool_float(bits, size, stride, np.bitwise_or.reduce) & mask))

        return run

    def _build_flatten(self, layer):
        def run(state):
            kind, x = state
            if kind == "bits" or kind == "input":
                return (kind, _rows(x))
            return (kind, _rows(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) if x.ndim == 4 else x)

        return run

    # ------------------------------------------------------------------------------ float ops

    def _build_float_dense(self, layer):
        weight_t = np.ascontiguousarray(layer.arrays["weight"].T, dtype=np.float32)
        bias = layer.arrays.get("bias")
        return lambda s: ("real", self._real(s) @ weight_t + (bias if bias is not None else 0))

    def _build_float_conv2d(self, layer):
        weight = layer.arrays["weight"].astype(np.float32)  # OIHW, as torch
        o, _, kh, kw = weight.shape
        matrix = np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, o))
        bias = layer.arrays.get("bias")
        stride, pad, value = (
            int(layer.attrs["stride"]),
            padding_pair(layer.attrs["padding"], kh),
            float(layer.attrs["pad_value"]),
        )

        def run(state):
            y = _im2col(self._real(state), kh, kw, stride, pad, value) @ matrix
            return ("real", y + bias if bias is not None else y)

        return run

    def _build_float_affine(self, layer):
        scale, shift = layer.arrays["scale"].astype(np.float32), layer.arrays["shift"].astype(np.float32)
        return lambda s: ("real", self._real(s) * scale + shift)

    def _build_max_pool(self, layer):
        size, stride = int(layer.attrs["pool_size"]), int(layer.attrs["stride"])
        return lambda s: ("real", _pool_float(self._real(s), size, stride, np.max))

    def _build_avg_pool(self, layer):
        size, stride = int(layer.attrs["pool_size"]), int(layer.attrs["stride"])
        return lambda s: ("real", _pool_float(self._real(s), size, stride, np.mean).astype(np.float32))

    def _build_activation(self, layer):
        fn = layer.attrs["fn"]
        alpha = layer.arrays.get("alpha")
        functions = {
            "relu": lambda x: np.maximum(x, np.float32(0)),
            "hardtanh": lambda x: np.clip(x, np.float32(-1), np.float32(1)),
            "tanh": np.tanh,
            "identity": lambda x: x,
            "prelu": lambda x: np.where(x >= 0, x, alpha * x),
        }
        function = functions[fn]
        return lambda s: ("real", function(self._real(s)).astype(np.float32, copy=False))

    def _build_quantize(self, layer):
        q = layer.attrs["quantizer"]
        info = QUANTIZERS.get(q["name"])
        if info is None:
            raise ValueError(f"unknown quantizer {q['name']!r}")
        f = EVAL_FORMULAS[info.eval_formula](q, layer.arrays.get("thresholds"))
        return lambda s: ("real", f(self._real(s)).astype(np.float32, copy=False))

    def _build_residual_begin(self, layer):
        def run(state):
            x = self._real(state)
            self._saved.append(x)
            return ("real", x)

        return run

    def _build_residual_add(self, layer):
        return lambda s: ("real", self._real(s) + self._saved.pop())


def raw_inputs(x: np.ndarray, preprocessing: dict) -> np.ndarray:
    """The uint8 values behind preprocessed images (for the exact first layer), or x unchanged when the
    preprocessing is not an affine map of uint8 values that reproduces x exactly."""
    if (preprocessing or {}).get("kind") != "affine" or not len(x):
        return x
    scale, offset = np.float32(preprocessing["scale"]), np.float32(preprocessing["offset"])
    u = np.rint((x - offset) / scale)
    if u.min() < 0 or u.max() > 255:
        return x
    u = u.astype(np.uint8)
    return u if np.array_equal(u.astype(np.float32) * scale + offset, x) else x
