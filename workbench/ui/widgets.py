"""Widgets and small helpers shared by several pages: errors, run pickers, images, bundled data choice."""
from __future__ import annotations

import numpy as np
import streamlit as st

MNIST_SHAPE = (1, 28, 28)


def show_error(error: BaseException, prefix: str = "") -> None:
    """Show a library error in the page (its message names the file, field or layer), never a traceback."""
    st.error(f"{prefix}{error}", icon=":material/error:")


def bundled_data_for(spec: dict) -> str | None:
    """The bundled dataset a spec can train on right away, from its input shape (None if there is none)."""
    shape = tuple(spec.get("input_shape") or ())
    if shape == MNIST_SHAPE:
        return "mnist-sample"
    if shape == (2,) and spec.get("num_classes") == 2:
        return "moons"
    return None


def run_label(record) -> str:
    """One line naming a run in pickers: name, status, epochs and its id."""
    return f"{record.name} · {record.status} · {record.epochs_done} epochs · {record.id}"


def pick_run(store, key: str, label: str = "Run", statuses: tuple[str, ...] | None = None) -> str | None:
    """A selectbox over the store's runs, newest first; defaults to the run in the URL (?run=...)."""
    records = [r for r in store.list_runs() if statuses is None or r.status in statuses]
    if not records:
        return None
    ids = [r.id for r in records]
    labels = {r.id: run_label(r) for r in records}
    wanted = st.query_params.get("run")
    index = ids.index(wanted) if wanted in ids else 0
    return st.selectbox(label, ids, index=index, format_func=labels.get, key=key)


def pick_run_or_stop(store, key: str) -> str:
    """pick_run for pages that need a run: with none in the store, say so, link to Train and stop the page.
    The picked run goes into the URL, so a reload comes back to it."""
    run_id = pick_run(store, key=key)
    if run_id is None:
        st.info("No runs yet: train one on the Train page.")
        st.page_link("pages/train.py", label="Train", icon=":material/model_training:")
        st.stop()
    st.query_params["run"] = run_id
    return run_id


def to_image(x: np.ndarray, preprocessing: dict) -> np.ndarray | None:
    """A model input (C, H, W) back to uint8 pixels for st.image, inverting the dataset's affine map.

    Returns None for inputs that are not images (feature vectors).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        return None
    if preprocessing.get("kind") == "affine":
        pixels = (x - preprocessing["offset"]) / preprocessing["scale"]
    else:  # unknown scale: stretch to the full range
        low, high = x.min(), x.max()
        pixels = (x - low) / ((high - low) or 1.0) * 255.0
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0))
