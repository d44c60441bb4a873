"""Memory and speed reports of a packed model: what packing saves, and how fast the engine runs.

``memory_report`` counts per op the bytes the .bnn stores against the float32 weights they replace.
``speed_report`` times the engine against float32 twins in interleaved rounds (workbench.deploy.timing):
torch (the spec's float twin, passed in by the caller, so this module never imports torch), in NCHW and in
channels_last, the faster of the two per round being the baseline, and NumPy (the same ops with the binary
weights unpacked to float32 +-1), with this core's XOR + popcount ceiling timed in the same rounds. Ratios are
min / median / max of per-round ratios; each row sets every library's thread count. Timings are printed,
never tested.
"""

from __future__ import annotations

import pathlib

import numpy as np

from workbench.core.summary import summary
from workbench.deploy import kernels, timing
from workbench.deploy.engine import Engine
from workbench.deploy.packed import PackedLayer, PackedModel

_WEIGHT_OPS = ("binary_dense", "binary_conv2d", "input_dense", "input_conv2d")


def _float_weight_count(layer: PackedLayer) -> int:
    """Weights the layer holds as a float model would: binary ones unpacked, float ones as they are."""
    if layer.op in _WEIGHT_OPS:
        w = layer.arrays["weight_bits"]
        if layer.op.endswith("dense"):
            return w.shape[0] * int(np.prod(layer.attrs["in_shape"]))
        return int(np.prod(w.shape[:-1])) * int(layer.attrs["k"])
    return sum(a.size for a in layer.arrays.values())


def memory_report(packed: PackedModel, path: str | pathlib.Path | None = None) -> dict:
    """Per op and total: fp32 bytes (4 per weight and per channel parameter), packed bytes, their ratio.

    With ``path`` (the .bnn file) the file size sits beside the summary's prediction (spec-based).
    """
    rows = []
    for layer in packed.layers:
        if not layer.arrays:
            continue
        packed_bytes = sum(a.nbytes for a in layer.arrays.values())
        weights = _float_weight_count(layer)
        if layer.op in _WEIGHT_OPS:
            weight_bytes = layer.arrays["weight_bits"].nbytes
            rows.append(
                {
                    "layer": layer.name,
                    "op": layer.op,
                    "fp32_bytes": 4 * weights,
                    "packed_bytes": packed_bytes,
                    "weight_fp32_bytes": 4 * weights,
                    "weight_packed_bytes": weight_bytes,
                    "ratio": 4 * weights / packed_bytes,
                }
            )
        else:
            rows.append(
                {
                    "layer": layer.name,
                    "op": layer.op,
                    "fp32_bytes": 4 * weights,
                    "packed_bytes": packed_bytes,
                    "ratio": 4 * weights / packed_bytes if packed_bytes else 1.0,
                }
            )
    fp32 = sum(r["fp32_bytes"] for r in rows)
    total = sum(r["packed_bytes"] for r in rows)
    report = {
        "rows": rows,
        "totals": {"fp32_bytes": fp32, "packed_bytes": total, "ratio": fp32 / total if total else 1.0},
    }
    spec = packed.meta.get("network_spec")
    if spec:
        report["summary_packed_bytes"] = int(summary(spec).totals["memory_packed_bytes"])
    if path is not None:
        report["file_bytes"] = pathlib.Path(path).stat().st_size
    return report


def float_twin_packed(packed: PackedModel) -> PackedModel:
    """The same ops in float32 NumPy: binary layers become float layers with +-1 weights (for timing)."""
    layers = []
    for layer in packed.layers:
        if layer.op == "max_pool_bits":
            layers.append(PackedLayer(layer.name, "max_pool", layer.attrs, {}))
            continue
        if layer.op not in _WEIGHT_OPS:
            layers.append(layer)
            continue
        bits = layer.arrays["weight_bits"]
        k = int(layer.attrs["k"])
        signs = kernels.unpack_signs(np.ascontiguousarray(bits), k).astype(np.float32)
        name = layer.name
        if layer.op.endswith("dense"):
            layers.append(PackedLayer(name, "float_dense", {}, {"weight": signs.reshape(len(signs), -1)}))
        else:
            layers.append(
                PackedLayer(
                    name,
                    "float_conv2d",
                    {"stride": layer.attrs["stride"], "padding": layer.attrs["padding"], "pad_value": 1.0},
                    {"weight": np.ascontiguousarray(signs.transpose(0, 3, 1, 2))},
                )
            )
        channels = len(signs)
        layers.append(
            PackedLayer(
                name,
                "float_affine",
                {},
                {"scale": np.ones(channels, np.float32), "shift": np.zeros(channels, np.float32)},
            )
        )
    twin = PackedModel(dict(packed.meta), layers)
    # a flattened NHWC map with padded words: the float flatten gives C*H*W features, size the dense to it
    for i, layer in enumerate(twin.layers):
        if layer.op == "float_dense" and i and twin.layers[i - 1].op == "flatten":
            features = int(np.prod(twin.layers[i - 1].attrs["in_shape"]))
            w = layer.arrays["weight"]
            if w.shape[1] != features:
                layer.arrays["weight"] = np.resize(w, (w.shape[0], features)).astype(np.float32)
    return twin


