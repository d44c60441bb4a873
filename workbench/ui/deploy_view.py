"""What the Deploy and Export pages compute: pack a run once per checkpoint, compare engine and torch,
turn an uploaded or drawn picture into a model input, chart memory and speed, prove a .bnn round trip.

The computing functions take and return plain data (NumPy arrays, dicts, figures). ``one_slot`` keeps one
cached value per purpose in a mapping such as st.session_state, so switching runs replaces the cache instead
of growing it. Two widgets live here because both pages need them: ``pick_packed_run`` (run picker, packing,
errors in the page) and ``draw_input`` (a drawing canvas, when streamlit-drawable-canvas is installed).
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image, UnidentifiedImageError

from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine, raw_inputs
from workbench.deploy.packed import PackedModel
from workbench.deploy.reports import memory_report, speed_report
from workbench.runs.store import ACTIVE, RunStore
from workbench.runs.trained import load_trained_model, pack_run
from workbench.train.agreement import compare
from workbench.train.benchmark import torch_float_twin_runner
from workbench.ui.figures import BINARY_COLOR, FP32_COLOR, _layout, layer_bars_figure
from workbench.ui.run_data import run_dataset
from workbench.ui.widgets import pick_run_or_stop, show_error, to_image

PACKED_SLOT = "deploy_packed"
IMAGE_FORMATS = ("PNG", "JPEG")  # the decoders an upload may reach
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE  # a picture decoded to RGBA takes 4 bytes a pixel, a few times over
_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")  # how Pillow names what it read from


@dataclass
class PackedRun:
    """A run packed from one checkpoint file version: the model, the .bnn bytes and the torch model."""

    run_id: str
    stamp: float
    packed: PackedModel
    data: bytes
    model: object
    seconds: float


def one_slot(cache: MutableMapping, slot: str, ident, compute: Callable[[], object]):
    """The value cached under ``slot`` when it was made for ``ident``, else compute it and replace it."""
    entry = cache.get(slot)
    if entry is None or entry[0] != ident:
        entry = (ident, compute())
        cache[slot] = entry
    return entry[1]


def checkpoint_stamp(store, record) -> float:
    """The mtime of the run's best checkpoint; ValueError for a run still training, FileNotFoundError without one."""
    if record.status in ACTIVE:
        raise ValueError(f"run {record.id} is {record.status}: wait until it has finished (or stop it) to pack it")
    return store.checkpoint_path(record.id, "best").stat().st_mtime


def pack_best(store, record, stamp: float) -> PackedRun:
    """Pack a run's best checkpoint and serialise it; keeps the torch model for the agreement check."""
    start = time.perf_counter()
    packed = pack_run(record.id, store=store, which="best")
    data = bnnfile.to_bytes(packed)
    seconds = time.perf_counter() - start
    model, _ = load_trained_model(record.id, store=store, which="best")
    return PackedRun(record.id, stamp, packed, data, model, seconds)


def packed_run(cache: MutableMapping, store, record) -> PackedRun:
    """The run packed, from ``cache`` when its best checkpoint has not changed since (one entry in all)."""
    stamp = checkpoint_stamp(store, record)
    return one_slot(cache, PACKED_SLOT, (record.id, stamp), lambda: pack_best(store, record, stamp))


def pick_packed_run(key: str):
    """The page's run picker, then the picked run packed and its dataset: (store, record, PackedRun, dataset).

    Stops the page with a message when there is no run, or shows the library's error when the run cannot be
    packed (still training, no checkpoint, a checkpoint that does not fit its spec, data gone)."""
    store = RunStore()
    run_id = pick_run_or_stop(store, key=key)
    record = store.get_run(run_id)
    try:
        with st.spinner("Packing the best checkpoint…"):
            run = packed_run(st.session_state, store, record)
        dataset = run_dataset(record)
    except (ValueError, FileNotFoundError) as error:
        show_error(error)
        st.stop()
    return store, record, run, dataset


# ------------------------------------------------------------------ engine vs torch


def agreement(run: PackedRun, x: np.ndarray, y: np.ndarray) -> dict:
    """Engine vs torch on preprocessed test inputs ``x`` (labels ``y``): predictions, accuracies, bit agreement."""
    return compare(run.model, run.packed, x, y)


# ------------------------------------------------------------------ try it: one input


