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
    metrics[2].metric(
        "memory packed",
        _bytes(totals["memory_packed_bytes"]),
        help="what the exported .bnn stores: packed 64-bit words, integer thresholds, float rest",
    )
    metrics[3].metric("compression", f"{totals['compression_ratio']:.1f}×")
    metrics[4].metric(
        "binary MACs",
        _share(totals["macs_binary"], totals["macs_binary"] + totals["macs_float"]),
        help="share of multiply-accumulates done as XNOR-popcount",
    )
    st.dataframe(summary_table(result.rows), hide_index=True, width="stretch", column_config=summary_columns())
    layers = [row["name"] for row in result.rows]
    left, right = st.columns(2)
    left.plotly_chart(
        layer_bars_figure(
            layers,
            {
                "float32": [row["memory_fp32_bytes"] for row in result.rows],
                "packed": [row["memory_packed_bytes"] for row in result.rows],
            },
            "Memory per layer",
            "bytes (log)",
            log=True,
            colors={"float32": FP32_COLOR, "packed": BINARY_COLOR},
        ),
        key="summary_memory",
    )
    right.plotly_chart(
        stacked_bars_figure(
            layers,
            {
                "binary (XNOR-popcount)": [row["macs_binary"] for row in result.rows],
                "float": [row["macs_float"] for row in result.rows],
            },
            "Multiply-accumulates per layer and sample",
            "MACs",
            colors={"binary (XNOR-popcount)": BINARY_COLOR, "float": FP32_COLOR},
        ),
        key="summary_macs",
    )


# summary row key -> (column header, width in pixels, help); the widths add up to what the main area of a
# 1400 px window holds beside the sidebar (938 px), so the table does not scroll sideways; a long
# "stored as" text is cut (hovering shows it)
COLUMNS = {
    "name": ("layer", 105, None),
    "output_shape": ("output shape", 95, "channels-first, one sample"),
    "params": ("parameters", 80, None),
    "params_1bit": ("1-bit params", 90, "parameters stored as one bit each"),
    "params_32bit": ("32-bit params", 95, "parameters kept in float32 (batch norm, biases, float layers)"),
    "memory_fp32_bytes": ("float32 bytes", 85, "the layer's parameters as float32"),
    "memory_packed_bytes": ("packed bytes", 85, "what the exported .bnn stores for the layer"),
    "stored": ("stored as", 130, None),
    "macs_binary": ("binary MACs", 90, "multiply-accumulates done as XNOR-popcount, per sample"),
    "macs_float": ("float MACs", 75, "multiply-accumulates in floating point, per sample"),
}
COUNTS = (
    "params",
    "params_1bit",
    "params_32bit",
    "memory_fp32_bytes",
    "memory_packed_bytes",
    "macs_binary",
    "macs_float",
)


def summary_table(rows: list[dict]) -> dict[str, list]:
    """The summary rows as columns under readable headers (shapes as "32 × 26 × 26")."""
    return {
        header: [" × ".join(str(n) for n in row[key]) if isinstance(row[key], list) else row[key] for row in rows]
        for key, (header, _, _) in COLUMNS.items()
    }


def summary_columns() -> dict:
    config = {
        header: st.column_config.Column(header, width=width, help=text) for header, width, text in COLUMNS.values()
    }
    for key in COUNTS:
        header, width, text = COLUMNS[key]
        config[header] = st.column_config.NumberColumn(header, width=width, help=text, format="%,d")
    return config


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count} B"
