"""A run's trained model, rebuilt from the run store: the run's spec plus one of its safetensors checkpoints."""

from __future__ import annotations

from workbench.core.data import load_run_data
from workbench.core.spec import validate_spec
from workbench.deploy.packed import PackedModel
from workbench.runs.store import RunStore
from workbench.train.model import build_model
from workbench.train.packing import pack_model


def load_trained_model(run_id: str, store: RunStore | None = None, which: str | int = "best"):
    """(model in eval mode, normalised network spec) of a run's "best", "last" or epoch-N checkpoint."""
    store = store or RunStore()
    spec = validate_spec(store.get_run(run_id).network_spec)
    checkpoint = store.load_checkpoint(run_id, which)
    model = build_model(spec)
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as error:
        raise ValueError(f"run {run_id}: checkpoint {which!r} does not fit the run's network spec: {error}") from None
    return model.eval(), spec


def pack_run(run_id: str, store: RunStore | None = None, which: str | int = "best", **meta) -> PackedModel:
    """Pack a run's checkpoint with its provenance (run, training spec, data, which epoch) and its data's
    preprocessing. The header's test accuracy is the run's, measured on the best checkpoint: it is written
    only when that is the checkpoint packed."""
    store = store if store is not None else RunStore()
    record = store.get_run(run_id)
    model, spec = load_trained_model(run_id, store=store, which=which)
    dataset_meta = {}
    try:
        dataset = load_run_data(record.data_ref, record.training_spec)
        dataset_meta = {"preprocessing": dataset.preprocessing, "class_names": dataset.class_names}
    except (ValueError, OSError):
        pass  # the data moved: the file then says "none" and numbered classes
    checkpoint_epoch = record.best_epoch if which == "best" else store.load_checkpoint(run_id, which).epoch
    training = {
        "run_id": record.id,
        "run_name": record.name,
        "training_spec": record.training_spec,
        "data_ref": record.data_ref,
        "epochs_done": record.epochs_done,
        "checkpoint_epoch": checkpoint_epoch,
        "best_epoch": record.best_epoch,
        "chosen_by_validation": record.chosen_by_validation,
        "best_val_accuracy": record.best_val_accuracy,
    }
    measured = checkpoint_epoch is not None and checkpoint_epoch == record.best_epoch
    return pack_model(
        model,
        spec,
        training=training,
        test_accuracy=record.test_accuracy if measured else None,
        **{**dataset_meta, **meta},
    )
