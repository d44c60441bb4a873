"""A binarized network and its float twin as a pair of ordinary runs: the same data, training spec and seed.

A pair is not a thing the store keeps: two runs are twins when one's network is the other's float twin
(``core.spec.float_twin``, names aside) and both have the same data reference and training spec. So runs
trained before class from the command line (``train binary-mlp`` and ``train binary-mlp --float-twin``)
are found as pairs just like the ones ``start_pair`` starts. Torch-free, like ``launch``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from workbench.core.spec import SpecError, float_twin, validate_spec, validate_training_spec
from workbench.runs.launch import start_run
from workbench.runs.store import ACTIVE, RunRecord, RunStore


@dataclass(frozen=True)
class Pair:
    """The binarized run and its float twin."""

    binary: RunRecord
    twin: RunRecord

    @property
    def ids(self) -> tuple[str, str]:
        return self.binary.id, self.twin.id

    @property
    def active(self) -> bool:
        return self.binary.status in ACTIVE or self.twin.status in ACTIVE

    @property
    def finished(self) -> bool:
        """Both ended with a checkpoint that export packs (completed, or stopped after an epoch)."""
        return not self.active and self.binary.best_epoch is not None and self.twin.best_epoch is not None

    @property
    def label(self) -> str:
        """Names the pair by what does not change while it trains (a picker is not redrawn every second)."""
        b = self.binary
        return (
            f"{b.network_spec.get('name', 'network')} + float twin on {b.data_ref} · "
            f"{b.training_spec.get('epochs')} epochs, seed {b.training_spec.get('seed')} · {b.id} + {self.twin.id}"
        )


def _canonical(value: dict) -> str:
    return json.dumps(value, sort_keys=True)


def _network_key(spec: dict) -> str:
    """A network spec without its name (the twin's name says "float twin"; what it computes is the rest)."""
    return _canonical({key: value for key, value in spec.items() if key != "name"})


def twin_network(spec: dict) -> dict:
    """The float twin of a binarized network; a SpecError when the network has nothing to binarize."""
    normalised = validate_spec(spec)
    twin = float_twin(normalised)
    if _network_key(twin) == _network_key(normalised):
        raise SpecError(
            f"network {normalised['name']!r} has no quantizer: it is already full precision, so it has no "
            f"float twin to compare with (pick a binarized network, e.g. the binary-mlp preset)"
        )
    return twin


def _twin_key(record: RunRecord) -> str | None:
    """What the float twin of this run must match, or None when the run is no binarized network."""
    try:
        twin = twin_network(record.network_spec)
    except (SpecError, ValueError):
        return None
    return _canonical([_network_key(twin), record.data_ref, record.training_spec])


def _own_key(record: RunRecord) -> str:
    return _canonical([_network_key(record.network_spec), record.data_ref, record.training_spec])


def mismatch(binary: RunRecord, twin: RunRecord) -> str | None:
    """Why two runs are not a binary network and its float twin on the same data and training spec (None if
    they are); the message names both runs and the first thing that differs."""
    where = f"runs {binary.id} and {twin.id}"
    if binary.status == "damaged" or twin.status == "damaged":
        return f"{where}: a damaged run cannot be compared"
    try:
        expected = twin_network(binary.network_spec)
    except (SpecError, ValueError) as error:
        return f"run {binary.id} is not a binarized network: {error}"
    if _network_key(expected) != _network_key(twin.network_spec):
        name = twin.network_spec.get("name")
        return f"{where}: run {twin.id}'s network {name!r} is not the float twin of run {binary.id}'s"
    if binary.data_ref != twin.data_ref:
        return f"{where}: trained on different data ({binary.data_ref!r} vs {twin.data_ref!r})"
    differing = sorted(
        key
        for key in set(binary.training_spec) | set(twin.training_spec)
        if binary.training_spec.get(key) != twin.training_spec.get(key)
    )
    if differing:
        return f"{where}: their training specs differ in {', '.join(differing)}"
    return None


def find_pairs(records: list[RunRecord]) -> list[Pair]:
    """Every binary run matched with a float twin run, newest binary run first. Each run is in one pair at
    most; the runs started nearest in time pair first (``start_pair`` starts both within a second).
    ``records``: e.g. ``RunStore.list_runs()``."""
    usable = [record for record in records if record.status != "damaged"]
    floats: dict[str, list[RunRecord]] = {}
    for record in usable:
        floats.setdefault(_own_key(record), []).append(record)
    candidates = [
        (abs(twin.created_at - record.created_at), record, twin)
        for record in usable
        if (key := _twin_key(record)) is not None
        for twin in floats.get(key, [])
        if twin.id != record.id
    ]
    pairs, used = [], set()
    for _, record, twin in sorted(candidates, key=lambda c: (c[0], c[1].id, c[2].id)):
        if record.id not in used and twin.id not in used:
            used.update((record.id, twin.id))
            pairs.append(Pair(record, twin))
    return sorted(pairs, key=lambda p: (p.binary.created_at, p.binary.id), reverse=True)


def load_pair(store: RunStore, binary_id: str, twin_id: str) -> Pair:
    """The two runs as a pair; ValueError (naming the runs) when one is missing or they are not twins."""
    binary, twin = store.get_run(binary_id), store.get_run(twin_id)
    reason = mismatch(binary, twin)
    if reason:
        raise ValueError(reason)
    return Pair(binary, twin)


def start_pair(
    network_spec: dict,
    training_spec: dict | None,
    data_ref: str,
    *,
    name: str | None = None,
    runs_dir: str | os.PathLike | None = None,
) -> tuple[str, str]:
    """Start a binarized network and its float twin as two runs with one training spec (so one seed and one
    data split), each in its own worker; returns (binary run id, float twin run id).

    Both specs are checked before either run exists; if the twin cannot start, the binary run is stopped."""
    network = validate_spec(network_spec)
    twin = twin_network(network)
    training = validate_training_spec(training_spec) if training_spec is not None else None
    label = name or f"{network['name']} on {data_ref}"
    binary_id = start_run(network, training, data_ref, name=f"{label} · binary", runs_dir=runs_dir)
    try:
        twin_id = start_run(twin, training, data_ref, name=f"{label} · float twin", runs_dir=runs_dir)
    except BaseException:
        store = RunStore(runs_dir)
        if store.get_run(binary_id).active:
            store.request(binary_id, "stop")
        raise
    return binary_id, twin_id
