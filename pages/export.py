"""Export: download a run as a .bnn file, its spec JSON and a model card, and prove the file by reading it
back: checksum, the engine on test samples against the model that was written, the header metadata."""

import json

import pandas as pd
import streamlit as st

from workbench.core.modelcard import model_card
from workbench.ui import deploy_view as view
from workbench.ui import device_bench_view
from workbench.ui.widgets import show_error

ROUND_TRIP_SAMPLES = 32

st.title("Export")
_, record, run, dataset = view.pick_packed_run("export_run")
run_id = record.id
packed = run.packed
memory = view.memory_with_file(packed, run.data)
measured = st.session_state.get("deploy_agreement")
agreement = measured[1] if measured and measured[0][:2] == (run_id, run.stamp) else None
card = model_card(record, packed.meta, memory, agreement)
stem = f"{packed.meta['network_spec']['name']}-{run_id}"

# ------------------------------------------------------------ downloads
columns = st.columns(3)
columns[0].download_button(
    f".bnn file ({len(run.data):,} bytes)",
    run.data,
    file_name=f"{stem}.bnn",
    mime="application/octet-stream",
    icon=":material/download:",
    key="export_bnn",
)
columns[1].download_button(
    "network spec (JSON)",
    json.dumps(packed.meta["network_spec"], indent=2),
    file_name=f"{stem}.json",
    mime="application/json",
    icon=":material/data_object:",
    key="export_spec",
)
columns[2].download_button(
    "model card (Markdown)",
    card,
    file_name=f"{stem}.md",
    mime="text/markdown",
    icon=":material/description:",
    key="export_card",
)

# ------------------------------------------------------------ read it back
st.subheader("Read back")
try:
    check = view.round_trip(run.data, packed, dataset.x_test[:ROUND_TRIP_SAMPLES])
except ValueError as error:
    show_error(error, "The .bnn bytes do not read back: ")
    st.stop()
if check["identical_logits"]:
    st.success(
        f"Round trip OK: the {check['bytes']:,} bytes load back with bnnfile, the SHA-256 checksum passed, "
        f"and the engine gives identical logits on {check['samples']} test samples "
        f"({check['matching']} of {check['samples']} predictions match).",
        icon=":material/verified:",
    )
else:
    st.error(
        f"Round trip mismatch: the reloaded model's logits differ ({check['matching']} of {check['samples']} "
        "predictions match).",
        icon=":material/error:",
    )
st.caption(f"SHA-256 of the data: {check['sha256']}")
loaded = check["loaded"]
left, right = st.columns(2)
left.markdown("**Header metadata**")
left.json({key: value for key, value in loaded.meta.items() if key != "network_spec"}, expanded=1)
right.markdown("**Ops in the file**")
right.dataframe(pd.DataFrame(view.layer_table(loaded)), hide_index=True, width="stretch")

st.subheader("On a microcontroller")
device_bench_view.show_footprint(run_id, packed, dataset)
st.markdown("**The BNN against the int8 build of its float twin (CMSIS-NN)**")
device_bench_view.show_int8_comparison(run_id, packed, dataset)

with st.expander("Model card", expanded=True):
    st.markdown(card)
