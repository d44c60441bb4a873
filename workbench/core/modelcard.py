"""A model card in Markdown for a packed model: what it was trained on, how, how well, and how big it is.

The card is written from three things the library already has: the run record (data, training spec,
metrics), the packed model's ``meta`` (spec, preprocessing, class names, as the .bnn header stores them)
and ``reports.memory_report``. Like the .bnn file it describes, it needs no torch and no Streamlit::

    from workbench.core.modelcard import model_card
    text = model_card(store.get_run(run_id), packed.meta, memory_report(packed, "model.bnn"))
"""

from __future__ import annotations

from workbench.core.spec import layer_name


def _percent(value) -> str:
    return "–" if value is None else f"{value:.2%}"


def _bytes(value) -> str:
    if value is None:
        return "–"
    return f"{value:,} B" if value < 1024 else f"{value:,} B ({value / 1024:,.1f} KiB)"


def _quantizer(q) -> str:
    return "float" if q is None else q["name"]


def describe_layer(layer: dict) -> str:
    """One line per layer: its kind, size and quantizers ("dense 64, input ste_sign, kernel ste_sign")."""
    kind = layer["type"]
    if kind in ("dense", "conv2d"):
        size = (
            f"{layer['units']}"
            if kind == "dense"
            else f"{layer['filters']} filters {layer['kernel_size']}x{layer['kernel_size']}, stride {layer['stride']}, "
            f"padding {layer['padding']}"
        )
        quantizers = f"input {_quantizer(layer['input_quantizer'])}, kernel {_quantizer(layer['kernel_quantizer'])}"
        text = f"{kind} {size}; {quantizers}"
        if layer.get("scaling", "none") != "none":
            text += f", scaling {layer['scaling']}"
        return text
    if kind in ("max_pool", "avg_pool"):
        return f"{kind} {layer['pool_size']}x{layer['pool_size']}, stride {layer['stride']}"
    if kind == "activation":
        return f"activation {layer['fn']}"
    if kind == "dropout":
        return f"dropout {layer['rate']}"
    if kind == "shortcut":
        return f"shortcut around {len(layer['layers'])} layers (real-valued addition)"
    return kind


def training_tricks(training: dict) -> list[str]:
    """The training choices worth knowing when reusing the model, one sentence each."""
    optimizer = training.get("optimizer") or {}
    name = optimizer.get("name", "?")
    if name == "bop":
        tricks = [
            f"Bop for the binary weights (threshold {optimizer.get('threshold')}, gamma {optimizer.get('gamma')}), "
            f"Adam lr {optimizer.get('lr')} for the real-valued parameters"
        ]
        if training.get("bop_schedule"):
            schedule = training["bop_schedule"]
            tricks.append(
                f"Bop schedule: threshold x{schedule['threshold_decay']}, gamma x{schedule['gamma_decay']} "
                f"every {schedule['every']} epochs"
            )
    else:
        tricks = [f"optimizer {name}, lr {optimizer.get('lr')}"]
    schedule = training.get("lr_schedule") or {}
    if schedule.get("name", "constant") != "constant":
        tricks.append(f"learning-rate schedule {schedule['name']}")
    if training.get("weight_clip") is not None:
        tricks.append(f"latent weights clipped to ±{training['weight_clip']}")
    distillation = training.get("distillation")
    if distillation:
        teacher = distillation.get("teacher_run") or distillation.get("teacher")
        tricks.append(
            f"knowledge distillation from {teacher} (alpha {distillation.get('alpha')}, "
            f"temperature {distillation.get('temperature')})"
        )
    soft = training.get("soft_binarization")
    if soft:
        tricks.append(f"soft binarization, temperature {soft['start_temperature']} → {soft['end_temperature']}")
    if training.get("two_stage"):
        tricks.append(
            f"two-stage training: binary activations with real weights for the first "
            f"{training['two_stage']['first_epochs']} epochs"
        )
    return tricks


