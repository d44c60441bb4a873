"""Run store: records, statuses (incl. a dead worker), metrics, histograms, checkpoints, concurrent reading."""

import subprocess
import sys
import threading
import time

import pytest
import torch

from workbench.runs.store import KEEP_EPOCHS, STALE_SECONDS, MetricsWriter, RunNotFoundError, RunStore, default_runs_dir
from workbench.train.checkpoint import Checkpoint

NET = {"name": "tiny", "input_shape": [2], "num_classes": 2, "layers": [{"type": "dense", "units": 2}]}
TRAIN = {"epochs": 3, "batch_size": 8}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def test_default_dir_from_environment(isolated_runs_dir):
    assert default_runs_dir() == isolated_runs_dir
    assert RunStore().db_path == isolated_runs_dir / "runs.db"


def test_create_get_list_update_delete(store):
    first = store.create_run(None, NET, TRAIN, "moons")
    second = store.create_run("mine", NET, dict(TRAIN, epochs=5), "xor", parent_id=first)
    run = store.get_run(first)
    assert (run.name, run.status, run.data_ref, run.epochs_done) == ("tiny on moons", "queued", "moons", 0)
    assert run.network_spec == NET and run.training_spec == TRAIN and run.parent_id is None
    assert store.get_run(second).parent_id == first and store.get_run(second).training_spec["epochs"] == 5
    assert [r.id for r in store.list_runs()] == [second, first]
    store.update_run(first, status="completed", epochs_done=3, best_val_accuracy=0.9, test_accuracy=0.85)
    assert store.get_run(first).test_accuracy == 0.85
    with pytest.raises(ValueError, match="unknown column"):
        store.update_run(first, colour="red")
    store.delete_run(first)
    with pytest.raises(RunNotFoundError, match=f"run '{first}' not found"):
        store.get_run(first)
    assert not store.run_dir(first).exists() and store.get_run(second).parent_id is None
    assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_statuses_of_dead_and_stale_workers(store):
    run_id = store.create_run(None, NET, TRAIN, "moons")
    store.update_run(run_id, status="running", pid=_dead_pid(), started_at=time.time(), heartbeat_at=time.time())
    assert store.get_run(run_id).status == "interrupted"
    store.update_run(run_id, status="paused")
    assert store.get_run(run_id).status == "interrupted"
    # A live pid whose heartbeat stopped long ago is not this run's worker (pid reuse).
    store.update_run(run_id, status="running", pid=subprocess.os.getpid(), heartbeat_at=time.time() - STALE_SECONDS - 1)
    assert store.get_run(run_id).status == "interrupted"
    store.update_run(run_id, heartbeat_at=time.time())
    assert store.get_run(run_id).status == "running" and store.get_run(run_id).active
    store.update_run(run_id, status="queued", pid=_dead_pid())
    record = store.get_run(run_id)
    assert record.status == "failed" and "worker.log" in record.error
    store.update_run(run_id, status="completed")
    assert store.get_run(run_id).status == "completed"


def test_zombie_worker_reads_as_interrupted(store):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    run_id = store.create_run(None, NET, TRAIN, "moons")
    store.update_run(run_id, status="running", pid=process.pid, heartbeat_at=time.time())
    deadline = time.time() + 20
    while store.get_run(run_id).status == "running" and time.time() < deadline:
        time.sleep(0.05)  # the child exits but is not reaped: a zombie
    assert store.get_run(run_id).status == "interrupted"
    process.wait()


def test_requests(store):
    run_id = store.create_run(None, NET, TRAIN, "moons")
    store.request(run_id, "pause")
    assert store.pending_request(run_id) == "pause"
    store.request(run_id, "resume")
    assert store.pending_request(run_id) is None
    store.request(run_id, "stop")
    assert store.pending_request(run_id) == "stop"
    with pytest.raises(ValueError, match="action must be one of pause, resume, stop, got 'jump'"):
        store.request(run_id, "jump")
    store.update_run(run_id, status="completed")
    with pytest.raises(ValueError, match="is completed; only queued, running or paused runs take requests"):
        store.request(run_id, "pause")
    with pytest.raises(ValueError, match="still active"):
        store.delete_run(store.create_run(None, NET, TRAIN, "moons"))


