"""Evaluate a trained model on a dataset's split: predictions, confusion matrix, misclassified examples.

The Inspect page shows these; from Python::

    from workbench.core.data import load_dataset
    from workbench.runs.trained import load_trained_model
    from workbench.train.evaluation import evaluate_model

    model, _ = load_trained_model(run_id)
    result = evaluate_model(model, load_dataset("mnist-sample"))
    result.accuracy, result.confusion, result.misclassified[:10]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Evaluation:
    """Predictions of one model on one split, and what the app derives from them."""

    labels: np.ndarray  # int64 (N,) true classes
    predictions: np.ndarray  # int64 (N,) argmax of the logits
    probabilities: np.ndarray  # float32 (N, num_classes) softmax of the logits
    confusion: np.ndarray  # int64 (num_classes, num_classes): rows true, columns predicted
    class_names: list[str]
    split: str

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels)) if len(self.labels) else float("nan")

    @property
    def misclassified(self) -> np.ndarray:
        """Indices into the split of the wrong predictions, most confident mistakes first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        confidence = self.probabilities[wrong, self.predictions[wrong]]
        return wrong[np.argsort(-confidence, kind="stable")]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs; raises ValueError on a label outside [0, num_classes)."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"confusion_matrix: labels and predictions differ in shape: {labels.shape} vs {predictions.shape}"
        )
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"confusion_matrix: {name} must lie in [0, {num_classes}), "
                f"got values in [{values.min()}, {values.max()}]"
            )
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def predict_logits(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits of a torch model in eval mode, computed in batches without gradients."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
            outputs.append(model(batch).float().numpy())
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outputs)


def evaluate_model(model, dataset, split: str = "test", batch_size: int = 512) -> Evaluation:
    """Run a model over a dataset split ("test" or "train") and tabulate the result."""
    if split not in ("test", "train"):
        raise ValueError(f"evaluate_model: split must be 'test' or 'train', got {split!r}")
    x = dataset.x_test if split == "test" else dataset.x_train
    labels = np.asarray(dataset.y_test if split == "test" else dataset.y_train, dtype=np.int64)
    logits = predict_logits(model, x, batch_size).reshape(len(labels), -1)
    if logits.shape[1] != dataset.num_classes:
        raise ValueError(
            f"evaluate_model: the model gives {logits.shape[1]} logits but dataset "
            f"{dataset.name!r} has {dataset.num_classes} classes"
        )
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predictions = logits.argmax(axis=1).astype(np.int64)
    class_names = list(dataset.class_names) or [str(c) for c in range(dataset.num_classes)]
    return Evaluation(
        labels=labels,
        predictions=predictions,
        probabilities=probabilities.astype(np.float32),
        confusion=confusion_matrix(labels, predictions, dataset.num_classes),
        class_names=class_names,
        split=split,
    )
