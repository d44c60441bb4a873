"""Memory and speed reports: the counts behind them and the bench command (timings printed, not tested)."""

import re

import numpy as np

from workbench.cli import main
from workbench.core.presets import preset
from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine
from workbench.deploy.reports import float_twin_packed, memory_report, speed_report
from workbench.train.benchmark import torch_float_twin_runner
from workbench.train.model import build_model
from workbench.train.packing import pack_model

PIXELS = {"kind": "affine", "scale": 2 / 255, "offset": -1.0}


def test_memory_report_ratios_and_file_size_against_the_summary(tmp_path):
    spec = preset("binary-mlp")
    packed = pack_model(build_model(spec).eval(), preprocessing=PIXELS)
    bnnfile.save(packed, tmp_path / "m.bnn")
    report = memory_report(packed, tmp_path / "m.bnn")
    hidden = [r for r in report["rows"] if r["op"] == "binary_dense"]
    assert hidden[0]["fp32_bytes"] == 4 * 2048 * 2048
    assert hidden[0]["weight_packed_bytes"] == 2048 * 32 * 8
    for row in hidden:
        assert row["packed_bytes"] * 30 <= row["fp32_bytes"], row
    assert report["totals"]["packed_bytes"] == packed.nbytes
    assert abs(report["file_bytes"] / report["summary_packed_bytes"] - 1) < 0.05


def test_numpy_float_twin_runs_the_same_shapes():
    spec = preset("binary-cnn")
    packed = pack_model(build_model(spec).eval(), preprocessing=PIXELS)
    twin = float_twin_packed(packed)
    assert not any(layer.op.startswith(("binary_", "input_")) for layer in twin.layers)
    u = np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    assert Engine(twin).logits(u).shape == (2, 10)


def test_speed_report_rows_for_every_batch_and_thread_count():
    packed = pack_model(build_model(preset("toy-mlp")).eval())
    runner = torch_float_twin_runner(packed.meta["network_spec"])
    report = speed_report(packed, batch_sizes=(1, 4), threads=(1,), torch_runner=runner, budget=0.01)
    assert [(r["batch"], r["threads"]) for r in report["rows"]] == [(1, 1), (4, 1)]
    for row in report["rows"]:
        assert row["engine_s"] > 0 and row["torch_float32_s"] > 0 and row["numpy_float32_s"] > 0
        assert [layer["op"] for layer in row["layers"]] == [layer.op for layer in packed.layers]


def test_bench_command_prints_memory_and_latency(tmp_path, capsys):
    bnnfile.save(pack_model(build_model(preset("binary-cnn")).eval(), preprocessing=PIXELS), tmp_path / "m.bnn")
    assert main(["bench", str(tmp_path / "m.bnn"), "--batch", "1", "--threads", "1", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "summary's prediction" in out and "engine ms" in out and "3_conv2d" in out


def test_bench_command_measures_a_preset_with_random_weights(capsys):
    assert main(["bench", "toy-mlp", "--batch", "1", "--threads", "1", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "toy-mlp: random weights" in out
    assert "file size" in out and "summary's prediction" in out
    assert re.search(r"^\s+1\s+1\s+[\d.]+", out, re.MULTILINE)  # a latency row for batch 1, 1 thread
