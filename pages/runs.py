"""Runs: every run in the store, several runs' curves on one chart, and deleting a run."""

import streamlit as st

from workbench.runs.store import ACTIVE, RunStore
from workbench.ui.figures import lines_figure
from workbench.ui.runs_table import failed_runs, runs_column_config, runs_rows
from workbench.ui.widgets import run_label, show_error, show_run_error

CURVES = {
    "val_accuracy": "validation accuracy",
    "accuracy": "train accuracy",
    "val_loss": "validation loss",
    "loss": "train loss",
    "lr": "learning rate",
}
FAILED_SHOWN = 3  # the newest failed runs' errors shown under the table

st.title("Runs")
store = RunStore()
records = store.list_runs()
if not records:
    st.info("No runs yet: train one on the Train page.")
    st.page_link("pages/train.py", label="Train", icon=":material/model_training:")
    st.stop()

st.dataframe(runs_rows(records), hide_index=True, width="stretch", column_config=runs_column_config())
failed = failed_runs(records)
for record in failed[:FAILED_SHOWN]:
    show_run_error(record.error, prefix=f"{record.name} ({record.id}) failed: ")
if len(failed) > FAILED_SHOWN:
    st.caption(
        f"{len(failed) - FAILED_SHOWN} older failed runs are not shown here; the Train page shows any run's error."
    )

st.subheader("Compare")
labels = {r.id: run_label(r) for r in records}
chosen = st.multiselect(
    "runs", list(labels), default=[r.id for r in records[:2]], format_func=labels.get, key="runs_compare"
)
metric = st.selectbox("curve", list(CURVES), format_func=CURVES.get, key="runs_metric")
if chosen:
    series = {}
    for run_id in chosen:
        table = store.metrics(run_id, "epoch")
        pairs = [(e, v) for e, v in zip(table.get("epoch", []), table.get(metric, [])) if v is not None]
        series[labels[run_id]] = ([e for e, _ in pairs], [v for _, v in pairs])
    st.plotly_chart(
        lines_figure(series, f"{CURVES[metric]} by epoch", yaxis=CURVES[metric], height=380), key="runs_compare_chart"
    )

st.subheader("Delete a run")
doomed = st.selectbox("run", list(labels), format_func=labels.get, key="runs_delete")
active = store.get_run(doomed).status in ACTIVE
if active:
    st.caption("This run is still active: stop it on the Train page before deleting it.")
confirm = st.checkbox(
    f"Yes, delete run {doomed} with its metrics and checkpoints", key="runs_delete_confirm", disabled=active
)
if st.button("Delete", type="primary", disabled=not confirm or active, key="runs_delete_button"):
    try:
        store.delete_run(doomed)
    except ValueError as error:
        show_error(error)
    else:
        st.session_state.pop("runs_delete_confirm", None)
        if st.query_params.get("run") == doomed:
            del st.query_params["run"]
        st.toast(f"deleted run {doomed}")
        st.rerun()
