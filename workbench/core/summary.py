"""Per-layer and total parameters, memory and MACs of a network spec, like ``larq.models.summary``.

Pure Python from the spec (no torch). What is counted, per layer:

Parameters, by bit width (``params_by_bits``): a dense/conv kernel counts at its kernel quantizer's bits
(1 for signs and ste_heaviside, 2 for ste_tern, k for dorefa, 32 when null); a bias, a learnable scale, an
rsign threshold (one per input channel), PReLU slopes and batch norm's per-channel tensors (4 with
``affine``: weight, bias, running mean, running var; 2 without) count at 32 bits: the torch model's
parameters and buffers. (Larq's summary counts 2 per batch norm channel, merging gamma and beta into the
moving statistics as an inference engine would.)

``memory_fp32_bytes``: every parameter as float32 (4 bytes each): the float model's size.

``memory_packed_bytes``: exactly the arrays ``pack_model`` stores for the layer (the .bnn file's payload,
without its header and embedded spec), counted from ``workbench.core.pack_plan``, the same plan the packer
fills. Packed 1-bit weights are uint64 words along the input dimension; a binary layer's batch norms, scaling
factors and bias fold into int32 thresholds + uint8 flip flags when a sign follows (or into a scale and shift
when none does), shown on the last batch norm folded in; the first layer on real input keeps a float64 scale
and shift; a sign op in front of an XNOR layer stores its float32 thresholds; a layer that runs in float
(weights of more than 1 bit included) stores float32 weights, biases, batch norm scales and shifts, PReLU
slopes. ``stored`` names those arrays.

MACs per sample: dense O * K, conv O * H_out * W_out * KH * KW * I. They are binary (XNOR-popcount) when both
the input and the kernel quantizer are 1-bit signs, float otherwise. Other layers count no MACs.

``compression_ratio`` = total memory_fp32_bytes / total memory_packed_bytes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from workbench.core.pack_plan import PlannedArray, is_xnor, pack_plan
from workbench.core.spec import layer_name, layer_shapes, quantizer_bits, validate_spec

_DTYPE_WORDS = {"<u8": "uint64", "<i4": "int32", "<f4": "float32", "<f8": "float64", "|u1": "uint8"}
_ARRAY_WORDS = {"weight": "weights", "flip": "flip flags", "use_or": "AND/OR flags", "alpha": "slopes"}


def _stored(arrays: list[PlannedArray]) -> str:
    """What a layer's packed bytes are, e.g. "packed bits" or "int32 thresholds + uint8 flip flags"."""
    return " + ".join(
        "packed bits" if a.name == "weight_bits" else f"{_DTYPE_WORDS[a.dtype]} {_ARRAY_WORDS.get(a.name, a.name)}"
        for a in arrays
    )


def _params_and_macs(layer: dict, shape_in: tuple, shape_out: tuple) -> dict:
    """Parameters by bit width and MACs of one layer (see the module docstring)."""
    kind, channels = layer["type"], shape_in[0]
    row = {"params_by_bits": {}, "macs_binary": 0, "macs_float": 0}
    if kind in ("dense", "conv2d"):
        out_ch = shape_out[0]
        spatial = layer["kernel_size"] ** 2 if kind == "conv2d" else 1
        n_weights = out_ch * spatial * channels
        by_bits = {quantizer_bits(layer["kernel_quantizer"]): n_weights}
        extra_params = out_ch * (layer["use_bias"] + (layer["scaling"] == "learnable"))
        if layer["input_quantizer"] is not None and layer["input_quantizer"]["name"] == "rsign":
            extra_params += channels
        if extra_params:
            by_bits[32] = by_bits.get(32, 0) + extra_params
        positions = shape_out[1] * shape_out[2] if len(shape_out) == 3 else 1
        macs = n_weights * positions
        xnor = is_xnor(layer)
        row.update(params_by_bits=by_bits, macs_binary=macs if xnor else 0, macs_float=0 if xnor else macs)
    elif kind == "batch_norm":
        row["params_by_bits"] = {32: channels * (4 if layer["affine"] else 2)}
    elif kind == "activation" and layer["fn"] == "prelu":
        row["params_by_bits"] = {32: channels}
    return row


