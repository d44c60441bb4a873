"""Start a run: validate its specs and data reference, create (or reopen) it in the store, launch its worker.

Torch-free, so that the app's pages and the CLI start a run without loading the training stack: the worker
process (``python -m workbench.cli worker RUN_ID``) is where torch is imported. The process starts in a new
session, so the job outlives the Streamlit script run (and the app) that started it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from workbench.core.data import Dataset, check_fits, load_run_data
from workbench.core.spec import check_augmentation, default_training_spec, validate_spec, validate_training_spec
from workbench.runs.store import RESUMABLE, RunStore

SPLIT_FIELDS = ("seed", "validation_split", "test_split", "split_method")  # what fixes a run's data split


def prepare_resume(store: RunStore, run_id: str, training_spec: dict | None) -> None:
    """Queue a stopped, interrupted or failed run again; a given training spec replaces the stored one."""
    record = store.get_run(run_id)
    if record.status not in RESUMABLE:
        raise ValueError(f"run {run_id} is {record.status}; only {', '.join(RESUMABLE)} runs can be resumed")
    if not store.run_dir(run_id).is_dir():
        raise ValueError(
            f"run {run_id}: its folder {store.run_dir(run_id)} is missing, so there is nothing to resume "
            f"from (the run is left {record.status}; delete it or run 'bnn-workbench runs check')"
        )
    if training_spec is not None:
        training_spec = validate_training_spec(training_spec)
        changed = [
            key for key in SPLIT_FIELDS if training_spec[key] != record.training_spec.get(key, training_spec[key])
        ]
        if changed:
            raise ValueError(
                f"run {run_id}: resuming cannot change {', '.join(changed)}: the data split is part of "
                f"the run (stored {', '.join(f'{k}={record.training_spec.get(k)!r}' for k in changed)})"
            )
        store.update_run(run_id, training_spec=training_spec)
    store.update_run(run_id, status="queued", pid=None, owner=None, request=None, error=None, finished_at=None)


def create_run(
    store: RunStore,
    network_spec: dict,
    training_spec: dict | None,
    data_ref: str,
    name: str | None,
    dataset: Dataset | None = None,
) -> str:
    """A new queued run, created only once both specs are valid and the data loads and fits the network, so that
    a mistake leaves no failed run behind. ``dataset``: the data already loaded with this training spec's split."""
    network_spec = validate_spec(network_spec)
    training_spec = validate_training_spec(training_spec if training_spec is not None else default_training_spec())
    check_augmentation(network_spec, training_spec)
    check_fits(network_spec, dataset if dataset is not None else load_run_data(data_ref, training_spec))
    return store.create_run(name, network_spec, training_spec, data_ref)


def start_run(
    network_spec: dict | None,
    training_spec: dict | None,
    data_ref: str | None,
    *,
    name: str | None = None,
    runs_dir: str | os.PathLike | None = None,
    resume_run_id: str | None = None,
) -> str:
    """Create a run (or reopen ``resume_run_id``) and train it in a separate worker process; returns the run id.

    Specs are validated here, so a bad spec raises SpecError before any process starts. When resuming, the
    stored network spec and data are used; a given ``training_spec`` replaces the stored one (e.g. more epochs).
    """
    store = RunStore(runs_dir)
    if resume_run_id:
        prepare_resume(store, resume_run_id, training_spec)
        run_id = resume_run_id
    else:
        run_id = create_run(store, network_spec, training_spec, data_ref, name)
    log = open(store.log_path(run_id), "ab")
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "workbench.cli", "--runs-dir", str(store.runs_dir), "worker", run_id]
    with log:
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
            )
        except OSError as error:
            store.update_run(
                run_id, status="failed", error=f"could not start the worker: {error}", finished_at=time.time()
            )
            raise
    store.update_run(run_id, pid=process.pid)
    # reap the worker when it ends, so a long-lived app server collects no zombie processes
    threading.Thread(target=process.wait, name=f"bnn-reap-{run_id}", daemon=True).start()
    return run_id