def binary_macs(packed: PackedModel) -> int:
    """Binary (XNOR-popcount) MACs per sample: the binary dense and convolution layers' O * K (* OH * OW)."""
    total = 0
    for layer in packed.layers:
        if layer.op == "binary_dense":
            total += layer.arrays["weight_bits"].shape[0] * int(layer.attrs["k"])
        elif layer.op == "binary_conv2d":
            _, kh, kw, _ = layer.arrays["weight_bits"].shape
            total += int(np.prod(layer.attrs["out_shape"])) * kh * kw * int(layer.attrs["k"])
    return total


def speed_report(
    packed: PackedModel, batch_sizes=(1, 64), threads=(1, 2), *, torch_runner=None, budget: float = 0.3
) -> dict:
    """Per batch size and thread count: the engine, the NumPy float32 twin, the torch float32 twin (given
    ``torch_runner``, ``workbench.train.benchmark.torch_float_twin_runner``) in NCHW and channels_last, and the
    XOR + popcount ceiling, in interleaved rounds of about ``budget`` seconds in all per row; and the engine's
    per-op latencies. Seconds are medians over the rounds; ``*_spread`` are (min, median, max) of per-round
    ratios; ``ceiling_share`` is the engine's binary MAC/s over the ceiling's (times the threads), per round."""
    rng = np.random.default_rng(0)
    twin_engine = Engine(float_twin_packed(packed))
    set_blas = timing.blas_thread_setter()
    ceiling, ceiling_macs = timing.ceiling_call(kernels._PATHS[kernels.backend()], 0.002)
    macs_per_sample = binary_macs(packed)
    rounds = 3 if budget < 0.05 else 7
    rows = []
    for batch in batch_sizes:
        u = rng.integers(0, 256, (batch, *packed.input_shape), dtype=np.uint8)
        x = twin_engine._real(("input", u))
        x_nchw = x.transpose(0, 3, 1, 2).copy() if x.ndim == 4 else x
        for count in threads:
            engine = Engine(packed, threads=count)
            contenders = {
                "engine": lambda engine=engine: engine.logits(u),
                "numpy": ((lambda count=count: set_blas(count)) if set_blas else None, lambda: twin_engine.logits(u)),
            }
            if macs_per_sample:
                contenders["ceiling"] = ceiling
            if torch_runner is not None:
                contenders["torch NCHW"] = torch_runner(x_nchw, count)
                if x_nchw.ndim == 4:
                    contenders["torch channels_last"] = torch_runner(x_nchw, count, True)
            sample = max(budget / (rounds * len(contenders)), 0.001)
            times = timing.interleaved(contenders, rounds, sample)
            row = {
                "batch": batch,
                "threads": count,
                "rounds": rounds,
                "engine_s": float(np.median(times["engine"])),
                "numpy_float32_s": float(np.median(times["numpy"])),
                "speedup_vs_numpy_spread": timing.ratios(times["numpy"], times["engine"]),
            }
            row["speedup_vs_numpy"] = row["speedup_vs_numpy_spread"][1]
            if torch_runner is not None:
                layouts = [name for name in contenders if name.startswith("torch")]
                best = timing.fastest(*(times[name] for name in layouts))
                row["torch_float32_s"] = float(np.median(best))
                row["torch_layout"] = min(layouts, key=lambda name: np.median(times[name]))
                row["torch_layouts_s"] = {name: float(np.median(times[name])) for name in layouts}
                row["speedup_vs_torch_spread"] = timing.ratios(best, times["engine"])
                row["speedup_vs_torch"] = row["speedup_vs_torch_spread"][1]
            if macs_per_sample:
                row["binary_macs"] = macs_per_sample * batch
                row["ceiling_macs_s"] = float(ceiling_macs / np.median(times["ceiling"]))
                shares = [
                    (macs_per_sample * batch / e) / (count * ceiling_macs / c)
                    for e, c in zip(times["engine"], times["ceiling"], strict=True)
                ]
                row["ceiling_share"] = timing.spread(shares)
            traces = [engine.trace(u)[1] for _ in range(5)]
            row["layers"] = [
                {"layer": r["name"], "op": r["op"], "seconds": float(np.median([t[i]["seconds"] for t in traces]))}
                for i, r in enumerate(traces[0])
            ]
            rows.append(row)
    return {"rows": rows, "backend": kernels.backend(), "load_average": timing.load_average()}


