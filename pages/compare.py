"""Binary vs float: one click trains a binarized network and its float twin on the same data and seed (two
ordinary runs in workers), and one screen shows them side by side: accuracy curves live, then file sizes,
measured latency, first-layer weights and a drawn digit classified by both. A pair trained before (from the
app or the CLI's ``train ... --float-twin``) opens with no click at all. The pair is in the URL
(?binary=...&twin=...), so a reload or a shared link comes back to it."""

import contextlib
import os

import numpy as np
import pandas as pd
import streamlit as st

from workbench.core.data import DataError, check_ref
from workbench.core.presets import preset
from workbench.core.spec import SpecError, default_training_spec
from workbench.deploy.engine import raw_inputs
from workbench.runs.pairs import find_pairs, load_pair, start_pair
from workbench.runs.store import RunStore
from workbench.ui import compare_view as view
from workbench.ui import deploy_view, state
from workbench.ui.figures import FP32_COLOR
from workbench.ui.run_data import run_dataset
from workbench.ui.training_form import data_picker
from workbench.ui.widgets import bundled_data_for, show_error

PRESETS = ("binary-mlp", "binary-cnn")
DESIGN = "the network from Design"
PAIR_KEY = "compare_pair"

st.title("Binary vs float")
st.caption(
    "A binarized network and its float twin (the same layers in full precision), trained on the same data "
    "with the same training spec and seed."
)
store = RunStore()
pairs = find_pairs(store.list_runs())


def _choose(ids: tuple[str, str]) -> None:
    st.session_state[PAIR_KEY] = ids
    st.query_params["binary"], st.query_params["twin"] = ids


# The pair to show: the URL's, else this session's, else the newest pair in the store.
if "binary" in st.query_params and "twin" in st.query_params:
    st.session_state[PAIR_KEY] = (st.query_params["binary"], st.query_params["twin"])
elif PAIR_KEY not in st.session_state and pairs:
    _choose(pairs[0].ids)
elif PAIR_KEY in st.session_state:
    _choose(st.session_state[PAIR_KEY])

new, existing = st.columns(2, border=True)
with new:
    st.markdown("**Train a new pair**")
    choice = st.selectbox("network", [*PRESETS, DESIGN], key="compare_network")
    network = state.get_spec() if choice == DESIGN else preset(choice)
    data_ref = data_picker(store.runs_dir, bundled_data_for(network))
    epochs_column, seed_column = st.columns(2)
    epochs = int(epochs_column.number_input("epochs", 1, 100, 3, key="compare_epochs"))
    seed = int(seed_column.number_input("seed", 0, 2**31 - 1, 0, key="compare_seed"))
    if st.button("Train binary + float twin", type="primary", icon=":material/play_arrow:", disabled=not data_ref):
        training = dict(default_training_spec(), epochs=epochs, seed=seed)
        try:
            check_ref(data_ref)
            _choose(start_pair(network, training, data_ref, runs_dir=store.runs_dir))
        except (DataError, SpecError, ValueError, FileNotFoundError) as error:
            show_error(error)
        else:
            st.rerun()
with existing:
    st.markdown("**Or open a pair trained before**")
    if pairs:
        labels = {p.ids: p.label for p in pairs}
        current = st.session_state.get(PAIR_KEY)
        options = list(labels) if current in labels or current is None else [current, *labels]
        picked = st.selectbox(
            "pair",
            options,
            index=options.index(current) if current in options else 0,
            format_func=lambda ids: labels.get(ids, f"{ids[0]} + {ids[1]}"),
            key=f"compare_pick_{current}",
        )
        if picked != current:
            _choose(picked)
            st.rerun()
    st.caption(
        "Runs pair up when one's network is the other's float twin and both share data and training spec, "
        "e.g. `bnn-workbench train binary-mlp --data mnist-sample` and the same with `--float-twin`."
    )

ids = st.session_state.get(PAIR_KEY)
if not ids:
    st.info("No pair yet: train one above (about a minute on the bundled MNIST sample).")
    st.stop()
try:
    pair = load_pair(store, *ids)
except ValueError as error:
    show_error(error)
    st.stop()
active_when_drawn = pair.active


def _live() -> None:
    try:
        current = load_pair(store, *ids)
    except ValueError as error:
        show_error(error)
        return
    view.live_panel(store, current)
    if current.active != active_when_drawn:
        st.rerun()  # both ended: the whole page draws what a finished pair shows


st.subheader("Training")
st.fragment(run_every=1.0 if pair.active else None)(_live)()
# outside the timed fragment, whose reruns every second could swallow a click
if pair.active and st.button("Stop both", icon=":material/stop_circle:", key="compare_stop"):
    for run_id in pair.ids:
        with contextlib.suppress(ValueError):  # that run finished meanwhile
            store.request(run_id, "stop")
    st.toast("stop requested")

