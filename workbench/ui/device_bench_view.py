"""Export's microcontroller section: the built ELF's measured flash, RAM and instructions beside the prediction, and
the BNN against the int8 CMSIS-NN build of its float twin (``workbench.train.device_bench``, the table of
``bnn-workbench bench MODEL --target cortex-m4``). Both build on a button and keep their result for the run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from workbench.core.spec import float_twin, validate_spec
from workbench.deploy.c_export import BuildError, CExportError, cmsis_int8, export_c, targets
from workbench.deploy.c_export.budget import predict
from workbench.deploy.c_export.measure import measure
from workbench.deploy.engine import raw_inputs
from workbench.runs.store import RunStore
from workbench.ui.device_budget_view import comparison_table
from workbench.ui.widgets import show_error

BOARD_IMAGES = 20
TWIN_EPOCHS = 3
FOOTPRINT_KEY, BENCH_KEY = "export_footprint", "export_device_bench"


def _board_inputs(packed, dataset):
    u = raw_inputs(dataset.x_test[:BOARD_IMAGES], dataset.preprocessing)
    return u if u.dtype.kind == "u" else None


def show_footprint(run_id: str, packed, dataset) -> None:
    """Predicted vs measured on a chosen emulated board, the build on a button."""
    boards = [name for name, t in targets.TARGETS.items() if t.bare_metal]
    which = st.selectbox(
        "emulated board", boards, key="export_board", format_func=lambda n: targets.TARGETS[n].description
    )
    try:
        prediction = predict(packed, which)
    except (CExportError, ValueError) as error:
        show_error(error, "No C export: ")
        return
    missing = targets.TARGETS[which].missing()
    if missing:
        st.info(f"Building for {which} needs {', '.join(missing)} (docs/DEPLOY.md lists the packages).")
    elif st.button(f"Build the C library for {which} and measure it", key="export_build_elf"):
        inputs = _board_inputs(packed, dataset)
        if inputs is None:
            st.warning("The C export takes uint8 inputs; this run's data are float features.")
            return
        with st.spinner(f"Exporting, compiling and running {len(inputs)} test images under QEMU…"):
            folder = Path(tempfile.mkdtemp(prefix="bnn-export-"))
            try:
                library = export_c(packed, folder, selftest_input=inputs[0])
                result = measure(packed, library, folder, which, inputs)
            except (BuildError, CExportError, ValueError) as error:
                show_error(error, "The build failed: ")
                return
        st.session_state[FOOTPRINT_KEY] = (run_id, which, result)
    kept = st.session_state.get(FOOTPRINT_KEY)
    if kept and kept[:2] == (run_id, which):
        result = kept[2]
        st.dataframe(comparison_table(prediction, result.footprint), hide_index=True)
        st.caption(" · ".join(line.strip() for line in result.lines()[2:]))
    else:
        st.caption(
            f"Predicted from the spec: model flash {prediction.flash_bytes:,} B, RAM {prediction.ram_bytes:,} B. "
            "Build to see the measured ELF beside it (a few seconds)."
        )


def _float_twin_model(packed, training: dict, dataset):
    """A completed run of this network's float twin from the store, else one trained now (a minute or two)."""
    # lazy: torch loads only when the comparison is asked for
    from workbench.runs.trained import load_trained_model
    from workbench.train import int8_twin

    twin_spec = float_twin(packed.meta["network_spec"])
    store = RunStore()
    for record in store.list_runs():
        if record.status == "completed" and validate_spec(record.network_spec) == twin_spec:
            return load_trained_model(record.id, store=store)[0], f"run {record.id}"
    twin_training = dict(training, epochs=min(int(training.get("epochs", 1)), TWIN_EPOCHS))
    spec = packed.meta["network_spec"]
    return int8_twin.train_twin(spec, twin_training, dataset), f"trained now ({twin_training['epochs']} epochs)"


def show_int8_comparison(run_id: str, packed, dataset) -> None:
    """The BNN against its int8 twin on the Cortex-M4, the same table as the CLI's."""
    try:
        cmsis = cmsis_int8.cmsis_nn_dir()
    except cmsis_int8.Int8Error as error:
        st.info(str(error))
        return
    missing = targets.TARGETS["cortex-m4"].missing()
    if missing:
        st.info(f"The comparison runs on QEMU's Cortex-M4 and needs {', '.join(missing)} (docs/DEPLOY.md).")
        return
    if st.button("Compare with the int8 CMSIS-NN twin on the Cortex-M4", key="export_int8_bench"):
        # lazy: the comparison's torch side loads with the button, not with the page
        from workbench.train.device_bench import bench

        training = (packed.meta.get("training") or {}).get("training_spec") or {}
        try:
            with st.spinner("Float twin, int8 quantization, two builds and two QEMU runs (a minute or more)…"):
                twin, where = _float_twin_model(packed, training, dataset)
                result = bench(packed, dataset, twin=twin, cmsis=cmsis, images=BOARD_IMAGES, log=lambda line: None)
        except (BuildError, CExportError, ValueError) as error:
            show_error(error, "The comparison failed: ")
            return
        st.session_state[BENCH_KEY] = (run_id, result, where)
    kept = st.session_state.get(BENCH_KEY)
    if not kept or kept[0] != run_id:
        st.caption(f"CMSIS-NN from {cmsis}.")
        return
    _, result, where = kept
    st.dataframe(pd.DataFrame(result.rows()), hide_index=True, width="stretch")
    st.caption(
        f"Float twin: {where}. Accuracy on the {result.test_images} test images; both programs ran "
        f"{result.binary.images} of them on the board, checked bit for bit ({result.binary.checked} and "
        f"{result.int8.checked})."
    )
    energy = result.energy()
    if energy:
        st.markdown("**Energy per inference: an estimate**")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "device": e["device"],
                        "nJ per cycle (datasheet)": f"{e['nj_per_cycle']:.2f}",
                        "BNN (µJ)": f"{e['binary_uj']:,.1f}",
                        "int8 (µJ)": f"{e['int8_uj']:,.1f}",
                        "source": e["source"],
                    }
                    for e in energy
                ]
            ),
            hide_index=True,
        )
        st.caption(
            "Instructions × one cycle each (a lower bound: loads and taken branches take 2 or more) × the "
            "datasheet's typical run-mode current × 3.3 V / clock, code from flash, peripherals off. No board, "
            "sleep or idle power."
        )
    for note in result.notes:
        st.caption(f"Note: {note}")
