"""The worker with real processes: SIGKILL and resume, pause/resume/stop through the store, failures, distillation."""

import os
import shutil
import signal
import time

import pytest
import torch
from polling import wait_until

from workbench.core.data import load_run_data
from workbench.core.presets import preset
from workbench.core.spec import default_training_spec, validate_training_spec
from workbench.deploy.engine import Engine
from workbench.runs.launch import start_run
from workbench.runs.store import RunBusyError, RunStore, pid_alive
from workbench.runs.trained import load_trained_model, pack_run
from workbench.runs.worker import run_worker

WAIT = 90.0  # seconds: generous, for a loaded 2-core machine; tests only wait this long when broken


def _training(**changes) -> dict:
    return validate_training_spec(dict(default_training_spec(), batch_size=64, **changes))


def _wait(predicate, what: str, timeout: float = WAIT):
    return wait_until(predicate, what, timeout)


@pytest.fixture
def workers(isolated_runs_dir):
    """The store the workers write to; any worker still alive at the end is killed."""
    store = RunStore(isolated_runs_dir)
    yield store
    if not store.db_path.exists():  # the test deleted the store
        return
    for run in store.list_runs():
        if run.pid and run.pid != os.getpid() and pid_alive(run.pid):
            os.kill(run.pid, signal.SIGKILL)


@pytest.mark.slow
def test_sigkill_leaves_interrupted_run_that_resumes(workers):
    store = workers
    run_id = start_run(preset("toy-mlp"), _training(epochs=300), "moons", name="kill me")
    _wait(lambda: store.get_run(run_id).epochs_done >= 1, "the first epoch to be recorded")
    pid = store.get_run(run_id).pid
    assert store.get_run(run_id).status == "running" and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    record = _wait(lambda: (r := store.get_run(run_id)).status != "running" and r, "the kill to show")
    assert record.status == "interrupted" and record.epochs_done >= 1
    epochs = store.metrics(run_id)["epoch"]
    assert epochs[: record.epochs_done] == list(range(1, record.epochs_done + 1))
    assert len(store.metrics(run_id, "step")["step"]) >= 14  # 900 / 64 = 14 batches per epoch
    last = store.load_checkpoint(run_id, "last")
    assert last.epoch == store.checkpoint_epochs(run_id)[-1] >= 1
    assert store.load_checkpoint(run_id, "best").epoch <= last.epoch
    assert "step" in last.meta

    target = last.epoch + 2
    assert start_run(None, _training(epochs=target), None, resume_run_id=run_id) == run_id
    record = _wait(lambda: (r := store.get_run(run_id)).status not in ("queued", "running") and r, "the resumed run")
    assert record.status == "completed", record.error
    assert record.epochs_done == target and record.test_accuracy is not None
    assert store.metrics(run_id)["epoch"] == list(range(1, target + 1))  # no duplicated or lost epochs
    steps = store.metrics(run_id, "step")["step"]
    assert steps == sorted(set(steps)) and len(steps) == 14 * target
    model, spec = load_trained_model(run_id, store)
    assert not model.training and spec["name"] == "toy-mlp"
    assert "Traceback" not in store.log_path(run_id).read_text()


@pytest.mark.slow
def test_pause_resume_stop_through_the_store(workers):
    store = workers
    run_id = start_run(preset("toy-mlp"), _training(epochs=300), "moons")
    _wait(lambda: store.metrics(run_id, "step")["step"], "the first batches")
    store.request(run_id, "pause")
    _wait(lambda: store.get_run(run_id).status == "paused", "the pause")
    before = len(store.metrics(run_id, "step")["step"])
    time.sleep(1.0)
    assert len(store.metrics(run_id, "step")["step"]) == before and store.get_run(run_id).status == "paused"
    store.request(run_id, "resume")
    _wait(lambda: len(store.metrics(run_id, "step")["step"]) > before, "training to go on")
    assert store.get_run(run_id).status == "running"
    store.request(run_id, "stop")
    record = _wait(lambda: (r := store.get_run(run_id)).status in ("stopped", "failed", "completed") and r, "the stop")
    assert record.status == "stopped" and record.finished_at and record.epochs_done < 300
    _wait(lambda: not pid_alive(record.pid), "the worker to exit")
    with pytest.raises(ValueError, match="is stopped"):
        store.request(run_id, "pause")


def test_worker_failure_is_recorded_with_reason(workers):
    store = workers
    # the teacher run does not exist: the worker fails when it looks for it
    run_id = start_run(preset("toy-mlp"), _training(epochs=1, distillation={"teacher_run": "no-such-run"}), "moons")
    record = _wait(lambda: (r := store.get_run(run_id)).status in ("failed", "completed") and r, "the failure")
    assert record.status == "failed"
    assert record.error.startswith("RunNotFoundError: run 'no-such-run' not found")
    assert "Traceback" in record.error and "worker.py" in record.error
    assert "RunNotFoundError" in store.log_path(run_id).read_text()


