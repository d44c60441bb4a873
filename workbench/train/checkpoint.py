"""Training checkpoints as one safetensors file: no pickle, readable with the network spec alone.

Layout of the file: model tensors under ``model.<state dict key>``, optimizer tensors under
``optimizer.<name>``, and in the safetensors metadata ``epoch`` and ``meta`` (JSON). Optimizer state dicts
mix tensors with plain values and integer keys; ``flatten_state`` splits them into named tensors plus a
JSON skeleton (kept in ``meta``) so that ``unflatten_state`` gives back exactly what ``state_dict()`` gave.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT = "bnn-workbench-checkpoint/2"  # /2 adds the sha256; /1 files (no checksum) still load
_FORMAT_1 = "bnn-workbench-checkpoint/1"
_MODEL, _OPTIMIZER = "model.", "optimizer."


@dataclass
class Checkpoint:
    """The state after ``epoch`` completed epochs: model weights, optimizer state, JSON-able ``meta``."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint to ``path`` atomically (a crash mid-write leaves the previous file intact)."""
        path = Path(path)
        tensors = {_MODEL + key: _own(value) for key, value in self.model.items()}
        tensors.update({_OPTIMIZER + key: _own(value) for key, value in self.optimizer.items()})
        metadata = {"format": FORMAT, "epoch": str(int(self.epoch)), "meta": json.dumps(self.meta)}
        metadata["sha256"] = _digest(tensors, metadata)
        partial = path.with_name(path.name + ".partial")
        try:
            save_file(tensors, str(partial), metadata=metadata)
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            if error.errno == errno.ENOSPC:
                raise OSError(
                    errno.ENOSPC, f"disk full while writing checkpoint {path} (nothing partial was left)"
                ) from None
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Read a checkpoint written by ``save``; a file that is not one raises ValueError naming it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path}: no such file")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
        except (SafetensorError, OSError) as error:
            raise ValueError(f"checkpoint {path}: expected a safetensors file, could not read it ({error})") from None
        if metadata.get("format") not in (FORMAT, _FORMAT_1):
            raise ValueError(
                f"checkpoint {path}: expected format {FORMAT!r} in its metadata, got {metadata.get('format')!r}"
            )
        if metadata["format"] == FORMAT and metadata.get("sha256") != _digest(tensors, metadata):
            raise ValueError(f"checkpoint {path}: its contents do not match its sha256 (the file is damaged)")
        epoch, meta = metadata.get("epoch", ""), _json_object(metadata.get("meta"))
        if not epoch.isdigit() or meta is None:
            raise ValueError(
                f"checkpoint {path}: expected an epoch >= 0 and a JSON object of meta, "
                f"got epoch {epoch!r} and meta {metadata.get('meta', '')[:60]!r}"
            )
        model = {key[len(_MODEL) :]: value for key, value in tensors.items() if key.startswith(_MODEL)}
        optimizer = {key[len(_OPTIMIZER) :]: value for key, value in tensors.items() if key.startswith(_OPTIMIZER)}
        return cls(epoch=int(epoch), model=model, optimizer=optimizer, meta=meta)


def _digest(tensors: dict[str, torch.Tensor], metadata: dict) -> str:
    """sha256 over the epoch, meta and every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256(json.dumps([metadata["epoch"], metadata["meta"]]).encode())
    for key in sorted(tensors):
        tensor = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _json_object(text) -> dict | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _own(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy: safetensors refuses views and tensors sharing storage."""
    return tensor.detach().to("cpu").contiguous().clone()


def flatten_state(state, prefix: str = "") -> tuple[dict[str, torch.Tensor], object]:
    """Split a nested state (dicts, lists, tuples, tensors, plain values) into named tensors and a JSON skeleton."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(value, name):
        if isinstance(value, torch.Tensor):
            tensors[name] = value
            return {"__tensor__": name}
        if isinstance(value, dict):
            return {"__items__": [[key, encode(item, f"{name}.{key}")] for key, item in value.items()]}
        if isinstance(value, (list, tuple)):
            items = [encode(item, f"{name}.{index}") for index, item in enumerate(value)]
            return {"__tuple__": items} if isinstance(value, tuple) else items
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ValueError(f"checkpoint: cannot store a value of type {type(value).__name__} at {name!r}")

    return tensors, encode(state, prefix)


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton):
    """Inverse of ``flatten_state``."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__tuple__" in skeleton:
            return tuple(unflatten_state(tensors, item) for item in skeleton["__tuple__"])
        return {key: unflatten_state(tensors, item) for key, item in skeleton["__items__"]}
    if isinstance(skeleton, list):
        return [unflatten_state(tensors, item) for item in skeleton]
    return skeleton
