"""The Compare page's pieces: a binary run and its float twin side by side, live while they train and after.

Everything is read from the run store (the runs train in workers, started by ``workbench.runs.pairs``); the
figures are rebuilt from plain data on every tick. Packing, the drawing canvas and the probability bars are
the Deploy page's (``deploy_view``); the latency and file sizes are measured by ``workbench.runs.pair_report``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from workbench.deploy.engine import Engine
from workbench.runs.pair_report import float32_file, float_probabilities, model_input, pair_latency
from workbench.runs.pairs import Pair
from workbench.runs.store import RunRecord, RunStore
from workbench.runs.trained import load_trained_model
from workbench.ui import deploy_view
from workbench.ui.figures import BINARY_COLOR, FP32_COLOR, _layout, lines_figure, sign_bits
from workbench.ui.inspect_view import weight_layers
from workbench.ui.neuron import neuron_view
from workbench.ui.run_monitor import STATUS_ICONS, estimate_progress, planned_batches_per_epoch, poll_stride, thin

CACHE_KEY = "compare_cache"  # one packed binary run and one float model, replaced when the pair changes
SIDES = (("binary", BINARY_COLOR), ("float twin", FP32_COLOR))


# ------------------------------------------------------------------ live: curves and progress


def accuracy_series(store: RunStore, record: RunRecord) -> dict[str, tuple[list, list]]:
    """A run's accuracy on an epoch axis: per-batch training accuracy (thinned, at fractional epochs) and the
    per-epoch validation accuracy (training accuracy when the run holds out no validation split)."""
    epochs = store.metrics(record.id, "epoch")
    end_of = dict(zip(epochs.get("epoch", []), epochs.get("step", [])))
    per_epoch = end_of[1] if end_of.get(1) else planned_batches_per_epoch(record)
    steps = store.metrics(record.id, "step", stride=poll_stride(store.last_step(record.id)))
    series = {}
    if per_epoch:
        x, y = thin([(s + 1) / per_epoch for s in steps.get("step", [])], steps.get("accuracy", []))
        series["batch accuracy"] = (x, y)
    key, label = ("val_accuracy", "validation") if record.chosen_by_validation else ("accuracy", "train (epoch)")
    series[f"{label} accuracy"] = thin(epochs.get("epoch", []), epochs.get(key, []))
    return series


def curves_figure(series_by_side: dict[str, dict[str, tuple[list, list]]]):
    """Both runs' accuracy curves on one chart: batch curves thin and faint, epoch curves bold with markers."""
    series = {f"{side} · {name}": xy for side, named in series_by_side.items() for name, xy in named.items()}
    figure = lines_figure(series, "Accuracy: binary vs float twin", xaxis="epoch", yaxis="accuracy", height=360)
    colors = dict(SIDES)
    for trace in figure.data:
        side, name = trace.name.split(" · ", 1)
        batch = name.startswith("batch")
        trace.update(
            line=dict(
                color=colors[side],
                width=1.5 if batch else 3,
                dash="dot" if side == "float twin" and not batch else None,
            ),
            opacity=0.6 if batch else 1.0,
            mode="lines" if batch else "lines+markers",
        )
    figure.update_yaxes(range=[0, 1.02])
    return figure


def accuracy_text(record: RunRecord) -> tuple[str, str]:
    """(label, value) of the accuracy to show: the exported checkpoint's test accuracy once it is measured,
    the latest validation accuracy while the run trains."""
    if record.test_accuracy is not None:
        return "test accuracy", f"{record.test_accuracy:.2%}"
    if record.best_val_accuracy is not None:
        return "best validation accuracy so far", f"{record.best_val_accuracy:.2%}"
    return "validation accuracy (after its first epoch)", "–"


def run_status(store: RunStore, record: RunRecord, side: str, column) -> None:
    """One run's name, status, progress bar and accuracy, in a column."""
    column.markdown(f"**{side}** {STATUS_ICONS.get(record.status, '')} {record.status}")
    column.caption(f"{record.name} · run {record.id}")
    progress = estimate_progress(record, store.metrics(record.id, "epoch"), store.last_step(record.id))
    column.progress(progress.fraction, text=progress.text)
    label, value = accuracy_text(record)
    column.metric(f"{side}: {label}", value)
    if record.test_accuracy is not None:
        column.caption(f"measured on the test split with the exported checkpoint: {record.best_checkpoint_label}")
    if record.status in ("failed", "interrupted") and record.error:
        column.error(record.error)


def live_panel(store: RunStore, pair: Pair) -> None:
    """Both runs' progress and their accuracy curves on one chart (read from the store on every tick)."""
    left, right = st.columns(2)
    for (side, _), record, column in zip(SIDES, (pair.binary, pair.twin), (left, right)):
        run_status(store, record, side, column)
    series = {side: accuracy_series(store, record) for (side, _), record in zip(SIDES, (pair.binary, pair.twin))}
    st.plotly_chart(curves_figure(series), key="compare_curves")


# ------------------------------------------------------------------ after: the models themselves


@dataclass
class FloatRun:
    run_id: str
    stamp: float
    model: object
    file: bytes  # the trained weights as a float32 safetensors file


def float_run(cache: MutableMapping, store: RunStore, record: RunRecord) -> FloatRun:
    """The float twin's trained model and its float32 file, cached until its best checkpoint changes."""
    stamp = deploy_view.checkpoint_stamp(store, record)

    def load() -> FloatRun:
        model, _ = load_trained_model(record.id, store=store, which="best")
        return FloatRun(record.id, stamp, model, float32_file(model))

    return deploy_view.one_slot(cache, "float", (record.id, stamp), load)


