"""Plotly figure builders for the app's pages.

Each builder takes plain data (lists, dicts, NumPy arrays as the library returns them) and returns a
fresh go.Figure, so a page can rebuild its charts from the run store on every tick without keeping
figures or growing lists in the session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_MARGIN = dict(l=10, r=10, t=40, b=10)
FP32_COLOR = "#8c8c8c"
BINARY_COLOR = "#1f77b4"
CLIP_COLOR = "#d62728"


def _layout(figure: go.Figure, title: str, height: int = 320, **kwargs) -> go.Figure:
    figure.update_layout(title=title, height=height, margin=_MARGIN, template="plotly_white", **kwargs)
    return figure


def sign_bits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signs, bits) of values with sign(0) = +1; bit 1 marks -1, as in the packed format."""
    signs = np.where(np.asarray(values) >= 0, 1, -1).astype(np.int8)
    return signs, (signs < 0).astype(np.uint8)


def primer_figure(weights: Sequence[float], activations: Sequence[float]) -> go.Figure:
    """How a binary layer computes one dot product: sign, bits, XNOR and popcount.

    Rows: latent float weights, their signs, the weight bits, the activation bits and the XOR of the
    two; the title gives the dot product from popcount and checks it against the sign product.
    """
    weights = np.asarray(weights, dtype=np.float64)
    activations = np.asarray(activations, dtype=np.float64)
    if weights.shape != activations.shape or weights.ndim != 1:
        raise ValueError(
            f"primer_figure: weights and activations must be 1-D of one length, "
            f"got {weights.shape} and {activations.shape}"
        )
    w_signs, w_bits = sign_bits(weights)
    a_signs, a_bits = sign_bits(activations)
    xor = w_bits ^ a_bits
    length = len(weights)
    dot = length - 2 * int(xor.sum())
    rows = [
        ("float weights w", weights, [f"{v:+.2f}" for v in weights]),
        ("sign(w)", w_signs, [f"{v:+d}" for v in w_signs]),
        ("bits of w", w_bits, [str(v) for v in w_bits]),
        ("bits of sign(a)", a_bits, [str(v) for v in a_bits]),
        ("w XOR a", xor, [str(v) for v in xor]),
    ]
    # Colour: blue for +1 / bit 0, red for -1 / bit 1, the float row by its own value.
    z = [
        np.clip(row, -1, 1) if index == 0 else (row if index == 1 else 1 - 2 * row.astype(int))
        for index, (_, row, _) in enumerate(rows)
    ]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"{j}" for j in range(length)],
            y=[name for name, _, _ in rows],
            text=[text for _, _, text in rows],
            texttemplate="%{text}",
            colorscale="RdBu",
            zmin=-1,
            zmax=1,
            showscale=False,
            hoverinfo="skip",
            xgap=2,
            ygap=2,
        )
    )
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(title="element j (bit j of the packed word)")
    exact = int(np.dot(w_signs.astype(int), a_signs.astype(int)))
    title = f"sign(w)·sign(a) = K − 2·popcount(w XOR a) = {length} − 2·{int(xor.sum())} = {dot}  (direct sum: {exact})"
    return _layout(figure, title, height=300)


