"""The engine's program planned from a network spec alone: which ops, which attrs, which arrays of what size.

Packing (``workbench.train.packing``) walks this plan and only fills the arrays from the torch modules; the
summary counts the same arrays for its packed bytes. So every decision about what a layer becomes is made
here, once (docs/FORMAT.md, "Ops"):

- A dense/conv with sign weights and a sign input quantizer is XNOR-able: it runs on packed bits
  (``binary_*``), after a ``sign`` op where its input is real. One with sign weights and no input quantizer
  that sees the network's input runs as ``input_*``. Every other dense/conv runs in float32, after a
  ``quantize`` op when it has an input quantizer.
- The batch norms, dropouts, sign-preserving activations, max pools and flatten between a binary layer and
  the next XNOR layer of the same layer list fold into the binary layer's output (``fold_after``): integer
  thresholds, ``max_pool_bits`` and ``flatten`` on bits. Anything else breaks that chain: the output stays
  float, with the batch norms right after the layer folded into its scale and shift.

Each array belongs to one spec layer (``PlannedArray.layer``) for the summary's bytes per layer: a binary
layer's thresholds (or scale and shift) belong to the last batch norm folded into it, if any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.core.shapes import WORD_BITS, words
from workbench.core.spec import is_sign_quantizer, layer_name, layer_shapes, validate_spec

# activations that keep the sign of a monotone chain, so a max pool after them still pools bits
SIGN_PRESERVING = ("identity", "hardtanh", "tanh")


@dataclass(frozen=True)
class PlannedArray:
    """An array an op stores: name, shape, NumPy dtype string (as in docs/FORMAT.md), owning spec layer."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    layer: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * int(self.dtype[-1])  # "<f8", "|u1": the item size ends the string


@dataclass(frozen=True)
class PlannedOp:
    """One op of the engine's program, its arrays still to be filled.

    ``layers``: the spec layers the op carries out, its own first (for a binary layer also the batch norms,
    dropouts and activations folded into it). ``batch_norms``: for ``binary_*`` / ``input_*`` the batch norms
    folded into the output, in order; for ``max_pool_bits`` the ones after the pool, whose gamma signs choose
    AND or OR per channel. ``sign_of``: for a bits output, the layer whose input quantizer takes it (its rsign
    threshold folds in). ``flat_from``: for a ``binary_dense`` on flattened bits, the (C, H, W) map they came from.
    """

    name: str
    op: str
    attrs: dict
    arrays: tuple[PlannedArray, ...] = ()
    layers: tuple[str, ...] = ()
    batch_norms: tuple[str, ...] = ()
    sign_of: str | None = None
    flat_from: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Fold:
    """What ``fold_after`` found after a binary layer at ``index`` of a layer list.

    ``output`` is "bits" when the chain ends in the XNOR layer at ``end`` (whose sign takes the output), or
    "float"; ``end`` is the first index not folded. ``consumed``: the indices of the dropouts, activations and
    batch norms the layer's op carries out; ``pools`` and ``flatten`` get ops of their own.
    """

    output: str
    end: int
    batch_norms: tuple[int, ...] = ()
    consumed: tuple[int, ...] = ()
    pools: tuple[int, ...] = ()
    flatten: int | None = None


def is_xnor(layer: dict) -> bool:
    """A dense/conv with sign weights and a sign input quantizer: it runs as XNOR-popcount on packed bits."""
    return (
        layer["type"] in ("dense", "conv2d")
        and is_sign_quantizer(layer["input_quantizer"])
        and is_sign_quantizer(layer["kernel_quantizer"])
    )


