"""bnn-workbench train / runs list / runs show, end to end on a tiny synthetic set, and their bad-input errors."""

import json

import numpy as np
import pytest

from workbench.cli import main
from workbench.core.data import load_dataset, load_run_data
from workbench.core.presets import preset
from workbench.runs.store import RunStore


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_list_and_show(tmp_path, capsys):
    runs = str(tmp_path / "store")
    code, out, err = _run(
        capsys, "--runs-dir", runs, "train", "toy-mlp", "--data", "moons", "--epochs", "2", "--name", "cli run"
    )
    assert code == 0, err
    run = RunStore(runs).list_runs()[0]
    assert run.status == "completed" and run.epochs_done == 2 and run.name == "cli run"
    assert f"run {run.id} completed: 2 epochs; exported checkpoint: epoch {run.best_epoch} of 2" in out
    assert f"its val accuracy {run.best_val_accuracy:.4f}, test accuracy {run.test_accuracy:.4f}" in out
    assert f"test accuracy {run.test_accuracy:.4f}" in out
    assert "batch" in err and "loss=" in err and "acc=" in err  # the tqdm bar

    code, out, _ = _run(capsys, "--runs-dir", runs, "runs", "list")
    header, rule, row = out.splitlines()
    assert header.split() == [
        "id",
        "name",
        "status",
        "data",
        "epochs",
        "exported",
        "val",
        "acc",
        "test",
        "acc",
        "created",
    ]
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
    code, _, err = _run(
        capsys, "--runs-dir", runs, "train", str(spec_file), "--data", "xor", "--training", str(training_file)
    )
    assert code == 0, err
    store = RunStore(runs)
    run = store.list_runs()[0]
    assert run.training_spec["optimizer"]["name"] == "sgd" and run.training_spec["batch_size"] == 100
    first_two = store.metrics(run.id)["loss"]

    code, _, err = _run(capsys, "--runs-dir", runs, "train", str(spec_file), "--data", "xor", "--resume", run.id)
    assert code == 2 and f"run {run.id} is completed; only stopped, interrupted, failed runs can be resumed" in err
    store.update_run(run.id, status="stopped")  # as if stopped after its second epoch
    code, out, err = _run(
        capsys, "--runs-dir", runs, "train", str(spec_file), "--data", "xor", "--resume", run.id, "--epochs", "3"
    )
    assert code == 0, err
    assert f"run {run.id} completed: 3 epochs" in out
    table = store.metrics(run.id)
    assert table["epoch"] == [1, 2, 3] and table["loss"][:2] == first_two  # continued, not restarted
    assert len(store.list_runs()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "missing.json", "--data", "moons"], "missing.json"),
        (["train", "no-such-preset", "--data", "moons"], "not a preset"),
        (["train", "toy-mlp", "--data", "fashion"], "unknown dataset 'fashion'"),
        (["train", "toy-mlp", "--data", "missing.npz"], "missing.npz: file not found"),
        (["train", "toy-mlp", "--data", "moons", "--epochs", "0"], "field 'epochs'"),
        (["runs", "show", "nope"], "run 'nope' not found"),
    ],
)
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
    code, _, err = _run(
        capsys,
        "--runs-dir",
        str(tmp_path),
        "train",
        "toy-mlp",
        "--data",
        "moons",
        "--training",
        str(tmp_path / "t.json"),
    )
    assert code == 2 and "'optimiser'" in err
    assert RunStore(tmp_path).list_runs() == []


def test_runs_list_empty(tmp_path, capsys):
    assert _run(capsys, "--runs-dir", str(tmp_path), "runs", "list")[1] == "no runs yet\n"