def _rows(layers: list[dict], input_shape: tuple, stored: dict[str, list[PlannedArray]], prefix: str = "") -> list:
    """One row per layer (shortcut contents after their shortcut); ``stored``: the planned arrays by layer."""
    rows = []
    for i, (layer, (shape_in, shape_out)) in enumerate(zip(layers, layer_shapes(layers, input_shape), strict=True)):
        name = layer_name(f"{prefix}{i}", layer)
        row = _params_and_macs(layer, shape_in, shape_out)
        params = sum(row["params_by_bits"].values())
        arrays = stored.get(name, [])
        rows.append(
            {
                "name": name,
                "type": layer["type"],
                "output_shape": list(shape_out),
                "params": params,
                "params_1bit": row["params_by_bits"].get(1, 0),
                "params_32bit": row["params_by_bits"].get(32, 0),
                "memory_fp32_bytes": 4 * params,
                "memory_packed_bytes": sum(a.nbytes for a in arrays),
                "stored": _stored(arrays),
                **row,
            }
        )
        if layer["type"] == "shortcut":
            rows.extend(_rows(layer["layers"], shape_in, stored, prefix=f"{prefix}{i}."))
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
        header = (
            ["Layer", "Output shape"]
            + [f"{b}-bit params" for b in bit_widths]
            + ["Packed bytes", "Binary MACs", "Float MACs"]
        )
        table = [header]
        for row in self.rows:
            table.append(
                [row["name"], str(row["output_shape"])]
                + [f"{row['params_by_bits'].get(b, 0):,}" for b in bit_widths]
                + [f"{row['memory_packed_bytes']:,}", f"{row['macs_binary']:,}", f"{row['macs_float']:,}"]
            )
        t = self.totals
        table.append(
            ["Total", ""]
            + [f"{t['params_by_bits'].get(b, 0):,}" for b in bit_widths]
            + [f"{t['memory_packed_bytes']:,}", f"{t['macs_binary']:,}", f"{t['macs_float']:,}"]
        )
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        lines = [f"Model: {self.name}"]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        for n, r in enumerate(table):
            if n in (1, len(table) - 1):
                lines.append(rule)
            cells = zip(r, widths, strict=True)
            lines.append("  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(cells)))
        lines += [
            rule,
            f"Total params: {t['params']:,}",
            f"Memory float32: {t['memory_fp32_bytes'] / 1024:,.2f} KiB; packed: "
            f"{t['memory_packed_bytes'] / 1024:,.2f} KiB; compression {t['compression_ratio']:.1f}x",
            f"MACs per sample: binary {t['macs_binary']:,}, float {t['macs_float']:,}",
        ]
        return "\n".join(lines)


def summary(spec: dict) -> Summary:
    """Parameters by bit width, memory (float32 and packed) and MACs of a network spec, per layer and in total."""
    spec = validate_spec(spec)
    stored: dict[str, list[PlannedArray]] = defaultdict(list)
    for op in pack_plan(spec):
        for array in op.arrays:
            stored[array.layer].append(array)
    rows = _rows(spec["layers"], tuple(spec["input_shape"]), stored)
    by_bits: dict[int, int] = {}
    for row in rows:
        for bits, n in row["params_by_bits"].items():
            by_bits[bits] = by_bits.get(bits, 0) + n
    totals = {
        key: sum(row[key] for row in rows)
        for key in (
            "params",
            "params_1bit",
            "params_32bit",
            "memory_fp32_bytes",
            "memory_packed_bytes",
            "macs_binary",
            "macs_float",
        )
    }
    totals["params_by_bits"] = dict(sorted(by_bits.items()))
    packed = totals["memory_packed_bytes"]
    totals["compression_ratio"] = totals["memory_fp32_bytes"] / packed if packed else 1.0
    return Summary(spec["name"], rows, totals)