def layer_bars_figure(
    layers: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    yaxis: str,
    log: bool = False,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Grouped bars per layer, one bar group per series (e.g. fp32 bytes vs packed bytes)."""
    figure = go.Figure()
    for name, values in series.items():
        figure.add_bar(x=list(layers), y=list(values), name=name, marker_color=(colors or {}).get(name))
    figure.update_layout(barmode="group", legend=dict(orientation="h", y=-0.25))
    figure.update_yaxes(title=yaxis, type="log" if log else "linear")
    return _layout(figure, title)


def stacked_bars_figure(
    layers: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    yaxis: str,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Stacked bars per layer (e.g. MACs split by precision)."""
    figure = layer_bars_figure(layers, series, title, yaxis, colors=colors)
    figure.update_layout(barmode="stack")
    return figure


def lines_figure(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xaxis: str = "epoch",
    yaxis: str = "",
    log_y: bool = False,
    height: int = 300,
) -> go.Figure:
    """One line per named (x, y) series; used for live curves and for comparing runs."""
    figure = go.Figure()
    for name, (x, y) in series.items():
        mode = "lines+markers" if len(x) <= 50 else "lines"
        figure.add_scatter(x=list(x), y=list(y), name=name, mode=mode)
    figure.update_xaxes(title=xaxis)
    figure.update_yaxes(title=yaxis, type="log" if log_y else "linear")
    figure.update_layout(legend=dict(orientation="h", y=-0.3), uirevision=title)
    return _layout(figure, title, height=height)


def histogram_figure(
    edges: Sequence[float], counts: Sequence[float], title: str, clip: float | None = None, xaxis: str = "value"
) -> go.Figure:
    """A histogram from precomputed bin edges and counts, with the clip bound drawn at ±clip."""
    edges = np.asarray(edges, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if len(edges) != len(counts) + 1:
        raise ValueError(
            f"histogram_figure: expected len(edges) == len(counts) + 1, got {len(edges)} edges and {len(counts)} counts"
        )
    figure = go.Figure(
        go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_color=BINARY_COLOR, name="count")
    )
    if clip is not None:
        for bound in (-clip, clip):
            figure.add_vline(x=bound, line_dash="dash", line_color=CLIP_COLOR)
        figure.add_annotation(
            x=clip, y=1, yref="paper", text=f"clip ±{clip:g}", showarrow=False, xanchor="left", font_color=CLIP_COLOR
        )
    figure.add_vline(x=0, line_color="#444", line_width=1)
    figure.update_xaxes(title=xaxis)
    figure.update_yaxes(title="count")
    return _layout(figure, title, bargap=0)


def heatmap_figure(
    z: np.ndarray,
    x: Sequence,
    y: Sequence,
    title: str,
    xaxis: str = "",
    yaxis: str = "",
    colorscale: str = "Viridis",
    text_format: str | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
    height: int = 320,
) -> go.Figure:
    """A labelled heatmap (flip ratio per layer and epoch, a confusion matrix, a neuron's weights)."""
    heatmap = go.Heatmap(
        z=np.asarray(z), x=[str(v) for v in x], y=[str(v) for v in y], colorscale=colorscale, zmin=zmin, zmax=zmax
    )
    if text_format:
        heatmap.update(texttemplate=text_format)
    figure = go.Figure(heatmap)
    figure.update_xaxes(title=xaxis, type="category")
    figure.update_yaxes(title=yaxis, type="category", autorange="reversed")
    return _layout(figure, title, height=height)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Rows: true class, columns: predicted class, cell text: count."""
    confusion = np.asarray(confusion)
    height = max(320, 40 * len(class_names) + 120)
    return heatmap_figure(
        confusion,
        class_names,
        class_names,
        "Confusion matrix (test split)",
        xaxis="predicted",
        yaxis="true",
        colorscale="Blues",
        text_format="%{z}",
        height=height,
    )


def neuron_figure(picture: np.ndarray, binarized: bool = True) -> go.Figure:
    """One neuron or filter: its latent float weights beside their signs (``binarized``), in the same grid
    with square cells; NaN cells (gaps between a filter's tiles, padding) stay blank.

    The colour scale spans the neuron's own largest |w|, so small latent weights stay readable.
    """
    picture = np.asarray(picture, dtype=np.float64)
    grid = picture if picture.ndim == 2 else picture.reshape(1, -1)
    bound = float(np.nanmax(np.abs(grid))) or 1.0
    panels = 2 if binarized else 1
    figure = make_subplots(
        rows=1,
        cols=panels,
        horizontal_spacing=0.14,
        subplot_titles=("latent float weights", "binarized sign(w)")[:panels] if binarized else ("float weights",),
    )
    figure.add_trace(
        go.Heatmap(
            z=grid,
            colorscale="RdBu",
            zmin=-bound,
            zmax=bound,
            hoverongaps=False,
            colorbar=dict(x=0.43 if binarized else 1.0, len=0.9, thickness=12),
        ),
        row=1,
        col=1,
    )
    if binarized:
        signs = np.where(np.isnan(grid), np.nan, sign_bits(np.nan_to_num(grid))[0])
        figure.add_trace(
            go.Heatmap(z=signs, colorscale="RdBu", zmin=-1, zmax=1, showscale=False, hoverongaps=False), row=1, col=2
        )
    tiles = bool(np.isnan(grid).all(axis=0).any() or np.isnan(grid).all(axis=1).any())  # a mosaic: no axes
    for column in range(1, panels + 1):
        figure.update_xaxes(
            scaleanchor=f"y{column if column > 1 else ''}",
            constrain="domain",
            showgrid=False,
            zeroline=False,
            showticklabels=not tiles,
            row=1,
            col=column,
        )
        figure.update_yaxes(
            autorange="reversed",
            constrain="domain",
            showgrid=False,
            zeroline=False,
            showticklabels=not tiles,
            row=1,
            col=column,
        )
    height = int(min(600, max(320, 14 * grid.shape[0] + 120)))
    return _layout(figure, "", height=height)
