"""What a training loop tells the outside world, and how the outside asks it to pause or stop."""

from __future__ import annotations

from workbench.train.checkpoint import Checkpoint


class TrainingReporter:
    """Receives progress; the base class ignores it. Subclass and override what you need."""

    def on_batch(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """After every batch: loss, accuracy, lr, grad_norm, samples_per_s, flip/<layer>."""

    def on_epoch(
        self, epoch: int, metrics: dict[str, float], histograms: dict, checkpoint: Checkpoint, is_best: bool
    ) -> None:
        """After every epoch, with the checkpoint of the model as it is now."""

    def control(self) -> str:
        """Between batches: "continue" or "stop"; a paused run blocks here until resumed or stopped."""
        return "continue"
