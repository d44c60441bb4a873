"""Home: what a binary neural network is, the workbench's flow, and one-click starts from the presets.

Kept free of torch so that the first page renders fast; training starts in the worker process.
"""

import streamlit as st

from workbench.core.presets import PRESETS, preset
from workbench.runs.launch import start_run
from workbench.ui import state
from workbench.ui.figures import primer_figure
from workbench.ui.pages import FLOW
from workbench.ui.widgets import bundled_data_for, show_error

st.title("BNN Workbench")
st.markdown(
    """
A **binary neural network** keeps real-valued *latent* weights for training, but its forward pass uses
only their signs: every weight (and, in XNOR layers, every activation) is **+1 or −1**. A sign fits in one
bit, so a layer stores 32× less than in float32, and a dot product of K signs becomes
**K − 2·popcount(w XOR a)**: one XOR and one popcount per 64 elements instead of 64 multiply-adds.
Training uses a straight-through estimator: the forward pass takes the sign, the backward pass lets the
gradient through where |w| ≤ clip. Batch norm followed by sign folds into one integer threshold per channel.
"""
)
st.plotly_chart(
    primer_figure(
        weights=[0.73, -0.12, 0.0, -0.91, 0.35, -0.48, 0.08, -0.27],
        activations=[0.5, -0.3, -1.2, -0.2, 0.0, -0.4, 0.6, 0.9],
    ),
    key="primer",
)
st.caption("Blue: +1 (bit 0), red: −1 (bit 1). sign(0) = +1 everywhere: in training, packing and the engine.")

st.subheader("The flow")
for column, (number, page) in zip(st.columns(len(FLOW)), enumerate(FLOW, start=1)):
    with column:
        st.markdown(f"**{number}. {page.title}**")
        st.caption(page.flow)
        st.page_link(page.script, label=f"Open {page.title}")

st.subheader("Start from a preset")
st.caption("Open a preset in Design to edit it, or train it right away with the default training settings.")


def _open_in_design(name: str) -> None:
    state.set_spec(preset(name))
    st.switch_page("pages/design.py")


def _train_now(name: str, data_ref: str) -> None:
    spec = preset(name)
    state.set_spec(spec)
    run_id = start_run(spec, state.get_training_spec(), data_ref, name=f"{name} on {data_ref}")
    st.switch_page("pages/train.py", query_params={"run": run_id})


for name in PRESETS:
    spec = preset(name)
    data_ref = bundled_data_for(spec)
    with st.container(border=True):
        info, design_column, train_column = st.columns([4, 1, 1], vertical_alignment="center")
        info.markdown(
            f"**{name}** · input {list(spec['input_shape'])} · {len(spec['layers'])} layers "
            f"· {spec['num_classes']} classes"
        )
        if design_column.button("Design", key=f"design_{name}", width="stretch"):
            _open_in_design(name)
        if data_ref and train_column.button(f"Train on {data_ref}", key=f"train_{name}", width="stretch"):
            try:
                _train_now(name, data_ref)
            except ValueError as error:
                show_error(error)
