"""A run's dataset for the pages, loaded once per (data, split) and shared by the app's sessions.

Every page that evaluates a run uses this, so the test split on screen is the one the run was scored on
(its stored seed, test share and method), never a re-split with defaults.
"""

from __future__ import annotations

from dataclasses import astuple

import streamlit as st

from workbench.core.data import Dataset, Split, load_dataset
from workbench.runs.store import RunRecord


def run_dataset(record: RunRecord) -> Dataset:
    """The data exactly as the run saw it (see workbench.core.data.load_run_data)."""
    return _load(record.data_ref, *astuple(Split.of(record.training_spec)))


@st.cache_resource(max_entries=2, show_spinner="Loading the dataset…")
def _load(data_ref: str, seed: int, test_fraction: float, method: str) -> Dataset:
    return load_dataset(data_ref, split=Split(seed, test_fraction, method))
