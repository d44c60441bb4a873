"""Per-layer and total parameters, memory and MACs of a network spec, like ``larq.models.summary``.

Pure Python from the spec (no torch). What is counted, per layer:

Parameters, by bit width (``params_by_bits``): a dense/conv kernel counts at its kernel quantizer's bits
(1 for signs and ste_heaviside, 2 for ste_tern, k for dorefa, 32 when null); a bias, a learnable scale, an
rsign threshold (one per input channel), PReLU slopes and batch norm's per-channel tensors (4 with
``affine``: weight, bias, running mean, running var; 2 without) count at 32 bits. Like Larq, batch norm's
running statistics are counted as parameters.

``memory_fp32_bytes``: every parameter as float32 (4 bytes each): the float model's size.

``memory_packed_bytes``: the payload the export (.bnn) stores for the layer, file header and the embedded
spec JSON not included:

- 1-bit kernel: uint64 words packed along the input dimension, one row of words per output channel and
  kernel position: dense (O, K) -> O * ceil(K / 64) * 8 bytes; conv OHWI -> O * KH * KW * ceil(I / 64) * 8.
- k-bit kernel (k > 1): ceil(n * k / 8) bytes for its n weights; float kernel: 4 bytes per weight.
- A "threshold batch norm" -- a batch_norm whose input comes from a layer with a 1-bit sign kernel and whose
  output goes into a layer with a sign input quantizer, with only max_pool / dropout / flatten layers in
  between, in the same layer list -- becomes one int32 threshold and one uint8 flip flag per channel
  (5 bytes per channel). The binary layer's bias and scaling factors (xnor, learnable, magnitude_aware_sign)
  fold into it (0 bytes), and so does the next layer's rsign threshold.
- Any other batch_norm: a per-channel float32 scale and offset (8 bytes per channel).
- Biases, scaling factors and rsign thresholds that do not fold: 4 bytes per channel. PReLU: 4 per channel.
- Pooling, flatten, dropout, other activations and the shortcut addition store nothing.

MACs per sample: dense O * K, conv O * H_out * W_out * KH * KW * I. They are binary (XNOR-popcount) when both
the input and the kernel quantizer are 1-bit signs, float otherwise. Other layers count no MACs.

``compression_ratio`` = total memory_fp32_bytes / total memory_packed_bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.core.shapes import words
from workbench.core.spec import is_sign_quantizer, layer_name, layer_shapes, quantizer_bits, validate_spec

_PASS_THROUGH = ("max_pool", "dropout", "flatten")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _neighbour(layers: list[dict], start: int, step: int) -> int | None:
    """Index of the first layer from ``start`` in direction ``step`` that is not a pass-through layer."""
    i = start
    while 0 <= i < len(layers) and layers[i]["type"] in _PASS_THROUGH:
        i += step
    return i if 0 <= i < len(layers) else None


def _has_sign(layers: list[dict], index: int | None, field: str) -> bool:
    return (index is not None and layers[index]["type"] in ("dense", "conv2d")
            and is_sign_quantizer(layers[index][field]))


def threshold_batch_norms(layers: list[dict]) -> set[int]:
    """Indices of the batch norms in a layer list that export as integer thresholds (see the module doc)."""
    return {j for j, layer in enumerate(layers) if layer["type"] == "batch_norm"
            and _has_sign(layers, _neighbour(layers, j - 1, -1), "kernel_quantizer")
            and _has_sign(layers, _neighbour(layers, j + 1, 1), "input_quantizer")}


def _kernel_row(layer: dict, shape_in: tuple, shape_out: tuple, folds_out: bool, folds_in: bool) -> dict:
    out_ch, in_ch = shape_out[0], shape_in[0]
    k = layer.get("kernel_size", 1)
    spatial = k * k if layer["type"] == "conv2d" else 1
    n_weights = out_ch * spatial * in_ch
    bits = quantizer_bits(layer["kernel_quantizer"])
    if bits == 1:
        packed = out_ch * spatial * words(in_ch) * 8
    elif bits < 32:
        packed = _ceil_div(n_weights * bits, 8)
    else:
        packed = 4 * n_weights
    by_bits = {bits: n_weights}
    extra_params = out_ch * (layer["use_bias"] + (layer["scaling"] == "learnable"))
    if layer["input_quantizer"] is not None and layer["input_quantizer"]["name"] == "rsign":
        extra_params += in_ch
        packed += 0 if folds_in else 4 * in_ch
    if extra_params:
        by_bits[32] = by_bits.get(32, 0) + extra_params
    per_channel_floats = layer["use_bias"] + (layer["scaling"] != "none") + (
        layer["kernel_quantizer"] is not None and layer["kernel_quantizer"]["name"] == "magnitude_aware_sign")
    packed += 0 if folds_out else 4 * out_ch * per_channel_floats
    positions = shape_out[1] * shape_out[2] if len(shape_out) == 3 else 1
    macs = n_weights * positions
    xnor = is_sign_quantizer(layer["input_quantizer"]) and is_sign_quantizer(layer["kernel_quantizer"])
    return {"params_by_bits": by_bits, "memory_packed_bytes": packed,
            "macs_binary": macs if xnor else 0, "macs_float": 0 if xnor else macs}


def _rows(layers: list[dict], input_shape: tuple, prefix: str = "") -> list[dict]:
    shapes = layer_shapes(layers, input_shape)
    thresholds = threshold_batch_norms(layers)
    rows = []
    for i, (layer, (shape_in, shape_out)) in enumerate(zip(layers, shapes)):
        kind, channels = layer["type"], shape_in[0]
        row = {"params_by_bits": {}, "memory_packed_bytes": 0, "macs_binary": 0, "macs_float": 0}
        stored = ""
        if kind in ("dense", "conv2d"):
            folds_out = _neighbour(layers, i + 1, 1) in thresholds
            folds_in = _neighbour(layers, i - 1, -1) in thresholds
            row.update(_kernel_row(layer, shape_in, shape_out, folds_out, folds_in))
            bits = quantizer_bits(layer["kernel_quantizer"])
            stored = "packed bits" if bits == 1 else f"{bits}-bit weights" if bits < 32 else "float32 weights"
        elif kind == "batch_norm":
            row["params_by_bits"] = {32: channels * (4 if layer["affine"] else 2)}
            if i in thresholds:
                row["memory_packed_bytes"], stored = 5 * channels, "int32 thresholds + flip flags"
            else:
                row["memory_packed_bytes"], stored = 8 * channels, "float32 scale + offset"
        elif kind == "activation" and layer["fn"] == "prelu":
            row["params_by_bits"] = {32: channels}
            row["memory_packed_bytes"], stored = 4 * channels, "float32 slopes"
        params = sum(row["params_by_bits"].values())
        rows.append({"name": layer_name(f"{prefix}{i}", layer), "type": kind, "output_shape": list(shape_out),
                     "params": params, "params_1bit": row["params_by_bits"].get(1, 0),
                     "params_32bit": row["params_by_bits"].get(32, 0), "memory_fp32_bytes": 4 * params,
                     "stored": stored, **row})
        if kind == "shortcut":
            rows.extend(_rows(layer["layers"], shape_in, prefix=f"{prefix}{i}."))
    return rows


@dataclass
class Summary:
    """``rows``: one dict per layer (shortcut contents follow their shortcut); ``totals``: the sums."""

    name: str
    rows: list[dict]
    totals: dict

    def to_text(self) -> str:
        """A fixed-width table like larq.models.summary, for the CLI."""
        bit_widths = sorted(self.totals["params_by_bits"])
        header = ["Layer", "Output shape"] + [f"{b}-bit params" for b in bit_widths] + [
            "Packed bytes", "Binary MACs", "Float MACs"]
        table = [header]
        for row in self.rows:
            table.append([row["name"], str(row["output_shape"])]
                         + [f"{row['params_by_bits'].get(b, 0):,}" for b in bit_widths]
                         + [f"{row['memory_packed_bytes']:,}", f"{row['macs_binary']:,}", f"{row['macs_float']:,}"])
        t = self.totals
        table.append(["Total", ""] + [f"{t['params_by_bits'].get(b, 0):,}" for b in bit_widths]
                     + [f"{t['memory_packed_bytes']:,}", f"{t['macs_binary']:,}", f"{t['macs_float']:,}"])
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        lines = [f"Model: {self.name}"]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        for n, r in enumerate(table):
            if n in (1, len(table) - 1):
                lines.append(rule)
            lines.append("  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))))
        lines += [rule,
                  f"Total params: {t['params']:,}",
                  f"Memory float32: {t['memory_fp32_bytes'] / 1024:,.2f} KiB; packed: "
                  f"{t['memory_packed_bytes'] / 1024:,.2f} KiB; compression {t['compression_ratio']:.1f}x",
                  f"MACs per sample: binary {t['macs_binary']:,}, float {t['macs_float']:,}"]
        return "\n".join(lines)


def summary(spec: dict) -> Summary:
    """Parameters by bit width, memory (float32 and packed) and MACs of a network spec, per layer and in total."""
    spec = validate_spec(spec)
    rows = _rows(spec["layers"], tuple(spec["input_shape"]))
    by_bits: dict[int, int] = {}
    for row in rows:
        for bits, n in row["params_by_bits"].items():
            by_bits[bits] = by_bits.get(bits, 0) + n
    totals = {key: sum(row[key] for row in rows) for key in (
        "params", "params_1bit", "params_32bit", "memory_fp32_bytes", "memory_packed_bytes", "macs_binary",
        "macs_float")}
    totals["params_by_bits"] = dict(sorted(by_bits.items()))
    packed = totals["memory_packed_bytes"]
    totals["compression_ratio"] = totals["memory_fp32_bytes"] / packed if packed else 1.0
    return Summary(spec["name"], rows, totals)
