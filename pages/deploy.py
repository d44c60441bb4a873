"""Deploy: pack a finished run for the XNOR engine, check it against torch, see what it saves in memory
and time, and try it on a picture. The computing lives in workbench/ui/deploy_view.py and the library."""

import os

import numpy as np
import pandas as pd
import streamlit as st

from workbench.deploy.engine import Engine, raw_inputs
from workbench.ui import deploy_view as view
from workbench.ui.widgets import show_error

st.title("Deploy")
_, record, run, dataset = view.pick_packed_run("deploy_run")
run_id = record.id
packed = run.packed
binary = sum(1 for layer in packed.layers if layer.op.startswith(("binary_", "input_")))
st.success(
    f"Packed run {run_id} (best checkpoint): {len(packed.layers)} ops, {binary} with packed weights, "
    f"{len(run.data):,} bytes as a .bnn file, in {run.seconds * 1e3:.0f} ms.",
    icon=":material/check_circle:",
)

# ------------------------------------------------------------ engine vs torch
st.subheader("XNOR engine vs torch")
available = len(dataset.y_test)
count = st.slider(
    "test samples", min_value=1, max_value=min(available, 2000), value=min(available, 200), key="deploy_samples"
)
result = view.one_slot(
    st.session_state,
    "deploy_agreement",
    (run_id, run.stamp, count),
    lambda: view.agreement(run, dataset.x_test[:count], dataset.y_test[:count]),
)
columns = st.columns(4)
columns[0].metric("engine accuracy", f"{result['engine_accuracy']:.2%}")
columns[1].metric("torch accuracy", f"{result['torch_accuracy']:.2%}")
columns[2].metric("disagreements", f"{result['disagreements']} of {result['samples']}")
columns[3].metric(
    "engine time",
    f"{result['engine_seconds'] * 1e3:.2f} ms",
    help="one traced pass over all the samples (per-op timing adds a little)",
)
if result["layers"]:
    st.dataframe(
        pd.DataFrame(result["layers"]).rename(
            columns={
                "layer": "hidden layer (input bits)",
                "bits": "bits compared",
                "differing": "differing bits",
                "agreement": "bit agreement",
                "near_zero": "torch pre-activations within 1e-5 of 0",
            }
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "bit agreement": st.column_config.NumberColumn(format="percent"),
            "torch pre-activations within 1e-5 of 0": st.column_config.NumberColumn(
                help="where float rounding alone could decide the sign; a differing bit there "
                "would not be an engine error"
            ),
        },
    )
st.caption(
    "Inputs go to the engine as "
    + ("raw uint8 pixels (exact first layer)." if result["exact_input"] else "float32 features, as torch gets them.")
)

# ------------------------------------------------------------ memory
st.subheader("Memory")
memory = view.memory_with_file(packed, run.data)
totals = memory["totals"]
columns = st.columns(4)
columns[0].metric("float32", f"{totals['fp32_bytes']:,} B")
columns[1].metric("packed", f"{totals['packed_bytes']:,} B", help="arrays only, as the engine holds them")
columns[2].metric("ratio", f"{totals['ratio']:.1f}x")
predicted = memory.get("summary_packed_bytes")
columns[3].metric(
    ".bnn file",
    f"{memory['file_bytes']:,} B",
    help="header with the spec JSON, aligned arrays and a SHA-256",
    delta=f"summary: {predicted:,} B payload" if predicted else None,
    delta_color="off",
)
st.plotly_chart(view.memory_figure(memory), key="deploy_memory_chart")

# ------------------------------------------------------------ speed
st.subheader("Speed")
left, right, button = st.columns([2, 2, 1], vertical_alignment="bottom")
batch = int(left.number_input("batch size", min_value=1, max_value=4096, value=64, step=1, key="deploy_batch"))
threads = int(
    right.slider("threads", min_value=1, max_value=max(1, os.cpu_count() or 1), value=1, key="deploy_threads")
)
speed_key = (run_id, run.stamp, batch, threads)
if button.button("Measure", key="deploy_measure", icon=":material/speed:"):
    with st.spinner(f"Timing engine, torch and NumPy at batch {batch}, {threads} thread(s)…"):
        st.session_state["deploy_speed"] = (speed_key, view.speed_report_for(packed, batch, threads))
measured = st.session_state.get("deploy_speed")
if measured and measured[0] == speed_key:
    speed = measured[1]
    st.dataframe(
        pd.DataFrame(view.speed_rows(speed)),
        hide_index=True,
        width="stretch",
        column_config={
            "ms per batch": st.column_config.NumberColumn(format="%.3f"),
            "µs per sample": st.column_config.NumberColumn(format="%.1f"),
            "engine speed-up": st.column_config.NumberColumn(format="%.2fx"),
        },
    )
    st.plotly_chart(view.speed_figure(speed), key="deploy_speed_chart")
else:
    st.caption(
        "Choose a batch size and thread count, then Measure: the engine, the torch float32 twin and "
        "the NumPy float32 twin are timed here, on this machine."
    )

# ------------------------------------------------------------ try it
st.subheader("Try it")
engine = Engine(packed)
is_image = len(packed.input_shape) == 3 and packed.input_shape[0] in (1, 3)
sources = ["Test sample"] + (["Upload", "Draw"] if is_image else [])
source = st.radio("input", sources, horizontal=True, key="deploy_source")
u = None
if source == "Test sample":
    index = int(
        st.number_input(
            f"test sample (0 – {available - 1})",
            min_value=0,
            max_value=available - 1,
            value=0,
            step=1,
            key="deploy_sample",
        )
    )
    x = dataset.x_test[index : index + 1]
    u = raw_inputs(x, packed.meta.get("preprocessing") or {})[0]
    st.caption(f"true class: {packed.class_names[int(dataset.y_test[index])]}")
elif source == "Upload":
    upload = st.file_uploader("PNG or JPEG image", type=["png", "jpg", "jpeg"], key="deploy_upload")
    if upload is not None:
        try:
            u = view.image_input(upload.getvalue(), packed.input_shape, upload.name)
        except ValueError as error:
            show_error(error)
else:
    u = view.draw_input(packed.input_shape)
if u is not None:
    probabilities, seconds = view.classify(engine, u)
    picture, chart = st.columns([1, 3])
    image = view.shown_image(u, packed.meta.get("preprocessing") or {})
    if image is not None:
        picture.image(image, caption="what the engine sees", width=168)
    else:
        picture.write({f"x{j}": float(v) for j, v in enumerate(np.ravel(u))})
    picture.metric("engine time", f"{seconds * 1e6:.0f} µs", help="median of 9 calls after a first one")
    chart.plotly_chart(view.probabilities_figure(probabilities, packed.class_names), key="deploy_probabilities")