def test_data_that_does_not_fit_is_refused_before_a_run_exists(workers):
    store = workers
    with pytest.raises(ValueError, match=r"network input_shape is \[2\], the data has \[1, 28, 28\]"):
        start_run(preset("toy-mlp"), _training(epochs=1), "mnist-sample")  # a 2-D net on images
    assert store.list_runs() == []


def test_start_run_validates_before_starting(workers):
    with pytest.raises(ValueError, match="layer 1 \\(dense\\).*units"):
        start_run(
            dict(preset("toy-mlp"), layers=[{"type": "flatten"}, {"type": "dense", "units": -4}]), _training(), "moons"
        )
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        start_run(preset("toy-mlp"), _training(), "nope")
    assert workers.list_runs() == []


def test_distillation_from_float_twin_and_teacher_run(workers):
    store = workers
    distil = {"teacher": "float_twin", "alpha": 0.5, "temperature": 2.0}
    run_id = store.create_run("student", preset("toy-mlp"), _training(epochs=1, distillation=distil), "moons")
    assert run_worker(run_id, store.runs_dir) == "completed"
    children = [r for r in store.list_runs() if r.parent_id == run_id]
    assert len(children) == 1 and children[0].status == "completed"
    assert "(float twin)" in children[0].network_spec["name"] and children[0].training_spec["distillation"] is None
    assert store.metrics(children[0].id)["epoch"] == [1] and store.get_run(run_id).epochs_done == 1

    distil = {"teacher_run": children[0].id, "alpha": 0.5, "temperature": 2.0}
    second = store.create_run("student 2", preset("toy-mlp"), _training(epochs=1, distillation=distil), "moons")
    assert run_worker(second, store.runs_dir) == "completed"
    assert len(store.list_runs()) == 3  # no second teacher was trained

    distil = {"teacher_run": run_id + "x", "alpha": 0.5, "temperature": 2.0}
    third = store.create_run("bad teacher", preset("toy-mlp"), _training(epochs=1, distillation=distil), "moons")
    with pytest.raises(ValueError, match="not found"):
        run_worker(third, store.runs_dir)
    assert store.get_run(third).status == "failed" and "not found" in store.get_run(third).error


@pytest.mark.parametrize("crash_in", ["write_metrics", "save_checkpoint"])
def test_crash_between_an_epochs_writes_loses_no_epoch_on_resume(workers, monkeypatch, crash_in):
    """A worker dying while epoch 2 is being recorded (after its metrics, or before them) resumes without a gap."""
    store = workers
    original = getattr(RunStore, crash_in)

    def crash_at_epoch_2(self, run_id, *args, **kwargs):
        rows = args[0] if crash_in == "write_metrics" else []
        if any(level == "epoch" and epoch == 2 for level, _, epoch, _ in rows) or (
            crash_in == "save_checkpoint" and args[0].epoch == 2
        ):
            raise OSError("simulated crash while recording epoch 2")
        return original(self, run_id, *args, **kwargs)

    monkeypatch.setattr(RunStore, crash_in, crash_at_epoch_2)
    run_id = store.create_run("crash", preset("toy-mlp"), _training(epochs=3), "moons")
    with pytest.raises(OSError, match="simulated crash"):
        run_worker(run_id, store.runs_dir)
    assert store.get_run(run_id).status == "failed" and store.checkpoint_epochs(run_id) == [1]
    monkeypatch.setattr(RunStore, crash_in, original)

    store.update_run(run_id, status="queued")
    assert run_worker(run_id, store.runs_dir) == "completed"
    assert store.metrics(run_id)["epoch"] == [1, 2, 3]
    steps = store.metrics(run_id, "step")["step"]
    assert steps == sorted(set(steps)) and len(steps) == 14 * 3


@pytest.mark.slow
def test_a_worker_whose_run_store_is_deleted_stops(workers):
    store = workers
    run_id = start_run(preset("toy-mlp"), _training(epochs=300), "moons")
    _wait(lambda: store.metrics(run_id, "step")["step"], "the first batches")
    pid = store.get_run(run_id).pid
    store.close()
    shutil.rmtree(store.runs_dir)
    _wait(lambda: not pid_alive(pid), "the worker to notice its run store is gone and exit", timeout=30)
    assert not store.runs_dir.exists(), "the worker must not recreate the deleted run store"


@pytest.mark.slow
def test_the_test_accuracy_shown_is_the_exported_models(tmp_path):
    """A run whose best validation epoch is not its last: the test accuracy the store reports is measured on the
    best checkpoint, the one export packs, so the exported file scores exactly that on the run's test split."""
    training = validate_training_spec(
        {"epochs": 6, "seed": 1, "batch_size": 32, "lr_schedule": "constant", "optimizer": {"name": "adam", "lr": 0.2}}
    )
    store = RunStore(tmp_path)
    run_id = store.create_run("unstable", preset("toy-mlp"), training, "moons")
    assert run_worker(run_id, tmp_path) == "completed"
    record = store.get_run(run_id)
    assert record.best_epoch < record.epochs_done == 6  # the precondition: best is not last
    packed = pack_run(run_id, store=store)
    assert packed.meta["training"]["checkpoint_epoch"] == record.best_epoch
    dataset = load_run_data(record.data_ref, record.training_spec)
    exported = float((Engine(packed).predict(dataset.x_test) == dataset.y_test).mean())
    assert exported == record.test_accuracy == packed.meta["test_accuracy"]