def image_input(data: bytes, input_shape: tuple, name: str = "image", center: bool = True) -> np.ndarray:
    """An uploaded PNG/JPEG as the model's uint8 input (C, H, W): grayscale or RGB, resized, and inverted
    when the picture is dark-on-light (MNIST digits are white on black). ``center`` fits the ink into the
    middle 20/28 of the frame, as MNIST's digits are."""
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise ValueError(
            f"{name}: the model takes input of shape {list(input_shape)}, not an image "
            "(expected (1, H, W) or (3, H, W))"
        )
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            too_large = _too_large(image.size, name)  # open() read only the header: checked before decoding
            if not too_large:
                image.load()
                picture = image.convert("RGBA")
    except Image.DecompressionBombError:  # Pillow's own refusal, past twice its limit, before ours can run
        raise ValueError(f"{name}: the picture has more than {MAX_IMAGE_PIXELS:,} pixels; make it smaller") from None
    except UnidentifiedImageError:  # its message names the in-memory buffer, not the file
        raise ValueError(f"{name}: not an image Pillow can read (expected PNG or JPEG)") from None
    except (OSError, ValueError) as error:
        reason = _BUFFER_REPR.sub(name, str(error))
        raise ValueError(f"{name}: not an image Pillow can read (expected PNG or JPEG): {reason}") from None
    if too_large:
        raise ValueError(too_large)
    background = Image.new("RGBA", picture.size, (255, 255, 255, 255))
    picture = Image.alpha_composite(background, picture)  # transparent canvas/PNG pixels read as paper
    return picture_input(np.asarray(picture.convert("RGB")), input_shape, center)


def _too_large(size: tuple[int, int], name: str) -> str | None:
    """Why a picture is too large to decode, or None: a small file can declare a huge picture (a 172 KB PNG of
    13300 x 13300 took the server to 3.3 GB)."""
    width, height = size
    if width * height <= MAX_IMAGE_PIXELS:
        return None
    return (
        f"{name}: the picture is {width} x {height} pixels; expected at most {MAX_IMAGE_PIXELS:,} pixels "
        f"(e.g. {MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE}); make it smaller"
    )


