"""What the Inspect page shows of a run, as plain data: which epochs it can show, and for a network without
quantized layers (a float run, which records no binarization histograms) the weight histograms read from
its checkpoint instead, in the store's histogram format so the page draws both the same way.
"""

from __future__ import annotations

import numpy as np

from workbench.train.layers import QuantLayer
from workbench.ui.widgets import by_position

MAX_BINS = 60


def shown_epochs(store, record) -> tuple[list[int], bool]:
    """(epochs to choose from, whether they come with recorded histograms).

    A run with quantized layers records histograms every epoch. A float run records none: it offers the
    epochs whose weights are still on disk (the kept epoch checkpoints and the best one)."""
    recorded = store.histogram_epochs(record.id)
    if recorded:
        return recorded, True
    kept = set(store.checkpoint_epochs(record.id))
    if record.best_epoch is not None:
        kept.add(record.best_epoch)
    return sorted(kept), False


def checkpoint_for(store, run_id: str, epoch: int):
    """The checkpoint holding ``epoch``'s weights: its own file while it is kept, else "best"."""
    return epoch if epoch in store.checkpoint_epochs(run_id) else "best"


def weight_layers(model) -> dict[str, np.ndarray]:
    """Every dense and conv2d layer's weights by layer name, in network order (quantized or not)."""
    layers = {
        name: module.weight.detach().cpu().numpy()
        for name, _, module in model.named_spec_layers()
        if isinstance(module, QuantLayer)
    }
    return {name: layers[name] for name in by_position(layers)}


def histogram_bins(count: int) -> int:
    """An even number of bins (0 falls on an edge), about two per square root of the count: 72 weights of a
    3 x 3 x 8 filter get 16, not 60 mostly empty ones."""
    return int(min(MAX_BINS, max(10, 2 * round(np.sqrt(count)))) // 2 * 2)


def weight_histogram(weight: np.ndarray, bins: int | None = None) -> dict:
    """One layer's weights as the store keeps a histogram: {"latent": {"edges", "counts"}, "clip": None},
    over a range symmetric around 0 so that the sign split sits on a bin edge."""
    values = np.asarray(weight, dtype=np.float64).ravel()
    bins = bins or histogram_bins(values.size)
    reach = max(float(np.abs(values).max()) if values.size else 0.0, 1e-6)
    counts, edges = np.histogram(values, bins=bins, range=(-reach, reach))
    return {
        "latent": {"edges": edges.tolist(), "counts": counts.tolist()},
        "clip": None,
        "count": int(values.size),
        "mean_abs": float(np.abs(values).mean()) if values.size else 0.0,
        "std": float(values.std()) if values.size else 0.0,
    }


def weight_histograms(model) -> dict[str, dict]:
    """``weight_histogram`` of every dense and conv2d layer of a model, in network order."""
    return {name: weight_histogram(weight) for name, weight in weight_layers(model).items()}


def flip_matrix(epoch_metrics: dict) -> tuple[np.ndarray, list[str]] | None:
    """(layers x epochs share of flipped signs, layer names in network order) from the epoch metrics table;
    None for a run without quantized weights (no flip/ columns)."""
    keys = by_position(key for key in epoch_metrics if key.startswith("flip/"))
    if not keys:
        return None
    z = np.array([[np.nan if v is None else v for v in epoch_metrics[key]] for key in keys], dtype=float)
    return z, [key.split("/", 1)[1] for key in keys]
