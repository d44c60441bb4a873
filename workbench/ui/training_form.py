"""The Train page's "new run" form: the data to train on and every training trick as a switch.

Both functions only collect choices; they return a data reference for workbench.core.data.load_dataset and
a raw training spec for workbench.core.spec.validate_training_spec, which the page checks before starting.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from workbench.core.data import BUILTIN_DATASETS, SYNTHETIC
from workbench.runs.uploads import UploadError, save_uploads
from workbench.ui.widgets import show_error

DATA_SOURCES = ("Bundled MNIST sample", "Synthetic 2-D set", "Upload a file", "Local MNIST folder")
SAVED_KEY = "train_upload_saved"  # (file ids, data reference) of the upload last stored, so a rerun does not rehash


def data_picker(runs_dir: Path, default: str | None) -> str | None:
    """Choose the dataset; returns its reference or None while nothing usable is chosen."""
    sources = list(DATA_SOURCES)
    index = 1 if default in SYNTHETIC else 0
    source = st.radio("data", sources, index=index, horizontal=True, key="train_data_source")
    if source == DATA_SOURCES[0]:
        st.caption(BUILTIN_DATASETS["mnist-sample"])
        return "mnist-sample"
    if source == DATA_SOURCES[1]:
        choices = list(SYNTHETIC)
        kind = st.selectbox(
            "set",
            choices,
            index=choices.index(default) if default in choices else 0,
            format_func=lambda name: f"{name}: {BUILTIN_DATASETS[name]}",
            key="train_synthetic",
        )
        return kind
    if source == DATA_SOURCES[2]:
        # no type= list: raw IDX files have no extension; the library tells the kinds apart by their first bytes
        files = st.file_uploader(
            "a .npz (arrays x, y), a .csv (a 'label' column) or IDX files (images + labels, raw or .gz)",
            accept_multiple_files=True,
            key="train_upload",
        )
        return _stored_upload(runs_dir, files) if files else None
    folder = st.text_input(
        "folder with the four MNIST IDX files (.gz or raw)",
        value=os.environ.get("BNN_MNIST_DIR", ""),
        key="train_mnist_dir",
    )
    return f"mnist:{folder.strip()}" if folder.strip() else None


def _stored_upload(runs_dir: Path, files: list) -> str | None:
    """The data reference of the uploaded files, stored by content (workbench.runs.uploads); None with a message
    when they cannot be used."""
    ids = tuple(file.file_id for file in files)
    saved = st.session_state.get(SAVED_KEY)
    if saved and saved[0] == ids and Path(saved[1]).is_file():
        return saved[1]
    try:
        ref = save_uploads(runs_dir, [(file.name, file.getvalue()) for file in files])
    except UploadError as error:
        show_error(error)
        return None
    st.session_state[SAVED_KEY] = (ids, ref)
    return ref


def _explained_toggle(label: str, value: bool, key: str, explanation: str) -> bool:
    on = st.toggle(label, value=value, key=key)
    st.caption(explanation)
    return on


def training_form(defaults: dict, teacher_runs: dict[str, str]) -> dict:
    """Widgets for every field of the training spec (docs/SPEC.md); returns the raw spec they describe.

    ``teacher_runs`` maps finished run ids to labels, for distillation from a finished run.
    """
    ts: dict = {}
    basics = st.columns(5)
    ts["epochs"] = int(basics[0].number_input("epochs", value=int(defaults["epochs"]), step=1, key="ts_epochs"))
    ts["batch_size"] = int(
        basics[1].number_input("batch size", value=int(defaults["batch_size"]), step=16, key="ts_batch_size")
    )
    ts["seed"] = int(
        basics[2].number_input(
            "seed",
            value=int(defaults["seed"]),
            step=1,
            key="ts_seed",
            help="seeds the weights, the shuffling and the validation split",
        )
    )
    ts["validation_split"] = float(
        basics[3].number_input(
            "validation share",
            value=float(defaults["validation_split"]),
            step=0.05,
            format="%g",
            key="ts_val",
            help="share of the training set held out to pick the best epoch",
        )
    )

    optimizer_column, schedule_column = st.columns(2)
    with optimizer_column:
        ts["optimizer"], ts["bop_schedule"] = _optimizer(defaults)
    with schedule_column:
        ts["lr_schedule"] = _schedule(defaults)

    left, right = st.columns(2)
    with left:
        clip = defaults["weight_clip"]
        if _explained_toggle(
            "weight clip",
            clip is not None,
            "ts_clip_on",
            "Clip latent weights to [-b, b] after each step, so they stay where the "
            "straight-through gradient is non-zero and can still flip.",
        ):
            ts["weight_clip"] = float(
                st.number_input("bound b", value=float(clip or 1.0), step=0.1, format="%g", key="ts_clip")
            )
        else:
            ts["weight_clip"] = None
        ts["distillation"] = _distillation(defaults, teacher_runs)
    with right:
        soft = defaults["soft_binarization"]
        if _explained_toggle(
            "soft-to-hard binarization",
            soft is not None,
            "ts_soft_on",
            "soft_sign quantizers use tanh(x/T) with T lowered geometrically to a hard sign "
            "(only layers that use soft_sign are affected).",
        ):
            soft = soft or {"start_temperature": 1.0, "end_temperature": 0.01}
            a, b = st.columns(2)
            ts["soft_binarization"] = {
                "start_temperature": float(
                    a.number_input("start T", value=float(soft["start_temperature"]), format="%g", key="ts_soft_start")
                ),
                "end_temperature": float(
                    b.number_input("end T", value=float(soft["end_temperature"]), format="%g", key="ts_soft_end")
                ),
            }
        else:
            ts["soft_binarization"] = None
        two_stage = defaults["two_stage"]
        if _explained_toggle(
            "two-stage training",
            two_stage is not None,
            "ts_two_stage_on",
            "First train with binary activations and real weights, then binarize the "
            "weights too (eases the optimisation of fully binary layers).",
        ):
            ts["two_stage"] = {
                "first_epochs": int(
                    st.number_input(
                        "epochs of stage one",
                        value=int((two_stage or {}).get("first_epochs", 2)),
                        step=1,
                        key="ts_two_stage",
                    )
                )
            }
        else:
            ts["two_stage"] = None
    ts.update(_placement(defaults))
    return ts


def _placement(defaults: dict) -> dict:
    """Where the run trains and on how many processes (docs/DISTRIBUTED.md)."""
    devices = ["auto", "cpu", "cuda", "mps"]
    device = defaults.get("device", "auto")
    a, b, c = st.columns(3)
    return {
        "device": a.selectbox(
            "device",
            devices if device in devices else [*devices, device],
            index=(devices + [device]).index(device),
            key="ts_device",
            help="auto: a CUDA GPU if PyTorch sees one, then Apple's mps, then the CPU",
        ),
        "processes": int(
            b.number_input(
                "processes",
                min_value=1,
                value=int(defaults.get("processes", 1)),
                step=1,
                key="ts_processes",
                help="DistributedDataParallel over this many processes (torchrun); the batch size is the global "
                "batch, split equally between them",
            )
        ),
        "mixed_precision": c.toggle(
            "mixed precision",
            value=bool(defaults.get("mixed_precision", False)),
            key="ts_mixed_precision",
            help="bfloat16 matmuls and convolutions in the training forward pass; weights, optimizer states, "
            "batch norm, the loss and evaluation stay float32",
        ),
    }


def _optimizer(defaults: dict) -> tuple[dict, dict | None]:
    names = ["adam", "sgd", "bop"]
    given = defaults["optimizer"]
    name = st.selectbox(
        "optimizer",
        names,
        index=names.index(given["name"]),
        key="ts_optimizer",
        help="adam / sgd update latent weights; bop flips binary weights directly",
    )
    lr = st.number_input(
        "learning rate",
        value=float(given.get("lr", 0.001)),
        format="%g",
        step=0.0005,
        key="ts_lr",
        help="for bop: the Adam learning rate of the real-valued parameters",
    )
    optimizer = {"name": name, "lr": float(lr)}
    bop_schedule = None
    if name == "sgd":
        optimizer["momentum"] = float(
            st.number_input("momentum", value=float(given.get("momentum", 0.9)), format="%g", key="ts_momentum")
        )
    elif name == "bop":
        st.caption(
            "Bop keeps a moving average m of the gradient (rate gamma) and flips a binary weight when "
            "|m| exceeds the threshold tau and agrees in sign with the weight."
        )
        a, b = st.columns(2)
        optimizer["threshold"] = float(
            a.number_input("threshold tau", value=float(given.get("threshold", 1e-8)), format="%g", key="ts_bop_tau")
        )
        optimizer["gamma"] = float(
            b.number_input("gamma", value=float(given.get("gamma", 1e-4)), format="%g", key="ts_bop_gamma")
        )
        if st.toggle("decay tau and gamma", value=defaults.get("bop_schedule") is not None, key="ts_bop_decay"):
            bop_schedule = {"threshold_decay": 0.1, "gamma_decay": 0.1, "every": 2}
            st.caption("tau and gamma × 0.1 every 2 epochs")
    return optimizer, bop_schedule


def _schedule(defaults: dict) -> dict:
    names = ["constant", "cosine", "step", "exponential"]
    given = defaults["lr_schedule"]
    name = st.selectbox(
        "learning-rate schedule",
        names,
        index=names.index(given["name"]),
        key="ts_schedule",
        help="cosine: decays to 0 over the run; step: × gamma every step_size epochs; exponential: × gamma every epoch",
    )
    schedule = {"name": name}
    if name == "step":
        schedule["step_size"] = int(
            st.number_input("step size (epochs)", value=int(given.get("step_size", 1)), step=1, key="ts_step_size")
        )
    if name in ("step", "exponential"):
        schedule["gamma"] = float(
            st.number_input(
                "gamma",
                value=float(given.get("gamma", 0.1 if name == "step" else 0.95)),
                format="%g",
                key="ts_schedule_gamma",
            )
        )
    return schedule


def _distillation(defaults: dict, teacher_runs: dict[str, str]) -> dict | None:
    given = defaults["distillation"]
    if not _explained_toggle(
        "distillation",
        given is not None,
        "ts_kd_on",
        "Learn from a teacher's softened outputs as well as the labels: "
        "alpha·T²·KL(teacher‖student) + (1 − alpha)·cross-entropy.",
    ):
        return None
    given = given or {"teacher": "float_twin", "alpha": 0.9, "temperature": 4.0}
    options = ["float_twin", *teacher_runs]
    current = given.get("teacher_run") or "float_twin"
    teacher = st.selectbox(
        "teacher",
        options,
        index=options.index(current) if current in options else 0,
        format_func=lambda v: "the float twin (trained first)" if v == "float_twin" else teacher_runs[v],
        key="ts_kd_teacher",
    )
    a, b = st.columns(2)
    result = {
        "alpha": float(a.number_input("alpha", value=float(given.get("alpha", 0.9)), format="%g", key="ts_kd_alpha")),
        "temperature": float(
            b.number_input(
                "temperature T", value=float(given.get("temperature", 4.0)), format="%g", key="ts_kd_temperature"
            )
        ),
    }
    result["teacher" if teacher == "float_twin" else "teacher_run"] = teacher
    return result