def picture_input(rgb: np.ndarray, input_shape: tuple, center: bool = True) -> np.ndarray:
    """An (H, W, 3) uint8 picture as the model's uint8 input (C, H, W); see ``image_input``."""
    channels, height, width = input_shape
    gray = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint8)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    invert = float(border.mean()) > 127
    if invert:
        rgb, gray = 255 - rgb, 255 - gray
    source = Image.fromarray(gray if channels == 1 else np.ascontiguousarray(rgb))
    if center:
        source = _centered(source, gray, height, width)
    else:
        source = source.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(source, dtype=np.uint8)
    return pixels[None] if channels == 1 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _centered(source, gray: np.ndarray, height: int, width: int):
    """The ink's bounding box scaled into the middle 20/28 of a (height, width) black frame."""
    rows, cols = np.nonzero(gray > 32)
    if len(rows):
        source = source.crop((int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1))
    box_w, box_h = max(1, round(width * 20 / 28)), max(1, round(height * 20 / 28))
    scale = min(box_w / source.width, box_h / source.height)
    size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
    inner = source.resize(size, Image.Resampling.LANCZOS)
    frame = Image.new(source.mode, (width, height), 0)
    frame.paste(inner, ((width - size[0]) // 2, (height - size[1]) // 2))
    return frame


def draw_input(input_shape: tuple, key: str = "deploy_canvas") -> np.ndarray | None:
    """A white canvas to draw on with the mouse; the drawing as model input, None while it is empty."""
    try:  # lazy: an optional component; without it the page offers upload and test samples
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        st.info(
            "Drawing needs the streamlit-drawable-canvas package (pip install streamlit-drawable-canvas); "
            "upload a picture or pick a test sample instead."
        )
        return None
    result = st_canvas(
        stroke_width=18,
        stroke_color="#000000",
        background_color="#ffffff",
        height=280,
        width=280,
        drawing_mode="freedraw",
        return_image_data=True,
        key=key,
    )
    if not (result.json_data or {}).get("objects") or result.image_bytes is None:
        st.caption("Draw a digit above, then release the mouse.")
        return None
    return image_input(result.image_bytes, input_shape, "drawing")


def shown_image(u: np.ndarray, preprocessing: dict) -> np.ndarray | None:
    """What the engine sees, for st.image: uint8 inputs as they are, float ones mapped back to pixels."""
    if u.dtype == np.uint8:
        return to_image(u.astype(np.float32), {"kind": "affine", "scale": 1.0, "offset": 0.0})
    return to_image(u, preprocessing)


def classify(engine: Engine, u: np.ndarray, timed_calls: int = 9) -> tuple[np.ndarray, float]:
    """(class probabilities (softmax of the engine's logits), seconds the engine takes) for one input: the median
    of `timed_calls` calls after a first one, which the page's engine, made anew on each run of the page, spends
    on its buffers and first thread choice."""
    logits = engine.logits(u[None])[0]
    times = []
    for _ in range(timed_calls):
        start = time.perf_counter()
        engine.logits(u[None])
        times.append(time.perf_counter() - start)
    return softmax(logits), float(np.median(times))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of one input's logits, in float64."""
    shifted = np.exp(logits.astype(np.float64) - logits.max())
    return shifted / shifted.sum()


def probabilities_figure(probabilities: np.ndarray, class_names: list[str]):
    """Bars of the class probabilities, the predicted class highlighted."""
    best = int(np.argmax(probabilities))
    colors = [BINARY_COLOR if i == best else FP32_COLOR for i in range(len(probabilities))]
    figure = go.Figure(
        go.Bar(
            x=[str(c) for c in class_names],
            y=list(probabilities),
            marker_color=colors,
            text=[f"{p:.1%}" for p in probabilities],
            textposition="outside",
        )
    )
    figure.update_xaxes(title="class", type="category")
    figure.update_yaxes(title="probability", range=[0, 1.1])
    return _layout(figure, f"Prediction: {class_names[best]} ({probabilities[best]:.1%})", height=300)


# ------------------------------------------------------------------ memory and speed panels


def memory_with_file(packed: PackedModel, data: bytes) -> dict:
    """``reports.memory_report`` with the real .bnn size (the bytes the Export page offers) beside it."""
    report = memory_report(packed)
    report["file_bytes"] = len(data)
    return report


def memory_figure(memory: dict):
    rows = memory["rows"]
    return layer_bars_figure(
        [r["layer"] for r in rows],
        {"float32": [r["fp32_bytes"] for r in rows], "packed": [r["packed_bytes"] for r in rows]},
        f"Bytes per layer: float32 vs packed (total {memory['totals']['ratio']:.1f}x smaller)",
        "bytes (log)",
        log=True,
        colors={"float32": FP32_COLOR, "packed": BINARY_COLOR},
    )


def speed_report_for(packed: PackedModel, batch: int, threads: int) -> dict:
    """``reports.speed_report`` for one batch size and thread count, leaving torch's thread count as it was."""

    previous = torch.get_num_threads()
    runner = torch_float_twin_runner(packed.meta["network_spec"]) if packed.meta.get("network_spec") else None
    try:
        return speed_report(packed, (batch,), (threads,), torch_runner=runner, budget=0.3)
    finally:
        torch.set_num_threads(previous)


def speed_rows(speed: dict) -> list[dict]:
    """One table row per implementation: latency per batch and per sample (medians over interleaved rounds), and
    the engine's speed-up over it: the median and the range of the per-round ratios."""
    table = []
    for row in speed["rows"]:
        for label, key, spread, note in (
            ("XNOR engine", "engine_s", (1.0, 1.0, 1.0), ""),
            ("torch float32", "torch_float32_s", row.get("speedup_vs_torch_spread"), row.get("torch_layout", "")),
            ("NumPy float32", "numpy_float32_s", row.get("speedup_vs_numpy_spread"), "the same ops in NumPy"),
        ):
            if key not in row:
                continue
            table.append(
                {
                    "implementation": label,
                    "batch": row["batch"],
                    "threads": row["threads"],
                    "ms per batch": row[key] * 1e3,
                    "µs per sample": row[key] / row["batch"] * 1e6,
                    "engine speed-up": spread[1],
                    "speed-up range": f"{spread[0]:.2f}x - {spread[2]:.2f}x",
                    "notes": note,
                }
            )
    return table


def speed_figure(speed: dict):
    table = speed_rows(speed)
    figure = layer_bars_figure(
        [r["implementation"] for r in table],
        {"ms per batch": [r["ms per batch"] for r in table]},
        f"Latency per batch of {table[0]['batch']}, {table[0]['threads']} thread(s) "
        f"(median; kernels: {speed['backend']})",
        "milliseconds",
    )
    figure.update_traces(
        text=[f"{r['engine speed-up']:.2f}x" for r in table],
        textposition="outside",
        marker_color=[BINARY_COLOR if r["implementation"] == "XNOR engine" else FP32_COLOR for r in table],
    )
    figure.update_layout(showlegend=False)
    return figure


# ------------------------------------------------------------------ export round trip


def round_trip(data: bytes, original: PackedModel, x: np.ndarray) -> dict:
    """Load .bnn bytes back (the SHA-256 is checked there) and run both models on ``x``: do they agree?"""
    loaded = bnnfile.from_bytes(data)
    u = raw_inputs(x, original.meta.get("preprocessing") or {})
    before, after = Engine(original).logits(u), Engine(loaded).logits(u)
    return {
        "loaded": loaded,
        "sha256": hashlib.sha256(data[: -bnnfile.DIGEST_BYTES]).hexdigest(),
        "bytes": len(data),
        "samples": len(u),
        "identical_logits": bool(np.array_equal(before, after)),
        "predictions": after.argmax(axis=1),
        "matching": int((before.argmax(axis=1) == after.argmax(axis=1)).sum()),
    }


def layer_table(packed: PackedModel) -> list[dict]:
    """The .bnn header's layers: name, op and each array's dtype and shape."""
    return [
        {
            "layer": layer.name,
            "op": layer.op,
            "arrays": ", ".join(f"{key} {array.dtype.name}{list(array.shape)}" for key, array in layer.arrays.items()),
        }
        for layer in packed.layers
    ]
