"""workbench.train.evaluation: confusion matrix, predictions of a real model, misclassified ordering."""

import numpy as np
import pytest
import torch

from workbench.core.data import Dataset
from workbench.train.evaluation import Evaluation, confusion_matrix, evaluate_model


def test_confusion_matrix_counts_true_by_predicted():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(confusion_matrix(labels, predictions, 3), expected)
    assert confusion_matrix(np.array([], dtype=int), np.array([], dtype=int), 2).sum() == 0


@pytest.mark.parametrize(
    "labels, predictions, match",
    [
        ([0, 3], [0, 1], "labels must lie in \\[0, 3\\)"),
        ([0, 1], [0, -1], "predictions must lie"),
        ([0, 1], [0], "differ in shape"),
    ],
)
def test_confusion_matrix_rejects_bad_input(labels, predictions, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(np.array(labels), np.array(predictions), 3)


class FixedLinear(torch.nn.Module):
    """logits = x @ W: class 0 when x0 > x1, else class 1."""

    def forward(self, x):
        return x @ torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def _dataset(x_test, y_test):
    x_test = np.asarray(x_test, dtype=np.float32)
    return Dataset(
        name="pairs",
        x_train=x_test,
        y_train=np.asarray(y_test),
        x_test=x_test,
        y_test=np.asarray(y_test),
        input_shape=(2,),
        num_classes=2,
        class_names=["left", "right"],
    )


def test_evaluate_model_predicts_and_orders_mistakes_by_confidence():
    x = [[2.0, 0.0], [0.0, 3.0], [0.5, 0.0], [5.0, 0.0], [0.0, 1.0]]
    y = [0, 1, 1, 1, 0]  # samples 2, 3 and 4 are mistakes; 3 is the most confident one
    result = evaluate_model(FixedLinear(), _dataset(x, y), "test", batch_size=2)
    np.testing.assert_array_equal(result.predictions, [0, 1, 0, 0, 1])
    assert result.accuracy == pytest.approx(0.4)
    np.testing.assert_array_equal(result.confusion, [[1, 1], [2, 1]])
    assert list(result.misclassified) == [3, 4, 2]
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert result.class_names == ["left", "right"]


def test_evaluate_model_checks_the_number_of_logits():
    dataset = _dataset([[1.0, 0.0]], [0])
    dataset.num_classes = 3
    with pytest.raises(ValueError, match="2 logits but dataset 'pairs' has 3 classes"):
        evaluate_model(FixedLinear(), dataset)


def test_empty_evaluation_has_no_accuracy():
    empty = Evaluation(
        labels=np.zeros(0, int),
        predictions=np.zeros(0, int),
        probabilities=np.zeros((0, 2)),
        confusion=np.zeros((2, 2), int),
        class_names=["a", "b"],
        split="test",
    )
    assert np.isnan(empty.accuracy) and len(empty.misclassified) == 0
