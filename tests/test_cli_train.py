"""bnn-workbench train / runs list / runs show, end to end on a tiny synthetic set, and their bad-input errors."""
import json

import pytest

from workbench.cli import main
from workbench.core.presets import preset
from workbench.runs.store import RunStore


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_list_and_show(tmp_path, capsys):
    runs = str(tmp_path / "store")
    code, out, err = _run(capsys, "--runs-dir", runs, "train", "toy-mlp", "--data", "moons", "--epochs", "2",
                          "--name", "cli run")
    assert code == 0, err
    run = RunStore(runs).list_runs()[0]
    assert run.status == "completed" and run.epochs_done == 2 and run.name == "cli run"
    assert f"run {run.id} completed: 2 epochs, best val accuracy {run.best_val_accuracy:.4f}" in out
    assert f"test accuracy {run.test_accuracy:.4f}" in out
    assert "batch" in err and "loss=" in err and "acc=" in err  # the tqdm bar

    code, out, _ = _run(capsys, "--runs-dir", runs, "runs", "list")
    header, rule, row = out.splitlines()
    assert header.split() == ["id", "name", "status", "data", "epochs", "best", "val", "acc", "test", "acc", "created"]
    assert row.startswith(run.id) and "cli run" in row and " completed " in row and " moons " in row and " 2/2 " in row
    assert f"{run.test_accuracy:.4f}" in row

    code, out, _ = _run(capsys, "--runs-dir", runs, "runs", "show", run.id)
    assert code == 0 and f"run       {run.id}  (cli run)" in out and "status    completed" in out
    assert "network   toy-mlp: input [2], 2 classes" in out and "2 epochs, batch 128, optimizer adam" in out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split()[:5] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert [line.split()[0] for line in table[2:]] == ["1", "2"]


@pytest.mark.slow
def test_train_spec_and_training_files_and_resume(tmp_path, capsys):
    runs = str(tmp_path / "store")
    spec_file, training_file = tmp_path / "net.json", tmp_path / "training.json"
    spec_file.write_text(json.dumps(preset("toy-mlp")))
    training_file.write_text(json.dumps({"epochs": 2, "batch_size": 100, "optimizer": {"name": "sgd", "lr": 0.05}}))
    code, _, err = _run(capsys, "--runs-dir", runs, "train", str(spec_file), "--data", "xor",
                        "--training", str(training_file))
    assert code == 0, err
    store = RunStore(runs)
    run = store.list_runs()[0]
    assert run.training_spec["optimizer"]["name"] == "sgd" and run.training_spec["batch_size"] == 100
    first_two = store.metrics(run.id)["loss"]

    code, _, err = _run(capsys, "--runs-dir", runs, "train", str(spec_file), "--data", "xor", "--resume", run.id)
    assert code == 2 and f"run {run.id} is completed; only stopped, interrupted, failed runs can be resumed" in err
    store.update_run(run.id, status="stopped")  # as if stopped after its second epoch
    code, out, err = _run(capsys, "--runs-dir", runs, "train", str(spec_file), "--data", "xor",
                          "--resume", run.id, "--epochs", "3")
    assert code == 0, err
    assert f"run {run.id} completed: 3 epochs" in out
    table = store.metrics(run.id)
    assert table["epoch"] == [1, 2, 3] and table["loss"][:2] == first_two  # continued, not restarted
    assert len(store.list_runs()) == 1


@pytest.mark.parametrize("argv, message", [
    (["train", "missing.json", "--data", "moons"], "missing.json"),
    (["train", "no-such-preset", "--data", "moons"], "not a preset"),
    (["train", "toy-mlp", "--data", "fashion"], "unknown dataset 'fashion'"),
    (["train", "toy-mlp", "--data", "missing.npz"], "missing.npz: file not found"),
    (["train", "toy-mlp", "--data", "moons", "--epochs", "0"], "field 'epochs'"),
    (["runs", "show", "nope"], "run 'nope' not found"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code, out, err = _run(capsys, "--runs-dir", str(tmp_path / "store"), *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert RunStore(tmp_path / "store").list_runs() == []


def test_bad_spec_files(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("{not json")
    code, _, err = _run(capsys, "--runs-dir", str(tmp_path), "train", str(tmp_path / "broken.json"), "--data", "moons")
    assert code == 2 and "broken.json: invalid JSON" in err
    spec = preset("toy-mlp")
    spec["layers"][0]["units"] = -4
    (tmp_path / "bad.json").write_text(json.dumps(spec))
    code, _, err = _run(capsys, "--runs-dir", str(tmp_path), "train", str(tmp_path / "bad.json"), "--data", "moons")
    assert code == 2 and "layer 0 (dense): field 'units' must be a positive integer, got -4" in err
    (tmp_path / "t.json").write_text(json.dumps({"epochs": 1, "optimiser": {}}))
    code, _, err = _run(capsys, "--runs-dir", str(tmp_path), "train", "toy-mlp", "--data", "moons",
                        "--training", str(tmp_path / "t.json"))
    assert code == 2 and "'optimiser'" in err
    assert RunStore(tmp_path).list_runs() == []


def test_runs_list_empty(tmp_path, capsys):
    assert _run(capsys, "--runs-dir", str(tmp_path), "runs", "list")[1] == "no runs yet\n"
