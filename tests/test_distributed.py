"""Training on several processes (torchrun + DistributedDataParallel over gloo) and on a named device.

The distributed runs are real: torchrun starts the ranks as processes, as `bnn-workbench train --nproc 2` does.
"""

import os
import pathlib
import signal
import time

import pytest
import torch
from polling import wait_until

from workbench.core.presets import preset
from workbench.core.spec import SpecError, default_training_spec, validate_training_spec
from workbench.runs.launch import start_run
from workbench.runs.ranks import failure_text
from workbench.runs.store import RunStore, pid_alive
from workbench.runs.worker import run_worker
from workbench.train.distributed import resolve_device

WAIT = 180.0  # generous: three interpreters start per distributed run on a loaded 2-core machine

# No batch norm: PyTorch has no CPU SyncBatchNorm, so only a network without it trains to the same weights
# on 2 gloo processes as on 1 (each process would normalise with its own half of the batch).
NO_BATCH_NORM = {
    "name": "no-bn",
    "input_shape": [2],
    "num_classes": 2,
    "layers": [
        {"type": "dense", "units": 16, "kernel_quantizer": "ste_sign"},
        {"type": "activation", "fn": "hardtanh"},
        {"type": "dense", "units": 16, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
        {"type": "activation", "fn": "hardtanh"},
        {"type": "dense", "units": 2},
    ],
}


def _training(**changes) -> dict:
    return validate_training_spec(dict(default_training_spec(), batch_size=32, seed=1, **changes))


def _wait(predicate, what: str, timeout: float = WAIT):
    return wait_until(predicate, what, timeout)


def _trained(tmp_path, name: str, processes: int, training: dict, spec=NO_BATCH_NORM):
    store = RunStore(tmp_path / name)
    run_id = store.create_run(name, spec, dict(training, processes=processes), "moons")
    assert run_worker(run_id, store.runs_dir) == "completed", store.get_run(run_id).error
    return store, run_id


def _rows_once_per_step(store, run_id, epochs: int, batches: int) -> None:
    steps = store.metrics(run_id, "step")["step"]
    assert steps == list(range(1, epochs * batches + 1))  # one row per global batch, none per rank
    assert store.metrics(run_id)["epoch"] == list(range(1, epochs + 1))


def test_placement_fields_are_validated():
    assert validate_training_spec({})["device"] == "auto" and validate_training_spec({})["processes"] == 1
    for bad, field in (
        ({"device": "gpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"processes": 0}, "processes"),
        ({"processes": 65}, "processes"),
        ({"processes": 3, "batch_size": 128}, "batch_size"),
        ({"mixed_precision": "yes"}, "mixed_precision"),
    ):
        with pytest.raises(SpecError, match=f"field '{field}'"):
            validate_training_spec(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gives")
def test_a_device_this_machine_lacks_is_refused_by_name():
    assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(ValueError, match="'cuda:1'.*no CUDA GPU"):
        resolve_device("cuda:1")


def test_mixed_precision_trains_and_keeps_float32_state(tmp_path):
    store, run_id = _trained(tmp_path, "amp", 1, _training(epochs=1, device="cpu", mixed_precision=True))
    checkpoint = store.load_checkpoint(run_id, "last")
    assert all(value.dtype == torch.float32 for value in checkpoint.model.values() if value.is_floating_point())
    assert store.get_run(run_id).test_accuracy is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": {"name": "adam", "lr": 0.01}, "weight_clip": 1.0},
        {"optimizer": {"name": "bop", "threshold": 1e-6, "gamma": 1e-3, "lr": 0.01}},
    ],
    ids=["adam+clip", "bop"],
)
def test_two_gloo_processes_train_the_weights_one_process_does(tmp_path, changes):
    training = _training(epochs=2, **changes)
    one, one_id = _trained(tmp_path, "one", 1, training)
    two, two_id = _trained(tmp_path, "two", 2, training)
    first, second = one.load_checkpoint(one_id, "last").model, two.load_checkpoint(two_id, "last").model
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=1e-5, msg=key)
    if changes["optimizer"]["name"] == "bop":  # the same flips on every rank: the +-1 weights are equal exactly
        assert torch.equal(first["layers.2.weight"], second["layers.2.weight"])
    a, b = one.get_run(one_id), two.get_run(two_id)
    assert (a.best_epoch, a.test_accuracy) == (b.best_epoch, b.test_accuracy)
    _rows_once_per_step(two, two_id, 2, 900 // 32)


@pytest.mark.slow
def test_batch_norm_trains_on_two_processes(tmp_path):
    store, run_id = _trained(tmp_path, "bn", 2, _training(epochs=2), spec=preset("toy-mlp"))
    assert store.get_run(run_id).test_accuracy > 0.7
    _rows_once_per_step(store, run_id, 2, 900 // 32)


def _rank_pid(run_id: str, rank: int) -> int | None:
    """The pid of one rank's process of the run (torchrun sets RANK in each worker's environment)."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if run_id.encode() in command and f"RANK={rank}".encode() in environment:
            return int(entry.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/environ").exists(), reason="finds the rank's process in /proc")
def test_pause_then_a_killed_rank_fails_the_run_which_resumes(isolated_runs_dir):
    store = RunStore(isolated_runs_dir)
    run_id = start_run(NO_BATCH_NORM, _training(epochs=400, processes=2), "moons", name="two ranks")
    try:
        _wait(lambda: store.get_run(run_id).epochs_done >= 1, "the first distributed epoch")
        store.request(run_id, "pause")
        _wait(lambda: store.get_run(run_id).status == "paused", "every rank to pause")
        held = len(store.metrics(run_id, "step")["step"])
        time.sleep(1.5)
        assert len(store.metrics(run_id, "step")["step"]) == held  # rank 0 holds, rank 1 waits in the broadcast
        store.request(run_id, "resume")
        _wait(lambda: len(store.metrics(run_id, "step")["step"]) > held, "training to go on after resume")

        victim = _wait(lambda: _rank_pid(run_id, 1), "rank 1's process")
        os.kill(victim, signal.SIGKILL)
        record = _wait(lambda: (r := store.get_run(run_id)).status not in ("running", "paused") and r, "the failure")
        assert record.status == "failed" and "rank 1 of 2 failed" in record.error, record.error
        assert "(exit code -9, SIGKILL)" in record.error.splitlines()[0]
        done = record.epochs_done
        assert done >= 1 and store.metrics(run_id)["epoch"][:done] == list(range(1, done + 1))  # metrics kept
        _wait(lambda: _rank_pid(run_id, 0) is None, "rank 0 to be stopped by torchrun")

        target = store.load_checkpoint(run_id, "last").epoch + 1
        assert start_run(None, _training(epochs=target, processes=2), None, resume_run_id=run_id) == run_id
        record = _wait(lambda: (r := store.get_run(run_id)).status not in ("queued", "running") and r, "the resume")
        assert record.status == "completed", record.error
        _rows_once_per_step(store, run_id, target, 900 // 32)
    finally:
        for rank in (0, 1):
            pid = _rank_pid(run_id, rank)
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_failure_names_the_rank_from_torchrun_s_summary():
    summary = [
        "Failures:",
        "[1]:",
        "  rank      : 0 (local_rank: 0)",
        "  exitcode  : -15 (pid: 4241)",
        "  traceback : Signal 15 (SIGTERM) received by PID 4241",
        "Root Cause (first observed failure):",
        "[0]:",
        "  time      : 2026-12-02_02:00:00",
        "  rank      : 1 (local_rank: 1)",
        "  exitcode  : -9 (pid: 4242)  (SIGKILL)",
        "  traceback : Signal 9 (SIGKILL) received by PID 4242",
    ]
    text = failure_text(1, summary, 2)
    first = text.splitlines()[0]
    assert first == (
        "distributed training failed: rank 1 of 2 failed (exit code -9, SIGKILL): "
        "Signal 9 (SIGKILL) received by PID 4242"
    )
    assert failure_text(-15, [], 2).startswith("distributed training failed: torchrun exited with code -15, SIGTERM")
    # rank 0 saw the broken connection and exited first, so torchrun calls it the root cause: the killed rank wins
    raced = [
        "Failures:",
        "[1]:",
        "  rank      : 1 (local_rank: 1)",
        "  exitcode  : -9 (pid: 8148)",
        "  traceback : Signal 9 (SIGKILL) received by PID 8148",
        "Root Cause (first observed failure):",
        "[0]:",
        "  rank      : 0 (local_rank: 0)",
        "  exitcode  : 1 (pid: 8147)",
        "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html",
    ]
    first_line = failure_text(1, raced, 2).splitlines()[0]
    assert first_line.startswith("distributed training failed: rank 1 of 2 failed (exit code -9, SIGKILL)")


@pytest.mark.slow
def test_torchrun_by_hand_trains_a_run_the_cli_created(tmp_path, capsys):
    """The several-machines recipe of docs/DISTRIBUTED.md, on one machine: create the run, start torchrun."""
    import json
    import subprocess
    import sys

    from workbench.cli.main import main

    (tmp_path / "net.json").write_text(json.dumps(NO_BATCH_NORM))
    (tmp_path / "train.json").write_text(json.dumps({"epochs": 1, "batch_size": 32}))
    runs = str(tmp_path / "runs")
    code = main(
        ["--runs-dir", runs, "train", str(tmp_path / "net.json"), "--data", "moons", "--training"]
        + [str(tmp_path / "train.json"), "--nproc", "2", "--create-only"]
    )
    assert code == 0
    store = RunStore(runs)
    (record,) = store.list_runs()
    assert record.status == "queued" and record.training_spec["processes"] == 2
    assert f"worker {record.id}" in capsys.readouterr().out
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "workbench.cli"]
        + ["--runs-dir", runs, "worker", record.id],
        check=True,
        timeout=WAIT,
    )
    record = store.get_run(record.id)
    assert record.status == "completed" and record.test_accuracy is not None
    _rows_once_per_step(store, record.id, 1, 900 // 32)


@pytest.mark.slow
def test_the_gpu_check_script_runs_end_to_end_on_the_cpu(capsys):
    """tools/gpu_check.py, as prepared for a GPU machine, here on the CPU and the bundled sample."""
    import runpy

    script = pathlib.Path(__file__).resolve().parent.parent / "tools" / "gpu_check.py"
    check = runpy.run_path(str(script))
    assert check["main"](["--data", "mnist-sample", "--device", "cpu", "--epochs", "1", "--cpu-batches", "5"]) == 0
    out = capsys.readouterr().out
    assert "on 2 CPU threads of this machine" in out and "bit-exact: yes" in out