def fold_after(layers: list[dict], index: int) -> Fold:
    """What folds into the output of the binary layer ``layers[index]`` (see the module docstring).

    z = A * dot + B, composed through batch norms, only matters through the next layer's sign; a max pool
    commutes with that sign because the chain is monotone per channel. Once a non-identity activation has
    been seen no batch norm may follow (it would no longer be affine in z), and nothing but the XNOR layer
    may follow a flatten.
    """
    batch_norms, consumed, pools, flatten = [], [], [], None
    nonlinear = False
    for j in range(index + 1, len(layers)):
        layer = layers[j]
        kind = layer["type"]
        if kind == "batch_norm" and not nonlinear and flatten is None:
            batch_norms.append(j)
            consumed.append(j)
        elif kind == "dropout":
            consumed.append(j)
        elif kind == "activation" and layer["fn"] in SIGN_PRESERVING and flatten is None:
            nonlinear = nonlinear or layer["fn"] != "identity"
            consumed.append(j)
        elif kind == "max_pool" and flatten is None:
            pools.append(j)
        elif kind == "flatten" and flatten is None:
            flatten = j
        elif is_xnor(layer):
            return Fold("bits", j, tuple(batch_norms), tuple(consumed), tuple(pools), flatten)
        else:
            break
    # no sign takes the output: it stays float, with the batch norms (and dropouts) right after it folded in
    end = index + 1
    while end < len(layers) and layers[end]["type"] in ("batch_norm", "dropout"):
        end += 1
    folded = range(index + 1, end)
    return Fold("float", end, tuple(j for j in folded if layers[j]["type"] == "batch_norm"), tuple(folded))


def pack_plan(spec: dict) -> list[PlannedOp]:
    """The ops packing emits for a network spec, in order, with the arrays each one stores."""
    spec = validate_spec(spec)
    planner = _Planner()
    planner.plan_list(spec["layers"], tuple(spec["input_shape"]))
    return planner.ops


