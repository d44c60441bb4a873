"""Checkpoint files: exact round trips of model and optimizer state, no pickle, clear errors."""

import json

import pytest
import torch

from workbench.train.checkpoint import Checkpoint, flatten_state, unflatten_state


def _trained_adam():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
    return model, optimizer


def test_round_trip_is_exact(tmp_path):
    model, optimizer = _trained_adam()
    tensors, skeleton = flatten_state(optimizer.state_dict(), "adam")
    meta = {"step": 7, "best_val_accuracy": 0.5, "optimizer_state": skeleton}
    path = Checkpoint(epoch=3, model=model.state_dict(), optimizer=tensors, meta=meta).save(tmp_path / "c.safetensors")
    loaded = Checkpoint.load(path)
    assert loaded.epoch == 3 and loaded.meta == json.loads(json.dumps(meta))
    assert loaded.model.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model[key], value)
    restored = unflatten_state(loaded.optimizer, loaded.meta["optimizer_state"])
    fresh = torch.optim.Adam(model.parameters(), lr=1.0)
    fresh.load_state_dict(restored)
    original = optimizer.state_dict()
    assert fresh.state_dict()["param_groups"][0]["betas"] == (0.8, 0.95)
    assert fresh.state_dict()["param_groups"][0]["lr"] == original["param_groups"][0]["lr"]
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(fresh.state_dict()["state"][index][key], value)


def test_file_is_plain_safetensors_with_metadata(tmp_path):
    from safetensors import safe_open

    path = Checkpoint(epoch=1, model={"layers.0.weight": torch.ones(2, 2)}, meta={"seed": 4}).save(tmp_path / "c.st")
    with safe_open(str(path), framework="pt") as handle:
        assert set(handle.keys()) == {"model.layers.0.weight"}
        assert json.loads(handle.metadata()["meta"]) == {"seed": 4}
    assert not list(tmp_path.glob("*.partial"))


def test_shared_and_non_contiguous_tensors_are_saved(tmp_path):
    base = torch.arange(6.0).reshape(2, 3)
    state = {"a": base, "b": base.t(), "c": base[0]}
    loaded = Checkpoint.load(Checkpoint(epoch=0, model=state).save(tmp_path / "c.st"))
    for key, value in state.items():
        assert torch.equal(loaded.model[key], value)


def test_not_a_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "notes.st"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="notes.st"):
        Checkpoint.load(bad)
    with pytest.raises(FileNotFoundError):
        Checkpoint.load(tmp_path / "missing.st")


def test_flatten_rejects_unstorable_values():
    with pytest.raises(ValueError, match="set"):
        flatten_state({"x": {1, 2}})