def models(store: RunStore, pair: Pair):
    """(the binary run packed, the float twin loaded) for a finished pair, cached in the session."""
    cache = st.session_state.setdefault(CACHE_KEY, {})
    return deploy_view.packed_run(cache, store, pair.binary), float_run(cache, store, pair.twin)


def size_rows(binary, twin) -> list[dict]:
    """Measured bytes of the two files a user would ship."""
    return [
        {"model": "float twin", "file": f"{twin.run_id}-float32.safetensors", "bytes": len(twin.file)},
        {"model": "binary", "file": f"{binary.run_id}.bnn", "bytes": len(binary.data)},
    ]


def sizes_figure(rows: list[dict]):
    figure = go.Figure(
        go.Bar(
            x=[r["bytes"] for r in rows],
            y=[r["model"] for r in rows],
            orientation="h",
            marker_color=[FP32_COLOR, BINARY_COLOR],
            text=[f"{r['bytes']:,} B" for r in rows],
            textposition="auto",
        )
    )
    figure.update_xaxes(title="bytes on disk")
    ratio = rows[0]["bytes"] / rows[1]["bytes"]
    return _layout(figure, f"File size: the .bnn is {ratio:.1f}x smaller", height=220)


def latency_rows(latency: dict) -> list[dict]:
    """One row per implementation: min / median / max milliseconds per batch over the interleaved rounds."""
    rows = []
    for label, key in (("XNOR engine (binary)", "engine"), ("torch float32 (float twin)", "torch_float32")):
        values = latency[key]
        rows.append(
            {
                "implementation": label,
                "min ms": values["min"] * 1e3,
                "median ms": values["median"] * 1e3,
                "max ms": values["max"] * 1e3,
                "rounds": values["rounds"],
            }
        )
    return rows


def latency_figure(latency: dict):
    """Median latency per batch with the min-max spread as an error bar."""
    rows = latency_rows(latency)
    figure = go.Figure(
        go.Bar(
            x=[r["implementation"] for r in rows],
            y=[r["median ms"] for r in rows],
            error_y=dict(
                type="data",
                symmetric=False,
                array=[r["max ms"] - r["median ms"] for r in rows],
                arrayminus=[r["median ms"] - r["min ms"] for r in rows],
            ),
            marker_color=[BINARY_COLOR, FP32_COLOR],
            text=[f"{r['median ms']:.3f} ms" for r in rows],
            textposition="outside",
        )
    )
    figure.update_yaxes(title="ms per batch (median, bar: min – max)")
    return _layout(
        figure,
        f"Latency, batch {latency['batch']}, {latency['threads']} thread(s): "
        f"engine {latency['speedup']['median']:.1f}x faster than torch (median of per-round ratios, "
        f"{latency['speedup']['min']:.1f}-{latency['speedup']['max']:.1f}x)",
        height=320,
    )


def measured_latency(binary, twin, x: np.ndarray, threads: int) -> dict:
    """``pair_latency`` once per (pair, checkpoints, batch, threads) in this session."""
    cache = st.session_state.setdefault(CACHE_KEY, {})
    ident = (binary.run_id, binary.stamp, twin.run_id, twin.stamp, len(x), threads)
    return deploy_view.one_slot(
        cache, "latency", ident, lambda: pair_latency(binary.packed, twin.model, x, threads=threads)
    )


def first_layer(model) -> tuple[str, np.ndarray]:
    """The network's first dense or conv layer: (name, weights in torch layout)."""
    name, weight = next(iter(weight_layers(model).items()))
    return name, weight


def weight_maps_figure(binary_weight: np.ndarray, twin_weight: np.ndarray, count: int):
    """The first ``count`` neurons (or filters) of the first layer: the binary run's latent weights, their
    signs (what the .bnn stores), and the float twin's weights, one column per neuron."""
    count = min(count, len(binary_weight), len(twin_weight))
    rows = (
        ("binary: latent", binary_weight, "RdBu"),
        ("binary: sign", sign_bits(binary_weight)[0].astype(np.float32), "RdBu"),
        ("float twin", twin_weight, "RdBu"),
    )
    figure = make_subplots(
        rows=len(rows),
        cols=count,
        row_titles=[r[0] for r in rows],
        column_titles=[f"#{i}" for i in range(count)],
        horizontal_spacing=0.01,
        vertical_spacing=0.03,
    )
    for row, (_, weights, colorscale) in enumerate(rows, start=1):
        bound = float(np.max(np.abs(weights[:count]))) or 1.0
        for index in range(count):
            picture = neuron_view(weights, index).picture
            figure.add_trace(
                go.Heatmap(
                    z=picture, colorscale=colorscale, zmid=0, zmin=-bound, zmax=bound, showscale=False, hoverinfo="z"
                ),
                row=row,
                col=index + 1,
            )
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor="x")
    return _layout(figure, "First layer, neuron by neuron (red < 0 < blue)", height=150 * len(rows) + 60)


def classify_both(binary, twin, u: np.ndarray, preprocessing: dict) -> tuple[np.ndarray, np.ndarray]:
    """(engine probabilities of the binary network, torch probabilities of the float twin) for one input as the
    engine takes it: uint8 pixels (a drawing, or a test image's raw values) or float32 features."""
    engine_probabilities = deploy_view.softmax(Engine(binary.packed).logits(u[None])[0])
    x = model_input(u[None], preprocessing) if u.dtype == np.uint8 else u[None]
    return engine_probabilities, float_probabilities(twin.model, x)[0]