class _Planner:
    """Walks a layer list; ``state`` is what the activation is: "input", "real" or "bits" (docs/FORMAT.md)."""

    def __init__(self):
        self.ops: list[PlannedOp] = []
        self.state = "input"

    def add(self, name, op, attrs=None, arrays=(), **fields):
        self.ops.append(PlannedOp(name, op, attrs or {}, tuple(PlannedArray(*a) for a in arrays), **fields))

    def plan_list(self, layers: list[dict], input_shape: tuple, prefix: str = "") -> None:
        shapes = layer_shapes(layers, input_shape)
        names = [layer_name(f"{prefix}{i}", layer) for i, layer in enumerate(layers)]
        index = 0
        while index < len(layers):
            layer, name, (shape, _) = layers[index], names[index], shapes[index]
            kind = layer["type"]
            if kind in ("dense", "conv2d"):
                index = self.plan_quant(layers, names, shapes, index)
                continue
            if kind == "flatten":
                self.add(name, "flatten", {"in_shape": list(shape)}, layers=(name,))
            elif kind == "shortcut":
                self.state = "real"
                self.add(name, "residual_begin", {"shape": list(shape)}, layers=(name,))
                self.plan_list(layer["layers"], shape, f"{prefix}{index}.")
                self.state = "real"
                self.add(name, "residual_add", {"shape": list(shape)}, layers=(name,))
            elif kind != "dropout":
                self.state = "real"
                self.plan_float(name, layer, shape)
            index += 1

    def plan_float(self, name: str, layer: dict, shape: tuple) -> None:
        kind, channels = layer["type"], shape[0]
        if kind == "batch_norm":
            affine = [("scale", (channels,), "<f4", name), ("shift", (channels,), "<f4", name)]
            self.add(name, "float_affine", {}, affine, layers=(name,))
        elif kind in ("max_pool", "avg_pool"):
            self.add(name, kind, {"pool_size": layer["pool_size"], "stride": layer["stride"]}, layers=(name,))
        else:  # activation
            alpha = [("alpha", (channels,), "<f4", name)] if layer["fn"] == "prelu" else []
            self.add(name, "activation", {"fn": layer["fn"]}, alpha, layers=(name,))

    def plan_quant(self, layers, names, shapes, index) -> int:
        """Plan the dense/conv at ``index`` and what folds into it; returns the index to go on from."""
        layer, name, (shape, out_shape) = layers[index], names[index], shapes[index]
        kind = layer["type"]
        if self.state != "input" and is_xnor(layer):
            if self.state == "real":
                self.add(
                    name, "sign", {"channels": shape[0]}, [("thresholds", (shape[0],), "<f4", name)], layers=(name,)
                )
            return self.plan_binary("binary_" + kind, layers, names, shapes, index, self._flattened_bits())
        if is_sign_quantizer(layer["kernel_quantizer"]) and self.state == "input" and layer["input_quantizer"] is None:
            # the first layer on real (or uint8) input: exact via bit-planes, see docs/FORMAT.md
            return self.plan_binary("input_" + kind, layers, names, shapes, index, None)
        self.state = "real"
        self.plan_float_quant(name, layer, shape, out_shape[0])
        return index + 1

    def plan_float_quant(self, name: str, layer: dict, shape: tuple, out: int) -> None:
        """A dense/conv in float32: its input quantizer in float, its weights dequantized (times the scaling)."""
        q = layer["input_quantizer"]
        if q is not None:
            thresholds = [("thresholds", (shape[0],), "<f4", name)] if q["name"] == "rsign" else []
            self.add(name, "quantize", {"quantizer": q}, thresholds, layers=(name,))
        bias = [("bias", (out,), "<f4", name)] if layer["use_bias"] else []
        if layer["type"] == "dense":
            self.add(name, "float_dense", {}, [("weight", (out, shape[0]), "<f4", name), *bias], layers=(name,))
            return
        size = layer["kernel_size"]
        pad_value = 1.0 if is_sign_quantizer(q) else 0.0  # a sign input pads with +1, as the training layer
        attrs = {"stride": layer["stride"], "padding": layer["padding"], "pad_value": pad_value}
        self.add(
            name, "float_conv2d", attrs, [("weight", (out, shape[0], size, size), "<f4", name), *bias], layers=(name,)
        )

    def _flattened_bits(self) -> tuple[int, int, int] | None:
        """(C, H, W) when the current bits are a flattened NHWC map (the next dense's weights follow its order)."""
        last = self.ops[-1] if self.ops else None
        if last is not None and last.op == "flatten" and len(last.attrs["in_shape"]) == 3:
            return tuple(last.attrs["in_shape"])
        return None

    def plan_binary(self, op, layers, names, shapes, index, flat_from) -> int:
        """A binary layer's op and what folds into it: thresholds (bits output) or scale and shift (float).

        The kernel's bit count ``k`` is the input channels (conv) or features (dense); on flattened bits the
        dense's weights follow the NHWC words, each pixel's channels padded to whole words.
        """
        layer, name, (shape, out_shape) = layers[index], names[index], shapes[index]
        fold = fold_after(layers, index)
        out = out_shape[0]
        attrs = {"k": shape[0], "in_shape": list(shape), "out_shape": list(out_shape)}
        if layer["type"] == "conv2d":
            size = layer["kernel_size"]
            attrs.update(kernel_size=size, stride=layer["stride"], padding=layer["padding"])
            bits_shape = (out, size, size, words(shape[0]))
        else:
            if flat_from is not None:
                c, h, w = flat_from
                attrs["k"] = WORD_BITS * h * w * words(c)
            bits_shape = (out, words(attrs["k"]))
        owner = names[fold.batch_norms[-1]] if fold.batch_norms else name
        float_type = "<f8" if op.startswith("input_") else "<f4"
        if fold.output == "bits" and op.startswith("binary_"):
            outputs = [("thresholds", (out,), "<i4", owner), ("flip", (out,), "|u1", owner)]
        else:
            outputs = [("scale", (out,), float_type, owner), ("shift", (out,), float_type, owner)]
        batch_norms = tuple(names[j] for j in fold.batch_norms)
        self.add(
            name,
            op,
            dict(attrs, output=fold.output),
            [("weight_bits", bits_shape, "<u8", name)] + outputs,
            layers=(name, *(names[j] for j in fold.consumed)),
            batch_norms=batch_norms,
            sign_of=names[fold.end] if fold.output == "bits" else None,
            flat_from=flat_from,
        )
        self.state = "bits" if fold.output == "bits" else "real"
        for j in fold.pools:
            pool, pool_name = layers[j], names[j]
            after = tuple(names[b] for b in fold.batch_norms if b > j)
            self.add(
                pool_name,
                "max_pool_bits",
                {"pool_size": pool["pool_size"], "stride": pool["stride"], "out_shape": list(shapes[j][1])},
                [("use_or", (out,), "|u1", pool_name)],
                layers=(pool_name,),
                batch_norms=after,
            )
        if fold.flatten is not None:
            flatten_name = names[fold.flatten]
            self.add(flatten_name, "flatten", {"in_shape": list(shapes[fold.flatten][0])}, layers=(flatten_name,))
        return fold.end