def _write_digits_csv(path, n=240, seed=0):
    """A one-set CSV of 8x8 'images' (two classes by which half is brighter), as a user would bring."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    pixels = rng.integers(0, 120, (n, 64))
    pixels[labels == 1, :32] += 120
    pixels[labels == 0, 32:] += 120
    header = ",".join(["label"] + [f"p{i}" for i in range(64)])
    rows = [",".join(map(str, [label, *row])) for label, row in zip(labels, pixels)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return labels


SMALL_MLP = {
    "name": "digits-mlp",
    "input_shape": [64],
    "num_classes": 2,
    "layers": [
        {"type": "dense", "units": 32, "kernel_quantizer": "ste_sign"},
        {"type": "batch_norm"},
        {"type": "dense", "units": 2, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
    ],
}


def test_predict_uses_the_runs_own_split_so_no_test_row_was_trained_on(tmp_path, capsys):
    """With seed 1 the run's test rows differ from a seed-0 split; predict must evaluate the run's own."""
    data = tmp_path / "digits.csv"
    _write_digits_csv(data)
    (tmp_path / "net.json").write_text(json.dumps(SMALL_MLP))
    (tmp_path / "train.json").write_text(json.dumps({"epochs": 2, "seed": 1, "batch_size": 32}))
    runs = str(tmp_path / "store")
    assert (
        main(
            [
                "--runs-dir",
                runs,
                "train",
                str(tmp_path / "net.json"),
                "--data",
                str(data),
                "--training",
                str(tmp_path / "train.json"),
            ]
        )
        == 0
    )
    run = RunStore(runs).list_runs()[0]
    assert main(["--runs-dir", runs, "export", run.id, "-o", str(tmp_path / "m.bnn")]) == 0
    capsys.readouterr()
    for extra in (["--run", run.id], []):  # from the run, or from the file's own header
        assert main(["--runs-dir", runs, "predict", str(tmp_path / "m.bnn"), "--data", str(data), *extra]) == 0
        out = capsys.readouterr().out
        assert f"accuracy {run.test_accuracy:.4f}" in out, out
    seed_one = load_run_data(str(data), run.training_spec)
    seed_zero = load_dataset(str(data))
    assert not np.array_equal(seed_one.x_test, seed_zero.x_test)


def test_the_split_is_stratified_and_set_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "digits.csv"
    labels = _write_digits_csv(data, n=200)
    (tmp_path / "net.json").write_text(json.dumps(SMALL_MLP))
    runs = str(tmp_path / "store")
    assert (
        main(
            [
                "--runs-dir",
                runs,
                "train",
                str(tmp_path / "net.json"),
                "--data",
                str(data),
                "--epochs",
                "1",
                "--test-split",
                "0.3",
                "--validation-split",
                "0",
            ]
        )
        == 0
    )
    run = RunStore(runs).list_runs()[0]
    assert run.training_spec["test_split"] == 0.3 and run.training_spec["split_method"] == "stratified"
    assert run.best_val_accuracy is None and run.best_epoch == 1  # no validation data: no validation score
    dataset = load_run_data(str(data), run.training_spec)
    assert len(dataset.y_test) == 60
    assert abs(dataset.y_test.mean() - labels.mean()) <= 1 / 60  # both classes in the data's own proportion
    assert (
        main(["--runs-dir", runs, "train", "x", "--data", str(data), "--resume", run.id, "--validation-split", "0.2"])
        == 2
    )
    assert "split are fixed" in capsys.readouterr().err


def test_float_twin_of_a_custom_spec_from_the_command_line(tmp_path):
    data = tmp_path / "digits.csv"
    _write_digits_csv(data)
    (tmp_path / "net.json").write_text(json.dumps(SMALL_MLP))
    runs = str(tmp_path / "store")
    assert (
        main(
            [
                "--runs-dir",
                runs,
                "train",
                str(tmp_path / "net.json"),
                "--data",
                str(data),
                "--epochs",
                "1",
                "--float-twin",
            ]
        )
        == 0
    )
    layers = RunStore(runs).list_runs()[0].network_spec["layers"]
    assert all(
        layer.get("kernel_quantizer") is None and layer.get("input_quantizer") is None
        for layer in layers
        if layer["type"] == "dense"
    )


def test_data_that_does_not_fit_the_network_leaves_no_run_behind(tmp_path, capsys):
    data = tmp_path / "digits.csv"
    _write_digits_csv(data)
    runs = str(tmp_path / "store")
    assert main(["--runs-dir", runs, "train", "binary-mlp", "--data", str(data), "--epochs", "1"]) == 2
    assert "network input_shape is [1, 28, 28], the data has [64]" in capsys.readouterr().err
    assert RunStore(runs).list_runs() == []
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["--runs-dir", runs, "train", "toy-mlp", "--data", str(tmp_path / "broken.npz")]) == 2
    assert "broken.npz: not a readable .npz" in capsys.readouterr().err
    assert RunStore(runs).list_runs() == []


def test_absurd_training_values_are_warned_about(tmp_path, capsys):
    (tmp_path / "train.json").write_text(
        json.dumps({"epochs": 1, "batch_size": 5000, "optimizer": {"name": "adam", "lr": 1e6}})
    )
    code, _, err = _run(
        capsys,
        "--runs-dir",
        str(tmp_path / "store"),
        "train",
        "toy-mlp",
        "--data",
        "moons",
        "--training",
        str(tmp_path / "train.json"),
    )
    assert code == 0
    assert "warning: optimizer.lr 1e+06 is above 1" in err and "warning: batch_size 5,000 is larger than" in err
