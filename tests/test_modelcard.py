"""The model card: built from a run record, a packed model's meta and its memory report, without torch or Streamlit."""

import subprocess
import sys

import pytest

from workbench.core.modelcard import describe_layer, model_card, training_tricks
from workbench.core.presets import preset
from workbench.core.spec import default_training_spec, validate_spec
from workbench.runs.store import RunRecord


def record(**training) -> RunRecord:
    spec = validate_spec(preset("binary-cnn"))
    return RunRecord(
        id="20260101-000000-abcdef",
        name="cnn on mnist",
        network_spec=spec,
        training_spec=dict(default_training_spec(), **training),
        data_ref="mnist-sample",
        status="completed",
        created_at=0.0,
        started_at=0.0,
        finished_at=1.0,
        error=None,
        pid=None,
        epochs_done=5,
        best_val_accuracy=0.9512,
        test_accuracy=0.9433,
        parent_id=None,
        best_epoch=4,
    )


def meta(spec: dict) -> dict:
    return {
        "network_spec": spec,
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "class_names": [str(i) for i in range(10)],
        "preprocessing": {"kind": "affine", "scale": 2 / 255, "offset": -1.0},
    }


MEMORY = {
    "rows": [
        {"layer": "0_conv2d", "op": "input_conv2d", "fp32_bytes": 1152, "packed_bytes": 544, "ratio": 1152 / 544},
        {"layer": "3_conv2d", "op": "binary_conv2d", "fp32_bytes": 36864, "packed_bytes": 1312, "ratio": 36864 / 1312},
    ],
    "totals": {"fp32_bytes": 38016, "packed_bytes": 1856, "ratio": 38016 / 1856},
    "summary_packed_bytes": 1800,
    "file_bytes": 6400,
}


def test_card_has_data_network_training_metrics_and_size():
    run = record()
    card = model_card(run, meta(run.network_spec), MEMORY)
    for heading in ("# Model card: cnn on mnist", "## Data", "## Network", "## Training", "## Metrics", "## Size"):
        assert heading in card, heading
    assert "dataset: `mnist-sample`" in card
    assert "x = u · 0.00784313725490196 + -1.0" in card
    assert "| exported checkpoint | epoch 4 of 5, best validation accuracy |" in card
    assert "| validation accuracy (exported checkpoint) | 95.12% |" in card
    assert "| test accuracy (torch, exported checkpoint) | 94.33% |" in card
    assert "5 of 5 epochs, batch size 128" in card
    assert "latent weights clipped to ±1.0" in card and "learning-rate schedule cosine" in card
    # one numbered line per spec layer, named as the reports name them
    layers = run.network_spec["layers"]
    assert card.count("\n1. `0_conv2d`") == 1 and f"{len(layers)}. `{len(layers) - 1}_" in card
    assert "| `3_conv2d` | binary_conv2d | 36,864 B (36.0 KiB) | 1,312 B (1.3 KiB) | 28.1x |" in card
    assert "| **total** | | 38,016 B (37.1 KiB) | 1,856 B (1.8 KiB) | 20.5x |" in card
    assert "`.bnn` file: 6,400 B (6.2 KiB)" in card and "prediction for the packed payload: 1,800 B" in card


def test_card_reports_agreement_when_given():
    run = record()
    card = model_card(
        run,
        meta(run.network_spec),
        MEMORY,
        {"samples": 200, "engine_accuracy": 0.9, "torch_accuracy": 0.905, "disagreements": 1},
    )
    assert "| engine accuracy (200 test samples) | 90.00% |" in card
    assert "| engine vs torch disagreements | 1 of 200 |" in card
    assert "disagreements" not in model_card(run, meta(run.network_spec), MEMORY)


def test_training_tricks_name_distillation_bop_soft_and_two_stage():
    training = dict(
        default_training_spec(),
        epochs=6,
        optimizer={"name": "bop", "threshold": 1e-8, "gamma": 1e-4, "lr": 0.001},
        bop_schedule={"threshold_decay": 0.1, "gamma_decay": 0.5, "every": 2},
        lr_schedule={"name": "constant"},
        weight_clip=None,
        distillation={"teacher_run": "r1", "alpha": 0.9, "temperature": 4.0},
        soft_binarization={"start_temperature": 1.0, "end_temperature": 0.01},
        two_stage={"first_epochs": 2},
    )
    tricks = training_tricks(training)
    assert tricks[0].startswith("Bop for the binary weights (threshold 1e-08, gamma 0.0001)")
    assert "Bop schedule: threshold x0.1, gamma x0.5 every 2 epochs" in tricks
    assert "knowledge distillation from r1 (alpha 0.9, temperature 4.0)" in tricks
    assert "soft binarization, temperature 1.0 → 0.01" in tricks
    assert any(t.startswith("two-stage training") and "first 2 epochs" in t for t in tricks)
    assert not any("clipped" in t or "schedule constant" in t for t in tricks)


@pytest.mark.parametrize(
    "layer, text",
    [
        (
            {
                "type": "conv2d",
                "filters": 32,
                "kernel_size": 3,
                "stride": 1,
                "padding": "same",
                "input_quantizer": None,
                "kernel_quantizer": {"name": "ste_sign"},
                "scaling": "xnor",
            },
            "conv2d 32 filters 3x3, stride 1, padding same; input float, kernel ste_sign, scaling xnor",
        ),
        ({"type": "max_pool", "pool_size": 2, "stride": 2}, "max_pool 2x2, stride 2"),
        ({"type": "dropout", "rate": 0.2}, "dropout 0.2"),
        ({"type": "shortcut", "layers": [{}, {}]}, "shortcut around 2 layers (real-valued addition)"),
    ],
)
def test_describe_layer(layer, text):
    assert describe_layer(layer) == text


def test_modelcard_imports_neither_torch_nor_streamlit():
    code = "import sys, workbench.core.modelcard; print('torch' in sys.modules, 'streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
