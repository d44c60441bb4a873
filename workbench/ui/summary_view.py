"""The Design page's summary: workbench.core.summary's table per layer, its totals, and two charts.

Charts: memory per layer in float32 vs packed bits, and multiply-accumulates by precision.
"""
from __future__ import annotations

import streamlit as st

from workbench.core.summary import summary
from workbench.ui.figures import (
    BINARY_COLOR,
    FP32_COLOR,
    layer_bars_figure,
    stacked_bars_figure,
)


def show_summary(normalised_spec: dict) -> None:
    result = summary(normalised_spec)
    totals = result.totals
    metrics = st.columns(5)
    metrics[0].metric("parameters", f"{totals['params']:,}", help="1-bit: " + f"{totals['params_1bit']:,}")
    metrics[1].metric("memory float32", _bytes(totals["memory_fp32_bytes"]))
    metrics[2].metric("memory packed", _bytes(totals["memory_packed_bytes"]),
                      help="what the exported .bnn stores: packed 64-bit words, integer thresholds, float rest")
    metrics[3].metric("compression", f"{totals['compression_ratio']:.1f}×")
    metrics[4].metric("binary MACs", _share(totals["macs_binary"], totals["macs_binary"] + totals["macs_float"]),
                      help="share of multiply-accumulates done as XNOR-popcount")
    columns = ["name", "output_shape", "params", "params_1bit", "params_32bit", "memory_fp32_bytes",
               "memory_packed_bytes", "stored", "macs_binary", "macs_float"]
    st.dataframe({column: [_cell(row[column]) for row in result.rows] for column in columns},
                 hide_index=True, width="stretch")
    layers = [row["name"] for row in result.rows]
    left, right = st.columns(2)
    left.plotly_chart(layer_bars_figure(
        layers, {"float32": [row["memory_fp32_bytes"] for row in result.rows],
                 "packed": [row["memory_packed_bytes"] for row in result.rows]},
        "Memory per layer", "bytes (log)", log=True, colors={"float32": FP32_COLOR, "packed": BINARY_COLOR}),
        key="summary_memory")
    right.plotly_chart(stacked_bars_figure(
        layers, {"binary (XNOR-popcount)": [row["macs_binary"] for row in result.rows],
                 "float": [row["macs_float"] for row in result.rows]},
        "Multiply-accumulates per layer and sample", "MACs",
        colors={"binary (XNOR-popcount)": BINARY_COLOR, "float": FP32_COLOR}), key="summary_macs")


def _cell(value):
    return str(value) if isinstance(value, list) else value


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count} B"
