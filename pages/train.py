"""Train: pick data and training tricks, start the network from Design in a worker process, watch it live.

The page never trains: workbench.runs.launch.start_run starts a separate process that writes into the run
store, and the live panel re-reads the store every second. The run's id is kept in the URL (?run=...),
so a reloaded tab re-attaches to it.
"""

import streamlit as st

from workbench.core.data import DataError, check_ref
from workbench.core.spec import SpecError, validate_spec, validate_training_spec
from workbench.runs.launch import start_run
from workbench.runs.store import RunStore
from workbench.ui import state
from workbench.ui.drafts import pop_notes
from workbench.ui.run_monitor import run_panel
from workbench.ui.training_form import data_picker, training_form
from workbench.ui.widgets import bundled_data_for, run_label, scroll_into_view, show_error

RUN_KEY = "train_run"
SCROLL_KEY = "train_scroll_to_live"  # set by Start: the next run scrolls up to the new run's live panel
LIVE_KEY = "train_live"

st.title("Train")
store = RunStore()
spec, training_draft = state.get_spec(), state.get_training_spec()  # loaded first: a note on either shows here
for note in pop_notes():
    st.warning(note, icon=":material/warning:")

# The run to watch: the one in the URL, else the last one started in this session.
if "run" in st.query_params:
    st.session_state[RUN_KEY] = st.query_params["run"]
elif RUN_KEY in st.session_state:
    st.query_params["run"] = st.session_state[RUN_KEY]


def _resume(record) -> None:
    try:
        start_run(None, None, None, resume_run_id=record.id, runs_dir=store.runs_dir)
    except (ValueError, FileNotFoundError) as error:
        show_error(error)


@st.fragment(run_every=1)
def live(run_id: str) -> None:
    run_panel(store, run_id, resume_run=_resume)
    teachers = [r for r in store.list_runs() if r.parent_id == run_id and r.active]
    for teacher in teachers:
        st.info(f"Training the distillation teacher first: {run_label(teacher)}", icon=":material/school:")


watched = st.session_state.get(RUN_KEY)
if watched:
    with st.container(key=LIVE_KEY):
        live(watched)
    if st.session_state.pop(SCROLL_KEY, False):
        scroll_into_view(LIVE_KEY)
    st.divider()

st.subheader("New run")
try:
    network = validate_spec(spec)
except SpecError as error:
    network = None
    show_error(error, prefix="The network from Design is not valid yet: ")
    st.page_link("pages/design.py", label="Fix it in Design", icon=":material/schema:")
else:
    st.markdown(
        f"Network **{network['name']}** from Design: input {network['input_shape']}, "
        f"{len(network['layers'])} layers, {network['num_classes']} classes."
    )

data_ref = data_picker(store.runs_dir, bundled_data_for(spec))
teacher_runs = {r.id: run_label(r) for r in store.list_runs() if r.status == "completed"}
training = training_form(training_draft, teacher_runs)
name = st.text_input("run name (optional)", key="train_run_name")

try:
    training_spec = validate_training_spec(training)
except SpecError as error:
    training_spec = None
    show_error(error)
else:
    if save_error := state.set_training_spec(training_spec):
        st.warning(save_error, icon=":material/warning:")

if st.button("Start training", type="primary", disabled=network is None or training_spec is None or not data_ref):
    try:
        check_ref(data_ref)
        run_id = start_run(network, training_spec, data_ref, name=name or None, runs_dir=store.runs_dir)
    except (DataError, SpecError, ValueError, FileNotFoundError) as error:
        show_error(error)
    else:
        st.session_state[RUN_KEY] = run_id
        st.session_state[SCROLL_KEY] = True
        st.query_params["run"] = run_id
        st.rerun()
if not data_ref:
    st.info("Choose the data to train on.")