def test_a_finished_worker_is_reaped(workers):
    """The app server starts workers and lives on: a worker that ended must not stay behind as a zombie."""
    store = workers
    run_id = start_run(preset("toy-mlp"), _training(epochs=1), "moons")
    pid = store.get_run(run_id).pid
    _wait(lambda: store.get_run(run_id).status == "completed", "the run to complete")
    _wait(lambda: not os.path.exists(f"/proc/{pid}"), "the worker process to be reaped")


@pytest.mark.slow
def test_a_damaged_checkpoint_is_set_aside_and_resume_uses_the_newest_intact_one(tmp_path):
    """20 flipped bytes in the last checkpoint once trained on NaN weights; now its checksum fails, it is kept
    as *.damaged, and the run resumes from the best checkpoint and completes with a row per epoch."""
    store = RunStore(tmp_path)
    training = _training(epochs=2, lr_schedule="constant", optimizer={"name": "adam", "lr": 0.2}, seed=1)
    run_id = store.create_run("damaged", preset("toy-mlp"), training, "moons")
    assert run_worker(run_id, tmp_path) == "completed"
    last = store.checkpoint_path(run_id, "last")
    data = bytearray(last.read_bytes())
    for offset in range(len(data) - 200, len(data) - 180):
        data[offset] ^= 0xFF
    last.write_bytes(bytes(data))
    (store.run_dir(run_id) / "epoch-0002.safetensors.partial").write_bytes(b"half a file")
    store.update_run(run_id, status="stopped")
    store.update_run(run_id, training_spec=dict(store.get_run(run_id).training_spec, epochs=3))
    assert run_worker(run_id, tmp_path) == "completed"
    names = sorted(path.name for path in store.run_dir(run_id).iterdir() if "safetensors" in path.name)
    assert "epoch-0002.safetensors.damaged" in names and not any(n.endswith(".partial") for n in names)
    epochs = store.metrics(run_id, "epoch")["epoch"]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 3
    assert all(torch.isfinite(v).all() for v in store.load_checkpoint(run_id, "last").model.values())


def test_a_full_disk_fails_the_write_with_disk_full_and_no_partial_file(tmp_path, monkeypatch):
    import errno

    from workbench.train import checkpoint as checkpoint_module

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", full_disk)
    with pytest.raises(OSError, match="disk full while writing checkpoint"):
        checkpoint_module.Checkpoint(1, {"w": torch.ones(2)}).save(tmp_path / "epoch-0001.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_one_worker_per_run_however_long_it_pauses(workers):
    """A paused worker holds its run's lease: the run is not resumable, and a second worker refuses to start."""
    store = workers
    run_id = start_run(preset("toy-mlp"), _training(epochs=300), "moons")
    _wait(lambda: store.metrics(run_id, "step")["step"], "the first batches")
    store.request(run_id, "pause")
    _wait(lambda: store.get_run(run_id).status == "paused", "the pause")
    store.update_run(run_id, heartbeat_at=time.time() - 3600)  # as if the heartbeat had stalled for an hour
    assert store.get_run(run_id).status == "paused"  # the owner lives: not "interrupted"
    with pytest.raises(ValueError, match="only stopped, interrupted, failed runs can be resumed"):
        start_run(None, None, None, resume_run_id=run_id)
    with pytest.raises(RunBusyError, match="being trained by another worker"):
        run_worker(run_id, store.runs_dir)
    assert store.get_run(run_id).status == "paused"  # the refused worker changed nothing
    store.request(run_id, "stop")
    _wait(lambda: store.get_run(run_id).status == "stopped", "the stop")


def test_a_run_whose_folder_vanished_is_not_left_queued(workers):
    store = workers
    run_id = store.create_run("gone", preset("toy-mlp"), _training(epochs=1), "moons")
    store.update_run(run_id, status="stopped")
    shutil.rmtree(store.run_dir(run_id))
    with pytest.raises(ValueError, match="folder .* is missing, so there is nothing to resume"):
        start_run(None, None, None, resume_run_id=run_id)
    assert store.get_run(run_id).status == "stopped"
    store.delete_run(run_id)


@pytest.mark.slow
def test_runs_beyond_the_worker_limit_wait_queued(workers, monkeypatch):
    store = workers
    monkeypatch.setenv("BNN_WORKBENCH_MAX_WORKERS", "1")
    first = start_run(preset("toy-mlp"), _training(epochs=300), "moons")
    _wait(lambda: store.metrics(first, "step")["step"], "the first run's batches")
    second = start_run(preset("toy-mlp"), _training(epochs=1), "moons")
    time.sleep(3)
    assert store.get_run(second).status == "queued" and not store.metrics(second, "step")["step"]
    store.request(first, "stop")
    record = _wait(lambda: (r := store.get_run(second)).status == "completed" and r, "the queued run to train")
    assert store.get_run(first).status == "stopped" and record.epochs_done == 1
