"""Test-wide settings: every test gets its own run store, so no test reads or writes ~/.bnn-workbench."""

import os
import pathlib

import pytest


@pytest.fixture(autouse=True)
def isolated_runs_dir(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(runs_dir))
    return runs_dir


@pytest.fixture(scope="session")
def mnist_dir():
    """Full MNIST (the four IDX files), from $BNN_MNIST_DIR; .ci/run points it at ../shared/datasets/mnist."""
    value = os.environ.get("BNN_MNIST_DIR")
    if not value:
        pytest.skip("full MNIST not configured: set BNN_MNIST_DIR to a folder with the four MNIST IDX files")
    path = pathlib.Path(value)
    if not path.is_dir():
        pytest.skip(f"BNN_MNIST_DIR={value} is not a folder")
    return path