def format_reports(memory: dict, speed: dict) -> str:
    """Plain-text tables for the CLI."""
    lines = [f"{'layer':<16}{'op':<16}{'fp32 bytes':>14}{'packed bytes':>14}{'ratio':>8}"]
    for r in memory["rows"]:
        lines.append(f"{r['layer']:<16}{r['op']:<16}{r['fp32_bytes']:>14,}{r['packed_bytes']:>14,}{r['ratio']:>8.1f}")
    t = memory["totals"]
    lines.append(f"{'total':<32}{t['fp32_bytes']:>14,}{t['packed_bytes']:>14,}{t['ratio']:>8.1f}")
    if "file_bytes" in memory:
        predicted = memory.get("summary_packed_bytes")
        lines.append(
            f"file size {memory['file_bytes']:,} bytes; summary's prediction {predicted:,} bytes "
            f"({(memory['file_bytes'] / predicted - 1) * 100:+.1f}%)"
            if predicted
            else f"file size {memory['file_bytes']:,} bytes"
        )
    lines.append("")
    lines.append(
        f"latency per batch (median of {speed['rows'][0]['rounds']} interleaved rounds; kernels: {speed['backend']}; "
        f"{speed.get('load_average', '')}); speed-ups: min / median / max of per-round ratios; torch: the faster "
        "of NCHW and channels_last in each round"
    )
    lines.append(
        f"{'batch':>6}{'threads':>8}{'engine ms':>11}{'torch ms':>10}{'numpy ms':>10}"
        f"{'x torch':>22}{'x numpy':>22}{'of ceiling':>20}"
    )
    for r in speed["rows"]:
        torch_ms = f"{r['torch_float32_s'] * 1e3:>10.3f}" if "torch_float32_s" in r else f"{'-':>10}"
        torch_x = (
            f"{timing.format_spread(r['speedup_vs_torch_spread'], '.1f'):>22}"
            if "torch_float32_s" in r
            else f"{'-':>22}"
        )
        share = (
            f"{timing.format_spread(tuple(100 * v for v in r['ceiling_share']), '.0f', '%'):>20}"
            if "ceiling_share" in r
            else f"{'-':>20}"
        )
        lines.append(
            f"{r['batch']:>6}{r['threads']:>8}{r['engine_s'] * 1e3:>11.3f}{torch_ms}{r['numpy_float32_s'] * 1e3:>10.3f}"
            f"{torch_x}{timing.format_spread(r['speedup_vs_numpy_spread'], '.1f'):>22}{share}"
        )
    if any("ceiling_share" in r for r in speed["rows"]):
        row = next(r for r in speed["rows"] if "ceiling_share" in r)
        lines.append(
            f"ceiling: {row['ceiling_macs_s']:.3e} binary MAC/s per core ({speed['backend']} XOR + popcount in L1); "
            f"{row['binary_macs'] // row['batch']:,} binary MACs per sample"
        )
    first = speed["rows"][0]
    lines.append("")
    lines.append(f"engine per op at batch {first['batch']}, {first['threads']} thread(s):")
    total = sum(layer["seconds"] for layer in first["layers"]) or 1.0
    for layer in first["layers"]:
        lines.append(
            f"  {layer['layer']:<16}{layer['op']:<16}{layer['seconds'] * 1e6:>10.1f} us"
            f"{100 * layer['seconds'] / total:>7.1f}%"
        )
    return "\n".join(lines)
