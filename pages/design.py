"""Design: build a network spec layer by layer, see its validation, size and cost, save and load it as JSON.

The spec lives in st.session_state (workbench.ui.state) so that Train starts runs from it.
"""

import json

import streamlit as st

from workbench.core.presets import PRESETS, preset
from workbench.core.spec import SpecError, infer_shapes, validate_spec
from workbench.ui import device_budget_view, layer_editor, state
from workbench.ui.drafts import pop_notes
from workbench.ui.summary_view import show_summary
from workbench.ui.widgets import show_error

UPLOAD_KEY = "design_upload"
UPLOAD_ERROR_KEY = state.UPLOAD_ERROR_KEY

st.title("Design")
spec = state.get_spec()
for note in pop_notes():
    st.warning(note, icon=":material/warning:")


def _load_preset() -> None:
    state.set_spec(preset(st.session_state["design_preset"]))  # clears an earlier upload's error too


def _load_upload() -> None:
    """Replace the spec by an uploaded JSON file, only if it is a valid spec; otherwise keep the current one."""
    uploaded = st.session_state.get(UPLOAD_KEY)
    if uploaded is None:  # the file was removed: its error goes with it
        st.session_state.pop(UPLOAD_ERROR_KEY, None)
        return
    try:
        candidate = json.loads(uploaded.getvalue().decode("utf-8"))
        validate_spec(candidate)
    except UnicodeDecodeError:
        st.session_state[UPLOAD_ERROR_KEY] = f"{uploaded.name}: not a UTF-8 text file; expected a network spec JSON"
    except json.JSONDecodeError as error:
        st.session_state[UPLOAD_ERROR_KEY] = (
            f"{uploaded.name}: not valid JSON (line {error.lineno}, "
            f"column {error.colno}: {error.msg}); the current spec is kept"
        )
    except SpecError as error:
        st.session_state[UPLOAD_ERROR_KEY] = f"{uploaded.name}: {error}; the current spec is kept"
    else:
        state.set_spec(candidate)


with st.sidebar:
    st.subheader("Start from")
    st.selectbox("preset", list(PRESETS), key="design_preset")
    st.button("Load preset", on_click=_load_preset, width="stretch", help="replaces the spec being edited")
    st.subheader("Save / load")
    st.download_button(
        "Download spec JSON",
        data=json.dumps(spec, indent=2),
        file_name=f"{spec.get('name') or 'network'}.json",
        mime="application/json",
        on_click="ignore",
        width="stretch",
    )
    st.file_uploader("Upload spec JSON", type=["json"], key=UPLOAD_KEY, on_change=_load_upload)
    if UPLOAD_ERROR_KEY in st.session_state:
        st.error(st.session_state[UPLOAD_ERROR_KEY])

name_column, shape_column, classes_column = st.columns([2, 2, 1])
spec["name"] = name_column.text_input("name", value=spec.get("name", ""), key=state.widget_key("name"))
shape_text = shape_column.text_input(
    "input shape",
    value=", ".join(str(n) for n in spec.get("input_shape", [])),
    key=state.widget_key("input_shape"),
    help="channels-first: C, H, W for images (1, 28, 28 for MNIST) or F for feature vectors (2 for 2-D data)",
)
try:
    spec["input_shape"] = [
        int(part) for part in shape_text.replace("[", "").replace("]", "").split(",") if part.strip()
    ]
except ValueError:
    st.error(f"network spec: field 'input_shape' must be integers separated by commas, got {shape_text!r}")
spec["num_classes"] = int(
    classes_column.number_input(
        "classes", value=int(spec.get("num_classes", 10)), step=1, key=state.widget_key("num_classes")
    )
)
network_slot = st.empty()

slots = [layer_editor.layer_block((index,), layer, len(spec["layers"])) for index, layer in enumerate(spec["layers"])]
layer_editor.add_layer_controls()

try:
    normalised = validate_spec(spec)
except SpecError as error:
    normalised = None
    if error.layer_index is not None and error.layer_index < len(slots):
        slots[error.layer_index][1].error(str(error), icon=":material/error:")
        network_slot.error(f"The spec has a problem at layer {error.layer_index}; see below.", icon=":material/error:")
    else:
        with network_slot:
            show_error(error)
else:
    network_slot.success(
        f"Valid: {len(normalised['layers'])} layers, input {normalised['input_shape']}, "
        f"{normalised['num_classes']} classes.",
        icon=":material/check_circle:",
    )
    for index, ((title, _), layer, (_, output_shape)) in enumerate(
        zip(slots, normalised["layers"], infer_shapes(normalised))
    ):
        title.markdown(f"{layer_editor.layer_title(index, layer)} &nbsp; → {list(output_shape)}")

if save_error := state.save_spec_draft():
    st.warning(save_error, icon=":material/warning:")
else:
    st.caption(f"Your edits are kept in {state.DESIGN_DRAFT.path} and come back when the tab is reloaded.")

st.divider()
st.subheader("Summary")
if normalised is None:
    st.info("Fix the spec above to see its parameters, memory and MACs.")
else:
    show_summary(normalised)
    st.subheader("Will it fit?")
    chosen = device_budget_view.pick_device("design_device")
    prediction = device_budget_view.predicted(normalised, chosen)
    if prediction is not None:
        device_budget_view.show_budget(prediction, chosen)
    st.page_link("pages/train.py", label="Train this network", icon=":material/model_training:")
