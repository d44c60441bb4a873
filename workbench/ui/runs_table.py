"""The Runs page's table: one row per run, what a user compares first (accuracies) right after name and
status, every column sized so that the table fits the main area of a 1400 px wide window (about 940 px
beside the sidebar) without scrolling sideways. Errors are too long for a column: the page shows failed
runs' errors under the table.
"""

from __future__ import annotations

import datetime

import streamlit as st

# column -> width in pixels; together a little under the 940 px the main area has at 1400 px
WIDTHS = {
    "name": 150,
    "status": 85,
    "best val acc": 95,
    "test acc": 75,
    "exported epoch": 100,
    "data": 100,
    "distillation": 90,
    "created": 90,
    "id": 145,
}


def _when(moment: float | None) -> str:
    return datetime.datetime.fromtimestamp(moment).strftime("%m-%d %H:%M") if moment else ""


def _distillation(record) -> str:
    given = record.training_spec.get("distillation")
    if record.parent_id:
        return f"teacher of {record.parent_id}"
    if not given:
        return ""
    return f"from {given['teacher_run']}" if given.get("teacher_run") else "from float twin"


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 4)


def _checkpoint(record) -> str:
    """record.best_checkpoint_label in a column's width: "4 of 6, val" or, without validation, "6 of 6, last"."""
    if record.best_epoch is None:
        return ""
    return f"{record.best_epoch} of {record.epochs_done}, {'val' if record.chosen_by_validation else 'last'}"


def runs_rows(records) -> dict[str, list]:
    """The table's columns, in order; accuracies in percent (shown with two decimals)."""
    return {
        "name": [r.name for r in records],
        "status": [r.status for r in records],
        "best val acc": [_percent(r.best_val_accuracy) for r in records],
        "test acc": [_percent(r.test_accuracy) for r in records],
        "exported epoch": [_checkpoint(r) for r in records],
        "data": [r.data_ref for r in records],
        "distillation": [_distillation(r) for r in records],
        "created": [_when(r.created_at) for r in records],
        "id": [r.id for r in records],
    }


def runs_column_config() -> dict:
    percent = {
        "best val acc": "best validation accuracy: the checkpoint Deploy and Export use",
        "test acc": "test accuracy of that checkpoint",
    }
    config = {name: st.column_config.Column(name, width=width) for name, width in WIDTHS.items()}
    config.update(
        {
            name: st.column_config.NumberColumn(name, width=WIDTHS[name], format="%.2f%%", help=text)
            for name, text in percent.items()
        }
    )
    config["exported epoch"] = st.column_config.Column(
        "exported epoch",
        width=WIDTHS["exported epoch"],
        help="the epoch whose weights the accuracies are of and Export packs, of the epochs done: chosen by "
        "validation accuracy (val) or the last epoch when there is no validation split (last)",
    )
    config["created"] = st.column_config.Column("created", width=WIDTHS["created"], help="month-day hour:minute")
    return config


def failed_runs(records) -> list:
    """The failed runs, newest first as listed: their errors go under the table, not in a column."""
    return [r for r in records if r.status == "failed"]
