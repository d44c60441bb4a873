"""Train a network spec on a dataset: the loop, the BNN training tricks, metrics and checkpoints.

Every trick is a switch in the training spec (docs/SPEC.md): latent-weight clipping, knowledge distillation,
Bop for the binary weights, learning-rate schedules, soft-to-hard binarization, two-stage training. The loop
reports through a :class:`TrainingReporter` (the worker's subclass writes into the run store) and asks it
between batches whether to go on, which is how stop and pause requests reach a running job.

Reproducibility: the model is initialised after ``torch.manual_seed(seed)``, and every epoch reseeds both the
shuffling generator and torch's global generator (dropout, stochastic quantizers) from ``(seed, epoch)``. The
schedules are functions of the epoch and batch. A run resumed from a checkpoint therefore replays exactly what
the uninterrupted run does, with no generator state to carry over.

Epochs are counted from 1 in the reporter's calls; ``Checkpoint.epoch`` is the number of epochs completed.

The model a run ships is its best checkpoint: the epoch with the highest validation accuracy, or the last
epoch when the training spec holds out no validation data. ``train`` returns that model, and its test
accuracy is measured on it, so the figure a user sees is the accuracy of the model that is exported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.data import check_fits, split_indices
from workbench.core.spec import check_augmentation, is_sign_quantizer, validate_spec, validate_training_spec
from workbench.train import augmentation
from workbench.train.checkpoint import Checkpoint, flatten_state, unflatten_state
from workbench.train.distillation import distillation_loss
from workbench.train.distributed import (
    SINGLE,
    RankReporter,
    World,
    autocast,
    check_replicas_agree,
    join,
    resolve_device,
    share,
    sum_over_ranks,
    wrap,
)
from workbench.train.model import build_model
from workbench.train.optim import Bop, bop_at, lr_at, set_hyperparameter
from workbench.train.reporting import TrainingReporter

__all__ = ["TrainResult", "TrainingReporter", "train"]

HISTOGRAM_BINS = 41
SATURATION_TOLERANCE = 1e-3  # relative to the clip bound: |w| >= b * (1 - tol) counts as saturated
EVAL_BATCH = 1000
PREACT_BATCH = 256


@dataclass
class TrainResult:
    """``model`` is the best checkpoint's model (see the module docstring); ``test_accuracy`` is its accuracy
    on the test split, ``best_epoch`` its epoch; ``best_val_accuracy`` is None without a validation split."""

    model: torch.nn.Module
    epochs_done: int
    best_val_accuracy: float | None
    test_accuracy: float | None
    stopped: bool
    best_epoch: int | None = None


def train(
    network_spec: dict,
    training_spec: dict,
    dataset,
    reporter: TrainingReporter | None = None,
    *,
    resume: Checkpoint | None = None,
    best: Checkpoint | None = None,
    teacher: torch.nn.Module | None = None,
    world: World = SINGLE,
) -> TrainResult:
    """Train ``network_spec`` on ``dataset`` (a ``workbench.core.data.Dataset``) as ``training_spec`` says.

    ``resume`` continues after the checkpoint's epoch with model and optimizer state restored, and ``best`` is
    the run's best checkpoint so far when it is not ``resume`` itself; ``teacher`` is the model to distil from
    when the training spec has ``distillation`` set. ``world`` is this process's rank in a distributed run
    (workbench.train.distributed; ``reporter`` then is rank 0's, None on the others).
    """
    network_spec = validate_spec(network_spec)
    training_spec = validate_training_spec(training_spec)
    check_fits(network_spec, dataset)
    check_augmentation(network_spec, training_spec)
    if (teacher is None) != (training_spec.get("distillation") is None):
        raise ValueError(
            "training spec field 'distillation': a teacher model is needed exactly when distillation "
            f"is set; got distillation={training_spec.get('distillation')!r} and "
            f"{'no teacher' if teacher is None else 'a teacher'}"
        )
    if world.distributed:
        reporter = RankReporter(reporter if world.leader else None, world)
    trainer = _Trainer(network_spec, training_spec, dataset, reporter or TrainingReporter(), teacher, world)
    return trainer.run(resume, best)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + epoch) % (2**63)


def _tensor(array, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


class _Trainer:
    """One training run; the state shared by the loop, evaluation, histograms and checkpoints."""

    def __init__(self, network_spec, training_spec, dataset, reporter, teacher, world):
        self.network_spec, self.spec, self.reporter, self.teacher = network_spec, training_spec, reporter, teacher
        self.world = world
        self.device = resolve_device(training_spec["device"])
        if world.distributed:
            self.device = join(world, self.device)
        self.mixed_precision = bool(training_spec["mixed_precision"])
        self.augmentation = training_spec["augmentation"]
        self.seed = int(training_spec["seed"])
        self.epochs = int(training_spec["epochs"])
        self.batch_size = int(training_spec["batch_size"])
        self._split(dataset)

        torch.manual_seed(self.seed)
        self.model = build_model(network_spec).to(self.device)
        self.forward_model = wrap(self.model, world, self.device)  # DDP when distributed: what training runs
        if teacher is not None:
            teacher.to(self.device).eval()
        self.quantized = [
            (name, layer, is_sign_quantizer(layer.spec.get("kernel_quantizer")))
            for name, layer in self.model.quantized_layers()
            if layer.spec.get("kernel_quantizer") is not None
        ]
        self.clip = training_spec.get("weight_clip")
        optimizer = training_spec["optimizer"]
        self.use_bop = optimizer["name"] == "bop"
        self.bop_weights = {id(layer.weight) for _, layer, sign in self.quantized if sign} if self.use_bop else set()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.layout = None
        self.step = 0
        self.best_val_accuracy: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ data

    def _split(self, dataset) -> None:
        """Hold out the training spec's validation share of the training set (seeded, stratified by default)."""
        x, y = _tensor(dataset.x_train, torch.float32), _tensor(dataset.y_train, torch.int64)
        share = float(self.spec.get("validation_split") or 0.0)
        fit, val = split_indices(dataset.y_train, share, self.seed, self.spec["split_method"], at_most=len(x) - 2)
        self.x_val, self.y_val = x[torch.from_numpy(val)], y[torch.from_numpy(val)]
        self.x_fit, self.y_fit = (x, y) if len(val) == 0 else (x[torch.from_numpy(fit)], y[torch.from_numpy(fit)])
        self.x_test, self.y_test = _tensor(dataset.x_test, torch.float32), _tensor(dataset.y_test, torch.int64)
        self.batches = max(len(self.x_fit) // self.batch_size, 1)

    # ------------------------------------------------------------ optimizers

    def _stage_layout(self, epoch: int) -> str:
        """Which optimizers run in ``epoch``: "bop" (Bop + Adam) or "all" (one optimizer for every parameter).

        The first stage of two-stage training trains real-valued weights, so Bop (which flips +-1 weights)
        starts only with the binary stage.
        """
        if self.use_bop and epoch >= self._first_stage_epochs():
            return "bop"
        return "all"

    def _first_stage_epochs(self) -> int:
        two_stage = self.spec.get("two_stage")
        return int(two_stage["first_epochs"]) if two_stage else 0

    def _make_optimizers(self, layout: str) -> dict[str, torch.optim.Optimizer]:
        config = self.spec["optimizer"]
        if layout == "bop":
            binary = [p for p in self.model.parameters() if id(p) in self.bop_weights]
            real = [p for p in self.model.parameters() if id(p) not in self.bop_weights]
            with torch.no_grad():
                for weight in binary:  # Bop works on +-1 weights; sign(0) = +1
                    weight.copy_(torch.where(weight < 0, -1.0, 1.0))
            optimizers = {"bop": Bop(binary, threshold=config["threshold"], gamma=config["gamma"])}
            if real:
                optimizers["adam"] = torch.optim.Adam(real, lr=config["lr"])
            return optimizers
        if config["name"] == "sgd":
            return {
                "sgd": torch.optim.SGD(self.model.parameters(), lr=config["lr"], momentum=config.get("momentum", 0.9))
            }
        return {"adam": torch.optim.Adam(self.model.parameters(), lr=config["lr"])}

    def _enter_epoch(self, epoch: int) -> None:
        """Set the stage, optimizers and Bop schedule for ``epoch`` (0-based) and reseed its randomness."""
        layout = self._stage_layout(epoch)
        if layout != self.layout:
            self.optimizers, self.layout = self._make_optimizers(layout), layout
        if self.spec.get("two_stage"):
            self.model.set_quantization(weights=epoch >= self._first_stage_epochs(), activations=True)
        if "bop" in self.optimizers:
            config = self.spec["optimizer"]
            threshold, gamma = bop_at(self.spec["bop_schedule"], config["threshold"], config["gamma"], epoch)
            set_hyperparameter(self.optimizers["bop"], "threshold", threshold)
            set_hyperparameter(self.optimizers["bop"], "gamma", gamma)
        torch.manual_seed(_epoch_seed(self.seed, epoch))

    def _set_lr(self, epoch: float) -> float:
        lr = lr_at(self.spec["lr_schedule"], self.spec["optimizer"]["lr"], epoch, self.epochs)
        for name, optimizer in self.optimizers.items():
            if name != "bop":
                set_hyperparameter(optimizer, "lr", lr)
        return lr

    def _soft_temperature(self) -> None:
        soft = self.spec.get("soft_binarization")
        if not soft:
            return
        progress = self.step / max(self.epochs * self.batches - 1, 1)
        start, end = float(soft["start_temperature"]), float(soft["end_temperature"])
        self.model.set_soft_temperature(start * (end / start) ** min(progress, 1.0))

    # ----------------------------------------------------------------- loop

    def run(self, resume: Checkpoint | None, best: Checkpoint | None) -> TrainResult:
        start = 0
        if resume is not None:
            start = self._restore(resume, best)
        epochs_done, stopped = self.epochs, False
        for epoch in range(start, self.epochs):
            if not self._train_epoch(epoch):
                epochs_done, stopped = epoch, True
                break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        _, test_accuracy = self._evaluate(self.x_test, self.y_test) if self.best_state is not None else (None, None)
        return TrainResult(self.model, epochs_done, self.best_val_accuracy, test_accuracy, stopped, self.best_epoch)

    def _train_epoch(self, epoch: int) -> bool:
        """One epoch; False when the reporter asked to stop (nothing of the partial epoch is saved)."""
        self._enter_epoch(epoch)
        self.model.train()
        started = time.perf_counter()
        order = torch.randperm(len(self.x_fit), generator=torch.Generator().manual_seed(_epoch_seed(self.seed, epoch)))
        augment_rng = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch) + 1)
        signs_at_start = self._weight_codes()
        previous = signs_at_start
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        loss_sum = correct = seen = 0.0
        lr = 0.0
        for batch in range(self.batches):
            if self.reporter.control() == "stop":
                return False
            tick = time.perf_counter()
            chosen = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            positions = share(torch.arange(len(chosen)), self.world)  # this rank's places in the global batch
            x = self.x_fit.index_select(0, chosen[positions])
            if self.augmentation is not None:
                draws = augmentation.draw(len(chosen), self.augmentation, augment_rng).take(positions)
                x = augmentation.apply(x, self.augmentation, draws)
            x = x.to(self.device)
            y = self.y_fit.index_select(0, chosen[positions]).to(self.device)
            lr = self._set_lr(epoch + batch / self.batches)
            self._soft_temperature()
            with autocast(self.device, self.mixed_precision):
                logits = self.forward_model(x)
                loss = self._loss(logits, x, y)
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = _grad_norm(parameters)
            for optimizer in self.optimizers.values():
                optimizer.step()
            self._clip()
            self.step += 1
            current = self._weight_codes()
            # the whole batch's figures: summed over the ranks when distributed
            batch_loss_sum, batch_correct, batch_seen = sum_over_ranks(
                [loss.item() * len(y), (logits.detach().argmax(1) == y).sum().item(), len(y)], self.world
            )
            loss_sum, correct, seen = loss_sum + batch_loss_sum, correct + batch_correct, seen + batch_seen
            metrics = {
                "loss": batch_loss_sum / batch_seen,
                "accuracy": batch_correct / batch_seen,
                "lr": lr,
                "grad_norm": grad_norm,
                "samples_per_s": batch_seen / max(time.perf_counter() - tick, 1e-9),
            }
            metrics.update(_flip_shares(previous, current))
            previous = current
            self.reporter.on_batch(epoch + 1, self.step, metrics)
        self._finish_epoch(epoch, started, lr, loss_sum / seen, correct / seen, signs_at_start, previous)
        return True

    def _loss(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            return F.cross_entropy(logits, y)
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        config = self.spec["distillation"]
        return distillation_loss(logits, teacher_logits, y, config["alpha"], config["temperature"])

    def _clip(self) -> None:
        """Clip latent weights of quantized layers to [-b, b]: beyond it the STE gradient is zero anyway."""
        if self.clip is None:
            return
        with torch.no_grad():
            for _, layer, _ in self.quantized:
                if id(layer.weight) not in self.bop_weights or self.layout != "bop":
                    layer.weight.clamp_(-self.clip, self.clip)

    def _weight_codes(self) -> dict[str, torch.Tensor]:
        """What a flip compares: the sign bits of sign-quantized latent weights, else the quantized values."""
        with torch.no_grad():
            return {
                name: (layer.weight < 0) if sign else layer.binarized_weight().detach().clone()
                for name, layer, sign in self.quantized
            }

    def _finish_epoch(self, epoch, started, lr, loss, accuracy, codes_at_start, codes_now) -> None:
        """Evaluate, keep the best model and report the epoch (rank 0 alone when distributed)."""
        check_replicas_agree(self.model, self.world)
        if not self.world.leader:
            return
        self.model.eval()
        val_loss, val_accuracy = self._evaluate(self.x_val, self.y_val)
        histograms = self._histograms()
        self.model.train()
        metrics = {
            "loss": loss,
            "accuracy": accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": lr,
            "epoch_seconds": time.perf_counter() - started,
        }
        metrics.update(_flip_shares(codes_at_start, codes_now))
        if "bop" in self.optimizers:
            group = self.optimizers["bop"].param_groups[0]
            metrics.update(bop_threshold=group["threshold"], bop_gamma=group["gamma"])
        for name, entry in histograms.items():
            if entry.get("saturated_share") is not None:
                metrics[f"saturated/{name}"] = entry["saturated_share"]
        # without validation data the last epoch is the best: training accuracy would only reward overfitting
        is_best = val_accuracy is None or self.best_val_accuracy is None or val_accuracy > self.best_val_accuracy
        if is_best:
            self.best_val_accuracy, self.best_epoch = val_accuracy, epoch + 1
            self.best_state = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
        metrics = {key: float("nan") if value is None else float(value) for key, value in metrics.items()}
        self.reporter.on_epoch(epoch + 1, metrics, histograms, self._checkpoint(epoch + 1), is_best)

    # ------------------------------------------------------------ evaluation

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float | None, float | None]:
        """Mean loss (plain cross-entropy) and accuracy in eval mode; (None, None) for an empty set."""
        if len(x) == 0:
            return None, None
        loss_sum = correct = 0.0
        for begin in range(0, len(x), EVAL_BATCH):
            logits = self.model(x[begin : begin + EVAL_BATCH].to(self.device))
            target = y[begin : begin + EVAL_BATCH].to(self.device)
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
        return loss_sum / len(x), correct / len(x)

    @torch.no_grad()
    def _histograms(self) -> dict:
        """Per quantized layer: latent weights with the clip bound, binarized shares, pre-sign activations."""
        histograms = {}
        for name, layer, sign in self.quantized:
            latent = layer.weight.detach().reshape(-1)
            bound = self._bound(layer)
            reach = max(float(latent.abs().max()), bound or 0.0, 1e-6)
            entry = {
                "latent": _histogram(latent, -reach, reach),
                "clip": bound,
                "saturated_share": None
                if bound is None
                else float((latent.abs() >= bound * (1 - SATURATION_TOLERANCE)).float().mean()),
            }
            if sign:
                entry["plus_share"] = float((latent >= 0).float().mean())
                entry["minus_share"] = 1.0 - entry["plus_share"]
            else:
                quantized = layer.binarized_weight().detach()
                entry["plus_share"] = float((quantized > 0).float().mean())
                entry["minus_share"] = float((quantized < 0).float().mean())
            histograms[name] = entry
        source = self.x_val if len(self.x_val) else self.x_fit
        with self.model.capture_preactivations() as captured:
            self.model(source[:PREACT_BATCH].to(self.device))
        for name, values in captured.items():
            values = values.reshape(-1).float()
            low, high = float(values.min()), float(values.max())
            if high - low < 1e-6:
                low, high = low - 0.5, high + 0.5
            histograms.setdefault(name, {})["preact"] = _histogram(values, low, high)
        return histograms

    def _bound(self, layer) -> float | None:
        """The clip bound saturation is measured against: the training spec's weight_clip, else the quantizer's."""
        if self.clip is not None:
            return float(self.clip)
        clip = (layer.spec.get("kernel_quantizer") or {}).get("clip")
        return None if clip is None else float(clip)

    # ----------------------------------------------------------- checkpoints

    def _checkpoint(self, epochs_done: int) -> Checkpoint:
        """A snapshot (copies, not the live tensors training keeps changing) after ``epochs_done`` epochs."""
        tensors, skeletons = {}, {}
        for name, optimizer in self.optimizers.items():
            named, skeletons[name] = flatten_state(optimizer.state_dict(), name)
            tensors.update({key: _on_cpu(value) for key, value in named.items()})
        meta = {
            "step": self.step,
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "seed": self.seed,
            "layout": self.layout,
            "optimizer_state": skeletons,
            "epochs": self.epochs,
            "network_spec": self.network_spec,
            "training_spec": self.spec,
        }
        model = {key: _on_cpu(value) for key, value in self.model.state_dict().items()}
        return Checkpoint(epoch=epochs_done, model=model, optimizer=tensors, meta=meta)

    def _restore(self, checkpoint: Checkpoint, best: Checkpoint | None) -> int:
        """Load a checkpoint's model and optimizer state, and the best model so far (``best``, or the checkpoint
        itself when it is the best); returns the 0-based epoch to continue with."""
        try:
            self.model.load_state_dict(checkpoint.model)
        except RuntimeError as error:
            raise ValueError(
                f"resume checkpoint (epoch {checkpoint.epoch}): its weights do not fit the network spec: {error}"
            ) from None
        meta = checkpoint.meta
        self.step = int(meta.get("step", 0))
        self.best_val_accuracy = meta.get("best_val_accuracy")
        self.best_epoch = meta.get("best_epoch", checkpoint.epoch)
        epoch = int(checkpoint.epoch)
        source = checkpoint if best is None or self.best_epoch == epoch else best
        self.best_state = {key: value.clone() for key, value in source.model.items()}
        if epoch < self.epochs and meta.get("layout") == self._stage_layout(epoch):
            self.optimizers, self.layout = self._make_optimizers(meta["layout"]), meta["layout"]
            for name, skeleton in meta.get("optimizer_state", {}).items():
                if name not in self.optimizers:
                    raise ValueError(
                        f"resume checkpoint: optimizer {name!r} is not used by training spec "
                        f"optimizer {self.spec['optimizer']['name']!r}"
                    )
                self.optimizers[name].load_state_dict(unflatten_state(checkpoint.optimizer, skeleton))
        return epoch


def _on_cpu(value):
    """A CPU copy of a state entry, so a checkpoint written on any device loads on any other."""
    return value.detach().to("cpu", copy=True) if isinstance(value, torch.Tensor) else value


def _grad_norm(parameters: list[torch.Tensor]) -> float:
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def _flip_shares(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict[str, float]:
    return {f"flip/{name}": float((before[name] != after[name]).sum()) / max(after[name].numel(), 1) for name in after}


def _histogram(values: torch.Tensor, low: float, high: float) -> dict:
    counts = torch.histc(values, bins=HISTOGRAM_BINS, min=low, max=high)
    edges = torch.linspace(low, high, HISTOGRAM_BINS + 1)
    return {"edges": edges.tolist(), "counts": [int(c) for c in counts.tolist()]}