if not pair.finished:
    if pair.active:
        st.caption("File sizes, latency, first-layer weights and the drawing appear here once both runs finish.")
    else:
        st.warning("One of the runs ended before its first checkpoint: train a new pair.", icon=":material/warning:")
    st.stop()

try:
    with st.spinner("Packing the binary run and loading the float twin…"):
        binary, twin = view.models(store, pair)
    dataset = run_dataset(pair.binary)
except (ValueError, FileNotFoundError) as error:
    show_error(error)
    st.stop()
packed = binary.packed
preprocessing = packed.meta.get("preprocessing") or {}

# ------------------------------------------------------------ bytes
st.subheader("Size on disk")
rows = view.size_rows(binary, twin)
columns = st.columns(3)
columns[0].metric("float twin, float32 .safetensors", f"{rows[0]['bytes']:,} B")
columns[1].metric("binary, packed .bnn", f"{rows[1]['bytes']:,} B")
columns[2].metric("smaller by", f"{rows[0]['bytes'] / rows[1]['bytes']:.1f}x")
st.plotly_chart(view.sizes_figure(rows), key="compare_sizes")
downloads = st.columns(2)
downloads[0].download_button("float twin weights", twin.file, rows[0]["file"], key="compare_get_float")
downloads[1].download_button("binary .bnn", binary.data, rows[1]["file"], key="compare_get_bnn")

# ------------------------------------------------------------ latency
st.subheader("Latency on this machine")
batch_column, threads_column = st.columns(2)
batch = int(batch_column.selectbox("batch size", (1, 16, 64, 256), key="compare_batch"))
batch = min(batch, len(dataset.x_test))
threads = int(threads_column.slider("threads", 1, max(1, os.cpu_count() or 1), 1, key="compare_threads"))
with st.spinner(f"Timing engine and torch float32 in interleaved rounds at batch {batch}…"):
    latency = view.measured_latency(binary, twin, dataset.x_test[:batch], threads)
st.plotly_chart(view.latency_figure(latency), key="compare_latency")
st.dataframe(
    pd.DataFrame(view.latency_rows(latency)),
    hide_index=True,
    column_config={key: st.column_config.NumberColumn(format="%.3f") for key in ("min ms", "median ms", "max ms")},
)
st.caption(
    f"The first {batch} test images; the engine gets "
    + ("their raw uint8 pixels (exact first layer)" if latency["exact_input"] else "float32 features")
    + ", torch the float32 inputs. Each round times both, in alternating order."
)

# ------------------------------------------------------------ weights
st.subheader("First-layer weights")
name, binary_weight = view.first_layer(binary.model)
_, twin_weight = view.first_layer(twin.model)
count = st.slider("neurons shown", 1, min(16, len(binary_weight)), min(8, len(binary_weight)), key="compare_neurons")
st.plotly_chart(view.weight_maps_figure(binary_weight, twin_weight, count), key="compare_weights")
st.caption(
    f"Layer {name}: the binary run keeps latent float weights while training and ships only their signs; "
    "the float twin ships its weights as they are."
)

# ------------------------------------------------------------ a digit classified by both
st.subheader("Classified by both")
is_image = len(packed.input_shape) == 3 and packed.input_shape[0] in (1, 3)
source = st.radio("input", (["Draw"] if is_image else []) + ["Test sample"], horizontal=True, key="compare_source")
if source == "Draw":
    u = deploy_view.draw_input(packed.input_shape, key="compare_canvas")
else:
    index = int(st.number_input(f"test sample (0 – {len(dataset.y_test) - 1})", 0, len(dataset.y_test) - 1, 0))
    u = raw_inputs(dataset.x_test[index : index + 1], preprocessing)[0]
    st.caption(f"true class: {packed.class_names[int(dataset.y_test[index])]}")
if u is not None:
    engine_probabilities, float_probabilities = view.classify_both(binary, twin, u, preprocessing)
    picture, left, right = st.columns([1, 2, 2])
    image = deploy_view.shown_image(u, preprocessing)
    if image is not None:
        picture.image(image, caption="what both networks see", width=140)
    else:
        picture.write({f"x{j}": float(v) for j, v in enumerate(np.ravel(u))})
    figure = deploy_view.probabilities_figure(engine_probabilities, packed.class_names)
    figure.update_layout(title=f"binary (XNOR engine): {figure.layout.title.text}")
    left.plotly_chart(figure, key="compare_binary_probabilities")
    figure = deploy_view.probabilities_figure(float_probabilities, packed.class_names)
    figure.update_traces(marker_color=FP32_COLOR)
    figure.update_layout(title=f"float twin (torch): {figure.layout.title.text}")
    right.plotly_chart(figure, key="compare_float_probabilities")
