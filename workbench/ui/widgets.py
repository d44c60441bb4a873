"""Widgets and small helpers shared by several pages: errors, run pickers, images, bundled data choice."""

from __future__ import annotations

import json
import re

import numpy as np
import streamlit as st

MNIST_SHAPE = (1, 28, 28)
CHOSEN_RUN_KEY = "chosen_run"  # the run last picked on Inspect, Deploy or Export: the others open on it
URL_RUN_KEY = "chosen_run_in_url"  # the ?run= a picker last wrote: a different one came from outside (a link)
_LAYER_POSITION = re.compile(r"^(\d+(?:\.\d+)*)_")


def show_error(error: BaseException, prefix: str = "") -> None:
    """Show a library error in the page (its message names the file, field or layer), never a traceback."""
    st.error(f"{prefix}{error}", icon=":material/error:")


def error_headline(text: str | None) -> tuple[str, str]:
    """(first non-empty line, the rest) of a run's stored error: the worker stores the message and then the
    traceback's tail, which is for whoever debugs it, not for the page's one line."""
    lines = (text or "").strip().splitlines()
    if not lines:
        return "no reason was recorded", ""
    return lines[0].strip(), "\n".join(lines[1:]).strip()


def show_run_error(text: str | None, prefix: str = "") -> None:
    """A failed run's reason as one readable line, its traceback behind an expander."""
    headline, details = error_headline(text)
    st.error(f"{prefix}{headline}", icon=":material/error:")
    if details:
        with st.expander("Traceback"):
            st.code(text.strip(), language="text")


def scroll_into_view(container_key: str, seconds: float = 10.0) -> None:
    """Scroll the browser to the container made with ``st.container(key=container_key)``: a script run does
    not move the page, so what a button just started would otherwise appear out of sight, above the button.
    The script waits for the container (up to ``seconds``), since the page's elements arrive one by one."""
    selector = json.dumps(f".st-key-{container_key}")
    st.html(
        f"""<script>(() => {{
  const until = Date.now() + {int(seconds * 1000)};
  const go = () => {{
    const target = document.querySelector({selector});
    if (target) {{ target.scrollIntoView({{block: "start"}}); return; }}
    if (Date.now() < until) setTimeout(go, 100);
  }};
  go();
}})();</script>""",
        unsafe_allow_javascript=True,
    )


def layer_position(name: str) -> tuple:
    """Sort key of a layer name ("11_dense", "3.1_conv2d", or "flip/11_dense"): its position in the network,
    so that layer 3 comes before layer 11 (a string sort puts 11 first). Names without a position go last."""
    match = _LAYER_POSITION.match(name.rsplit("/", 1)[-1])
    if match is None:
        return (1, (), name)
    return (0, tuple(int(part) for part in match.group(1).split(".")), name)


def by_position(names) -> list[str]:
    """Layer names (or metric keys naming layers) in network order."""
    return sorted(names, key=layer_position)


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


def preferred_run(ids: list[str], url_run: str | None, url_written: str | None, chosen: str | None) -> str:
    """The run a picker opens on: a ?run= that the pickers did not write themselves (a link, a new tab) wins,
    then the run last chosen on any picker page, then the URL's, then the newest."""
    if url_run in ids and url_run != url_written:
        return url_run
    for candidate in (chosen, url_run):
        if candidate in ids:
            return candidate
    return ids[0]


def _remember_choice(key: str) -> None:
    st.session_state[CHOSEN_RUN_KEY] = st.session_state[key]


def pick_run(store, key: str, label: str = "Run", statuses: tuple[str, ...] | None = None) -> str | None:
    """A selectbox over the store's runs, newest first, opening on ``preferred_run``: the run picked on one
    page is the one selected when another opens. The choice is kept in the session (a page switch may drop
    the URL's query) and written to the URL (a reload comes back to it)."""
    records = [r for r in store.list_runs() if statuses is None or r.status in statuses]
    if not records:
        return None
    ids = [r.id for r in records]
    labels = {r.id: run_label(r) for r in records}
    st.session_state[key] = preferred_run(
        ids, st.query_params.get("run"), st.session_state.get(URL_RUN_KEY), st.session_state.get(CHOSEN_RUN_KEY)
    )
    run_id = st.selectbox(label, ids, format_func=labels.get, key=key, on_change=_remember_choice, args=(key,))
    st.session_state[CHOSEN_RUN_KEY] = st.session_state[URL_RUN_KEY] = run_id
    st.query_params["run"] = run_id
    return run_id


def pick_run_or_stop(store, key: str) -> str:
    """pick_run for pages that need a run: with none in the store, say so, link to Train and stop the page."""
    run_id = pick_run(store, key=key)
    if run_id is None:
        st.info("No runs yet: train one on the Train page.")
        st.page_link("pages/train.py", label="Train", icon=":material/model_training:")
        st.stop()
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