def test_metrics_rows_pivot_and_truncate(store):
    run_id = store.create_run(None, NET, TRAIN, "moons")
    writer = MetricsWriter(store, run_id, flush_seconds=3600)
    for step in range(1, 7):
        extra = {"flip/0_dense": 0.5} if step > 3 else {}
        writer.step(1 + (step - 1) // 3, step, {"loss": 1.0 / step, "accuracy": torch.tensor(0.5), **extra})
        if step % 3 == 0:
            writer.epoch(step // 3, {"loss": 0.1 * step, "val_accuracy": float("nan")}, {"0_dense": {"e": step}})
    steps = store.metrics(run_id, "step")
    assert steps["step"] == [1, 2, 3, 4, 5, 6] and steps["epoch"] == [1, 1, 1, 2, 2, 2]
    assert steps["loss"][1] == 0.5 and steps["accuracy"] == [0.5] * 6
    assert steps["flip/0_dense"] == [None, None, None, 0.5, 0.5, 0.5]
    assert store.metrics(run_id, "step", since_step=4)["step"] == [5, 6]
    assert store.metrics(run_id, "step", stride=2)["step"] == [2, 4, 6] and store.last_step(run_id) == 6
    with pytest.raises(ValueError, match="stride must be a positive integer, got 0"):
        store.metrics(run_id, "step", stride=0)
    epochs = store.metrics(run_id)
    assert epochs["epoch"] == [1, 2] and epochs["step"] == [3, 6] and epochs["val_accuracy"] == [None, None]
    assert store.histograms(run_id) == {"0_dense": {"e": 6}} and store.histograms(run_id, 1) == {"0_dense": {"e": 3}}
    assert store.histogram_epochs(run_id) == [1, 2] and store.histograms(run_id, 7) == {}
    store.truncate(run_id, 1)
    assert store.metrics(run_id, "step")["step"] == [1, 2, 3] and store.metrics(run_id)["epoch"] == [1]
    assert store.histogram_epochs(run_id) == [1]
    store.truncate(run_id, 0)
    assert store.metrics(run_id, "step")["step"] == [] and store.histogram_epochs(run_id) == []
    with pytest.raises(ValueError, match="level must be"):
        store.metrics(run_id, "batch")


def test_writer_batches_commits(store, monkeypatch):
    run_id = store.create_run(None, NET, TRAIN, "moons")
    commits = []
    original = store.write_metrics
    monkeypatch.setattr(store, "write_metrics", lambda *a, **k: (commits.append(len(a[1])), original(*a, **k)))
    writer = MetricsWriter(store, run_id, flush_seconds=0.2)
    for step in range(1, 201):
        writer.step(1, step, {"loss": 1.0})
    writer.flush()
    assert sum(commits) == 200 and len(commits) <= 3  # not one commit per batch
    assert store.get_run(run_id).heartbeat_at is not None


def test_checkpoints_keep_last_and_best(store):
    run_id = store.create_run(None, NET, TRAIN, "moons")
    with pytest.raises(FileNotFoundError, match="no checkpoint yet"):
        store.checkpoint_path(run_id, "last")
    for epoch in range(1, 7):
        checkpoint = Checkpoint(epoch, {"w": torch.full((2, 2), float(epoch))}, {}, {"step": epoch * 10})
        store.save_checkpoint(run_id, checkpoint, is_best=epoch in (2, 5))
    assert store.checkpoint_epochs(run_id) == list(range(7 - KEEP_EPOCHS, 7))
    assert store.load_checkpoint(run_id, "best").epoch == 5
    last = store.load_checkpoint(run_id, "last")
    assert last.epoch == 6 and last.meta == {"step": 60} and torch.equal(last.model["w"], torch.full((2, 2), 6.0))
    assert store.load_checkpoint(run_id, 6).model["w"][0, 0] == 6.0
    with pytest.raises(FileNotFoundError, match="no 5 checkpoint"):
        store.checkpoint_path(run_id, 5)  # its weights live on as best only
    with pytest.raises(ValueError, match="which must be"):
        store.checkpoint_path(run_id, "first")
    assert KEEP_EPOCHS == 1
    assert sorted(p.name for p in store.run_dir(run_id).iterdir()) == ["best.safetensors", "epoch-0006.safetensors"]
    assert torch.equal(store.load_checkpoint(run_id, "best").model["w"], torch.full((2, 2), 5.0))


def test_the_best_checkpoint_of_the_last_epoch_is_stored_once(store):
    run_id = store.create_run(None, NET, TRAIN, "moons")
    store.save_checkpoint(run_id, Checkpoint(1, {"w": torch.ones(64, 64)}, {}, {}), is_best=True)
    folder = store.run_dir(run_id)
    assert (folder / "best.safetensors").stat().st_ino == (folder / "epoch-0001.safetensors").stat().st_ino


def test_reader_never_blocks_while_writer_commits(store):
    run_id = store.create_run(None, NET, TRAIN, "moons")
    done, paused, read = threading.Event(), threading.Event(), threading.Event()

    def write():
        writer_store = RunStore(store.runs_dir)  # its own connection, like the worker process
        writer = MetricsWriter(writer_store, run_id, flush_seconds=0.0)
        for step in range(1, 401):
            writer.step(1, step, {"loss": 1.0, "accuracy": 0.5})
            if step % 100 == 0:  # let the reader in at 100, 200, 300: a busy machine may not switch threads
                writer.flush()
                read.clear()
                paused.set()
                read.wait(timeout=10)
        writer.flush()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    while not done.is_set():
        was_paused = paused.is_set()
        seen.append(len(store.metrics(run_id, "step")["step"]))
        if was_paused:
            paused.clear()
            read.set()
    thread.join()
    seen.append(len(store.metrics(run_id, "step")["step"]))
    assert seen == sorted(seen) and seen[-1] == 400 and len(set(seen)) > 2  # read partial progress, in order
    # a transaction held open by a writer does not stop a reader from reading the last committed state
    db = RunStore(store.runs_dir)._db()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO metrics VALUES (?, 'step', 999, 1, 0, '{}')", (run_id,))
    assert len(store.metrics(run_id, "step")["step"]) == 400
    db.execute("COMMIT")
    assert len(store.metrics(run_id, "step")["step"]) == 401


def test_a_damaged_row_is_shown_as_damaged_and_the_others_still_read(store):
    good = store.create_run("good", NET, TRAIN, "moons")
    bad = store.create_run("bad", NET, TRAIN, "moons")
    store._execute("UPDATE runs SET network_spec = '{not json' WHERE id = ?", (bad,))
    runs = {r.id: r for r in store.list_runs()}
    assert runs[good].status == "queued" and runs[good].network_spec["name"] == NET["name"]
    assert runs[bad].status == "damaged" and "damaged" in runs[bad].error and "invalid JSON" in runs[bad].error
    assert store.get_run(bad).status == "damaged"


def test_a_garbage_or_emptied_database_is_reported_and_left_alone(tmp_path):
    from workbench.runs.store import RunStoreDamagedError

    folder = tmp_path / "runs"
    RunStore(folder).create_run("one", NET, TRAIN, "moons")
    db = folder / "runs.db"
    for path in folder.glob("runs.db-*"):
        path.unlink()
    db.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(RunStoreDamagedError, match="runs.db: not a readable run store database"):
        RunStore(folder)
    assert db.read_bytes().startswith(b"this is not")  # never overwritten
    db.write_bytes(b"")
    with pytest.raises(RunStoreDamagedError, match="runs.db is empty but 1 run folders are beside it"):
        RunStore(folder)
    assert db.read_bytes() == b""


def test_runs_check_reports_and_repairs_what_it_safely_can(tmp_path, capsys):
    from workbench.cli import main

    store = RunStore(tmp_path)
    run_id = store.create_run("one", NET, TRAIN, "moons")
    store.save_checkpoint(run_id, Checkpoint(1, {"w": torch.ones(3)}, {}, {}), is_best=True)
    (store.run_dir(run_id) / "epoch-0002.safetensors.partial").write_bytes(b"half")
    damaged = store.checkpoint_path(run_id, "best")
    damaged.unlink()
    damaged.write_bytes(b"not a checkpoint")
    (tmp_path / "20200101-000000-abcdef").mkdir()  # an orphaned run folder
    assert main(["--runs-dir", str(tmp_path), "runs", "check"]) == 1
    out = capsys.readouterr().out
    assert "epoch-0002.safetensors.partial" in out and "best.safetensors is damaged" in out
    assert "20200101-000000-abcdef: folder" in out and "3 problem(s)" in out
    assert main(["--runs-dir", str(tmp_path), "runs", "check", "--repair"]) == 1  # the orphan stays
    assert "2 repaired" in capsys.readouterr().out
    assert (store.run_dir(run_id) / "best.safetensors.damaged").exists()
    assert (tmp_path / "20200101-000000-abcdef").is_dir()
    assert store.load_checkpoint(run_id, "last").epoch == 1


def test_the_app_names_a_damaged_run_store_instead_of_a_traceback(tmp_path, monkeypatch):
    import pathlib

    from streamlit.testing.v1 import AppTest

    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "runs.db").write_bytes(b"garbage" * 1000)
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(folder))
    app = str(pathlib.Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=60).run()  # the entry script checks the store for every page
    assert not at.exception
    assert any("The run store cannot be read" in e.value and "runs.db" in e.value for e in at.error)
