"""Engine vs torch, measured: are the XNOR engine's predictions and hidden bits those of the trained model?

This answers "is the packed file really the network I trained?". The Deploy page shows it,
``bnn-workbench predict --run`` prints it and the engine tests assert that it is exact::

    from workbench.train.agreement import compare
    result = compare(model, packed, x)          # x: preprocessed float inputs, as the model takes them
    result["disagreements"], result["layers"]   # per XNOR layer: bits compared, bits differing
"""

from __future__ import annotations

import time

import numpy as np
import torch

from workbench.deploy.engine import Engine, raw_inputs
from workbench.deploy.kernels import pack_signs
from workbench.deploy.packed import PackedModel


def compare(
    model,
    packed: PackedModel,
    x: np.ndarray,
    y: np.ndarray | None = None,
    threads: int | None = None,
    tolerance: float = 1e-5,
) -> dict:
    """Run the engine and the torch model (eval mode) on ``x`` and compare them.

    ``x`` is what the model takes; the engine gets the same samples as raw uint8 where the file's
    preprocessing allows it. Returns samples, both logits and predictions, both accuracies (with labels
    ``y``), disagreements, the engine's seconds, whether the engine's input was exact, and ``layers``:
    the hidden-bit agreement of :func:`hidden_bit_agreement`.
    """
    engine = Engine(packed, threads=threads)
    u = raw_inputs(x, packed.meta.get("preprocessing") or {})
    start = time.perf_counter()
    logits, records = engine.trace(u)
    seconds = time.perf_counter() - start
    with torch.no_grad(), model.capture_preactivations() as captured:
        reference = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    engine_pred, torch_pred = logits.argmax(axis=1), reference.argmax(axis=1)
    count = len(x)
    labelled = y is not None and count > 0
    return {
        "samples": count,
        "engine_logits": logits,
        "torch_logits": reference,
        "engine_predictions": engine_pred,
        "torch_predictions": torch_pred,
        "engine_accuracy": float((engine_pred == y).mean()) if labelled else float("nan"),
        "torch_accuracy": float((torch_pred == y).mean()) if labelled else float("nan"),
        "disagreements": int((engine_pred != torch_pred).sum()),
        "engine_seconds": seconds,
        "exact_input": u.dtype == np.uint8,
        "layers": hidden_bit_agreement(model, packed, records, captured, tolerance),
    }


def hidden_bit_agreement(
    model, packed: PackedModel, records: list[dict], captured: dict, tolerance: float = 1e-5
) -> list[dict]:
    """Per XNOR layer fed by packed bits: how many of the engine's input bits equal torch's signs.

    ``records`` come from :meth:`Engine.trace`, ``captured`` from ``model.capture_preactivations()``.
    Each row: layer, bits, differing, agreement, and near_zero: torch pre-activations within
    ``tolerance`` of 0, where float rounding alone may decide the sign.
    """
    rows = []
    for name, layer in model.quantized_layers():
        position = next((i for i, r in enumerate(records) if r["name"] == name and r["op"].startswith("binary_")), None)
        if not position or "bits" not in records[position - 1] or name not in captured:
            continue  # a first layer (float or uint8 input) or a layer the engine runs in float
        pre = captured[name]
        if layer.input_quantizer.spec["name"] == "rsign":
            pre = pre - layer.input_quantizer.threshold.detach().view([1, -1] + [1] * (pre.dim() - 2))
        pre = pre.float().numpy()
        bits = records[position - 1]["bits"]
        if pre.ndim == 4:  # the engine holds feature maps as NHWC
            pre = pre.transpose(0, 2, 3, 1)
        elif records[position - 1]["op"] == "flatten":  # dense after a flattened feature map: NHWC order
            in_shape = packed.layers[position - 1].attrs["in_shape"]
            if len(in_shape) == 3:
                pre = pre.reshape(len(pre), *in_shape).transpose(0, 2, 3, 1)
        expected = pack_signs(np.ascontiguousarray(pre)).reshape(bits.shape)
        total = int(pre.size)
        differing = int(np.unpackbits((expected ^ bits).view(np.uint8)).sum())
        rows.append(
            {
                "layer": name,
                "bits": total,
                "differing": differing,
                "agreement": 1.0 - differing / total if total else 1.0,
                "near_zero": int((np.abs(pre) <= tolerance).sum()),
            }
        )
    return rows