def model_card(record, meta: dict, memory: dict, agreement: dict | None = None) -> str:
    """Markdown for a run's packed model.

    ``record``: the run's RunRecord; ``meta``: ``PackedModel.meta``; ``memory``: ``reports.memory_report``
    (with ``file_bytes`` when the file exists); ``agreement``: optional engine-vs-torch numbers
    (``samples``, ``engine_accuracy``, ``torch_accuracy``, ``disagreements``).
    """
    spec = meta.get("network_spec") or record.network_spec
    training = record.training_spec
    preprocessing = meta.get("preprocessing") or {"kind": "none"}
    lines = [
        f"# Model card: {record.name}",
        "",
        f"Binary neural network `{spec.get('name', '?')}` from run `{record.id}`, exported by BNN Workbench "
        f"as a `.bnn` file for its XNOR-popcount engine.",
        "",
    ]

    lines += [
        "## Data",
        "",
        f"- dataset: `{record.data_ref}`" + (f" ({record.data_summary})" if record.data_summary else ""),
        f"- input shape (channels first): {list(meta['input_shape'])}",
        f"- classes ({meta['num_classes']}): {', '.join(meta.get('class_names') or [])}",
    ]
    if preprocessing.get("kind") == "affine":
        lines.append(
            f"- preprocessing: x = u · {preprocessing['scale']} + {preprocessing['offset']} for raw uint8 "
            f"values u (the engine takes the uint8 values directly)"
        )
    else:
        lines.append("- preprocessing: none (float32 features as given)")

    lines += ["", "## Network", ""]
    lines += [f"{i + 1}. `{layer_name(i, layer)}`: {describe_layer(layer)}" for i, layer in enumerate(spec["layers"])]

    lines += [
        "",
        "## Training",
        "",
        f"- {record.epochs_done} of {training.get('epochs')} epochs, batch size {training.get('batch_size')}, "
        f"seed {training.get('seed')}, validation split {training.get('validation_split')}, "
        f"{training.get('split_method', 'stratified')} splits",
    ]
    lines += [f"- {trick}" for trick in training_tricks(training)]

    lines += [
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
        f"| status | {record.status} |",
        f"| exported checkpoint | {record.best_checkpoint_label} |",
        f"| validation accuracy (exported checkpoint) | {_percent(record.best_val_accuracy)} |",
        f"| test accuracy (torch, exported checkpoint) | {_percent(record.test_accuracy)} |",
    ]
    if agreement:
        lines += [
            f"| engine accuracy ({agreement['samples']} test samples) | {_percent(agreement['engine_accuracy'])} |",
            f"| torch accuracy (same samples) | {_percent(agreement['torch_accuracy'])} |",
            f"| engine vs torch disagreements | {agreement['disagreements']} of {agreement['samples']} |",
        ]

    totals = memory["totals"]
    lines += ["", "## Size", "", "| layer | op | float32 | packed | ratio |", "|---|---|---:|---:|---:|"]
    lines += [
        f"| `{row['layer']}` | {row['op']} | {_bytes(row['fp32_bytes'])} | {_bytes(row['packed_bytes'])} | "
        f"{row['ratio']:.1f}x |"
        for row in memory["rows"]
    ]
    lines.append(
        f"| **total** | | {_bytes(totals['fp32_bytes'])} | {_bytes(totals['packed_bytes'])} | {totals['ratio']:.1f}x |"
    )
    lines.append("")
    if "file_bytes" in memory:
        lines.append(f"- `.bnn` file: {_bytes(memory['file_bytes'])} (header with this spec and a SHA-256 included)")
    if memory.get("summary_packed_bytes") is not None:
        lines.append(
            f"- the spec summary's prediction for the packed payload: {_bytes(memory['summary_packed_bytes'])}"
        )

    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from workbench.deploy.engine import Engine",
        'engine = Engine("model.bnn")  # checks the SHA-256; NumPy only, no torch',
        f"classes = engine.predict(x)  # x: uint8 or float32, shape (N, {', '.join(map(str, meta['input_shape']))})",
        "```",
        "",
    ]
    return "\n".join(lines)
