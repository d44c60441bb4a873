"""A run's live view: status, controls, progress with ETA and the training curves, all read from the run store.

The Train page calls `run_panel` inside st.fragment(run_every=1): every tick reads the store afresh and
rebuilds the figures, so nothing accumulates in the session while a long run trains.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import streamlit as st

from workbench.runs.store import ACTIVE, RESUMABLE
from workbench.ui.figures import lines_figure
from workbench.ui.widgets import by_position, show_error, show_run_error

MAX_POINTS = 500  # batch curves are averaged down to about this many points
STATUS_ICONS = {
    "queued": ":material/hourglass_empty:",
    "running": ":material/play_circle:",
    "paused": ":material/pause_circle:",
    "stopped": ":material/stop_circle:",
    "completed": ":material/check_circle:",
    "failed": ":material/error:",
    "interrupted": ":material/warning:",
}


@dataclass
class Progress:
    fraction: float  # of the whole run, in [0, 1]
    eta_seconds: float | None  # None until it can be estimated
    text: str


_TRAINING_SIZE = re.compile(r": ([\d,]+) training and ")


def planned_batches_per_epoch(record) -> int | None:
    """Batches per epoch before the first epoch has ended, from the run's data summary (core.data.describe,
    written when the worker starts) and its training spec, by the worker's own rule (_progress_for): the fit
    set is the training set less the validation share, cut into whole batches. None without a summary."""
    match = _TRAINING_SIZE.search(record.data_summary or "")
    if match is None:
        return None
    total = int(match.group(1).replace(",", ""))
    spec = record.training_spec
    held_out = min(int(round(total * float(spec.get("validation_split") or 0))), max(total - 2, 0))
    return max((total - held_out) // int(spec.get("batch_size", 128) or 1), 1)


def estimate_progress(record, epochs: dict, last_step: int | None, now: float | None = None) -> Progress:
    """Share of the run done and time left, from completed epochs and the batches of the current one.

    ``epochs`` is the store's epoch table (its ``step`` column holds the global batch count at each epoch's
    end) and ``last_step`` the newest batch: nothing here needs the per-batch rows. Batches are counted from
    the run's first one: an epoch's size is exact once an epoch has ended, planned from the data before.
    """
    total = int(record.training_spec.get("epochs", 1)) or 1
    done = min(record.epochs_done, total)
    end_of = dict(zip(epochs.get("epoch", []), epochs.get("step", [])))
    per_epoch = end_of[done] // done if done and end_of.get(done) else planned_batches_per_epoch(record) or 0
    start = end_of.get(done, 0) if done else 0
    current = min(max((last_step or 0) - start, 0), per_epoch) if per_epoch and done < total else 0
    within = current / per_epoch if per_epoch else 0.0
    fraction = 1.0 if record.status == "completed" else min((done + within) / total, 1.0)
    eta = None
    if record.status == "running" and record.started_at and 0 < fraction < 1:
        elapsed = (now or time.time()) - record.started_at
        eta = elapsed * (1 - fraction) / fraction
    text = f"epoch {min(done + 1, total) if record.status in ('running', 'paused') else done} of {total}"
    if record.status in ("running", "paused"):
        text += f", batch {current} of {per_epoch}" if per_epoch else f", batch {max(last_step or 0, 0)}"
    if eta is not None:
        text += f" · about {format_seconds(eta)} left"
    return Progress(fraction, eta, text)


def poll_stride(last_step: int | None) -> int:
    """Read every n-th batch row so that one live tick reads at most about 2 * MAX_POINTS of them, however
    long the run: the cost (and the server's memory) of a tick must not grow with the run."""
    return max(1, (last_step or 0) // (2 * MAX_POINTS))


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def thin(x: list, y: list, limit: int = MAX_POINTS) -> tuple[list, list]:
    """At most about ``limit`` points: a long run's batch curve is averaged over equal runs of batches
    (each point at the run's last step), which also smooths the per-batch noise. Missing values are dropped."""
    pairs = [(a, b) for a, b in zip(x, y) if b is not None]
    if len(pairs) <= limit:
        return [a for a, _ in pairs], [b for _, b in pairs]
    size = -(-len(pairs) // limit)
    chunks = [pairs[start : start + size] for start in range(0, len(pairs), size)]
    return [chunk[-1][0] for chunk in chunks], [sum(b for _, b in chunk) / len(chunk) for chunk in chunks]


def layer_keys(table: dict, prefix: str) -> list[str]:
    """The metric keys of one kind ("flip/...") in network order."""
    return by_position(key for key in table if key.startswith(prefix))


def curves(steps: dict, epochs: dict) -> dict[str, object]:
    """The four live figures: loss, accuracy, learning rate and per-layer weight flip ratio."""
    step_x = steps.get("step", [])
    epoch_x = epochs.get("epoch", [])
    loss = {"batch loss": thin(step_x, steps.get("loss", []))}
    accuracy = {"batch accuracy": thin(step_x, steps.get("accuracy", []))}
    # Epoch values are placed at the step that ended the epoch, so both share the step axis.
    epoch_step = epochs.get("step", [])
    for key, label in (("loss", "train loss (epoch)"), ("val_loss", "validation loss")):
        loss[label] = thin(epoch_step, epochs.get(key, []))
    for key, label in (("accuracy", "train accuracy (epoch)"), ("val_accuracy", "validation accuracy")):
        accuracy[label] = thin(epoch_step, epochs.get(key, []))
    flips = {key.split("/", 1)[1]: thin(step_x, steps[key]) for key in layer_keys(steps, "flip/")}
    return {
        "loss": lines_figure(loss, "Loss", xaxis="step"),
        "accuracy": lines_figure(accuracy, "Accuracy", xaxis="step"),
        "lr": lines_figure({"learning rate": thin(step_x, steps.get("lr", []))}, "Learning rate", xaxis="step"),
        "flips": lines_figure(flips, "Weight flip ratio per layer", xaxis="step", yaxis="share flipped"),
        "epochs": epoch_x,
    }


def _controls(store, record) -> None:
    pause, resume, stop = st.columns(3)
    try:
        if pause.button("Pause", key="run_pause", disabled=record.status != "running", width="stretch"):
            store.request(record.id, "pause")
            st.toast("pause requested")
        if resume.button("Resume", key="run_resume", disabled=record.status != "paused", width="stretch"):
            store.request(record.id, "resume")
            st.toast("resume requested")
        if stop.button("Stop", key="run_stop", disabled=record.status not in ACTIVE, width="stretch"):
            store.request(record.id, "stop")
            st.toast("stop requested")
    except ValueError as error:  # the run finished between the render and the click
        show_error(error)


def _next_steps(run_id: str) -> None:
    """Links that open the finished run on the pages that use it (the ?run= there selects it)."""
    inspect, deploy, _ = st.columns([1, 1, 2])
    inspect.page_link(
        "pages/inspect.py", label="Inspect this run", icon=":material/query_stats:", query_params={"run": run_id}
    )
    deploy.page_link(
        "pages/deploy.py", label="Deploy this run", icon=":material/rocket_launch:", query_params={"run": run_id}
    )


def run_panel(store, run_id: str, resume_run=None) -> None:
    """Status line, pause/resume/stop, progress with ETA and the live charts of one run."""
    try:
        record = store.get_run(run_id)
    except ValueError as error:
        show_error(error)
        return
    st.markdown(f"### {STATUS_ICONS.get(record.status, '')} {record.name}")
    st.caption(
        f"run {record.id} · {record.status} · data {record.data_ref} · {record.epochs_done} epochs done"
        + (
            f" · best validation accuracy {record.best_val_accuracy:.2%}"
            if record.best_val_accuracy is not None
            else ""
        )
        + (f" · test accuracy {record.test_accuracy:.2%}" if record.test_accuracy is not None else "")
        + (f" · exported checkpoint: {record.best_checkpoint_label}" if record.best_epoch is not None else "")
    )
    resumable = record.status in RESUMABLE and bool(store.checkpoint_epochs(run_id))
    if record.status == "failed":
        show_run_error(record.error, prefix="The run failed: ")
    elif record.status == "interrupted":
        st.warning(
            "The worker of this run stopped without finishing (killed or crashed); what it wrote so far "
            "is kept" + (" and it can be resumed." if resumable else "."),
            icon=":material/warning:",
        )
    _controls(store, record)
    if resume_run is not None and resumable:
        if st.button("Resume from the last checkpoint", key="run_resume_checkpoint"):
            resume_run(record)
    elif record.status in RESUMABLE:
        st.caption("It ended before its first checkpoint, so there is nothing to resume: start a new run below.")
    if record.status not in ACTIVE and record.best_epoch is not None:
        _next_steps(record.id)
    last_step = store.last_step(run_id)
    steps = store.metrics(run_id, "step", stride=poll_stride(last_step))
    epochs = store.metrics(run_id, "epoch")
    progress = estimate_progress(record, epochs, last_step)
    st.progress(progress.fraction, text=progress.text)
    figures = curves(steps, epochs)
    left, right = st.columns(2)
    left.plotly_chart(figures["loss"], key="live_loss")
    right.plotly_chart(figures["accuracy"], key="live_accuracy")
    left.plotly_chart(figures["lr"], key="live_lr")
    right.plotly_chart(figures["flips"], key="live_flips")
    st.caption(f"{last_step or 0} batches and {len(figures['epochs'])} epochs recorded")
