"""Rebuild a trained model from the run store: the run's spec plus one of its safetensors checkpoints."""
from __future__ import annotations

from workbench.store import RunStore


def load_trained_model(run_id: str, store: RunStore | None = None, which: str | int = "best"):
    """(model in eval mode, normalised network spec) of a run's "best", "last" or epoch-N checkpoint."""
    from workbench.model import build_model
    from workbench.spec import validate_spec

    store = store or RunStore()
    spec = validate_spec(store.get_run(run_id).network_spec)
    checkpoint = store.load_checkpoint(run_id, which)
    model = build_model(spec)
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as error:
        raise ValueError(f"run {run_id}: checkpoint {which!r} does not fit the run's network spec: {error}") from None
    return model.eval(), spec
