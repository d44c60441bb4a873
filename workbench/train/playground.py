"""The playground's training session: a tiny 2-D BNN and its float twin, trained side by side, epoch by epoch.

Both networks come from one spec (workbench.core.playground.network_spec and the library's float_twin), are
built by ``build_model`` after the same seed, see the same points in the same order and train with the
library's quantizers and optimizers (Adam, or Bop for the binary weights). Every epoch reseeds its shuffle from
(seed, epoch) and nothing else is random, so the same settings give the same networks at the same epoch:
``step(3); step(2)`` equals ``step(5)``, and a link that names an epoch is replayed exactly. No Streamlit here:
the page keeps one session per browser tab and calls ``step`` and ``snapshot`` from its own script thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.playground import (
    GRID,
    OPTIMIZERS,
    Settings,
    grid_points,
    make_points,
    network_specs,
    soft_temperature,
    with_layers,
)
from workbench.core.spec import is_sign_quantizer
from workbench.core.summary import summary
from workbench.train.layers import QuantDense
from workbench.train.model import build_model
from workbench.train.optim import Bop
from workbench.train.training import SATURATION_TOLERANCE

NETWORKS = ("bnn", "float")
STE_WINDOW = 1.0  # beyond |w| = 1 the sign's straight-through gradient is zero: without clipping, the bound
# that "at the bound" counts against
_TORCH_LOCK = threading.RLock()  # torch's global generator and thread count: one session computes at a time


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread while a session computes, then put the thread count back.

    A playground batch is a few hundred multiply-adds: torch's intra-op threads cost far more than they save
    (an epoch took 10 to 30 times longer with 2 threads than with 1 on a busy 2-core machine). The lock makes
    the sessions of several tabs take turns; they would wait for the GIL anyway.
    """
    with _TORCH_LOCK:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam as everywhere else, in torch's fused form: the same update in one kernel per step instead of a
    dozen per parameter, which took two fifths of a playground batch (0.24 of 0.64 ms; fused 0.09)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + epoch) % (2**63)


@dataclass
class NetFrame:
    """One network at one epoch: its metrics and what its picture needs."""

    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    boundary: np.ndarray  # (GRID, GRID) probability of class 1 over the grid (row: y, column: x)
    neurons: list[np.ndarray]  # per hidden layer (units, GRID, GRID): what each neuron passes on
    weights: list[np.ndarray]  # per dense layer (out, in): latent weights (for Bop: the +-1 bits)
    binary: list[bool]  # per dense layer: are its weights binarized
    flips: int  # weight signs that changed in the last epoch (binary-weight layers; all layers of the twin)
    flip_share: float
    at_bound: float | None  # share of latent weights at the clip bound (None: no latent binary weights)


@dataclass
class Frame:
    """What the page draws: both networks at ``epoch`` and the per-epoch history of both."""

    epoch: int
    nets: dict[str, NetFrame]
    history: dict[str, dict[str, list[float]]]  # network -> metric -> one value per epoch (epoch 1 first)
    memory_bits: dict[str, int]  # network -> bits of all its parameters (1-bit weights count one bit)
    seconds: dict[str, float] = field(default_factory=dict)  # network -> last epoch's training time


class _Net:
    """One of the two networks with its optimizers; trains one epoch at a time."""

    def __init__(self, spec: dict, settings: Settings):
        self.settings = settings
        with _TORCH_LOCK:
            torch.manual_seed(settings.seed)
            self.model = build_model(spec)
        self.dense = [m for m in self.model.layers if isinstance(m, QuantDense)]
        self.binary = [m.kernel_quantizer is not None for m in self.dense]
        self.sign = [
            m.kernel_quantizer is not None and is_sign_quantizer(m.spec["kernel_quantizer"]) for m in self.dense
        ]
        self.soft = any(
            q is not None and q.spec["name"] == "soft_sign"
            for m in self.dense
            for q in (m.kernel_quantizer, m.input_quantizer)
        )
        binary_weights = [m.weight for m, b in zip(self.dense, self.binary, strict=True) if b]
        self.use_bop = settings.optimizer == "bop" and bool(binary_weights)
        if self.use_bop:
            with torch.no_grad():
                for weight in binary_weights:  # Bop flips +-1 weights; sign(0) = +1
                    weight.copy_(torch.where(weight < 0, -1.0, 1.0))
            bop_ids = {id(w) for w in binary_weights}
            real = [p for p in self.model.parameters() if id(p) not in bop_ids]
            self.optimizers = [Bop(binary_weights, threshold=settings.bop_threshold, gamma=settings.bop_gamma)]
            if real:
                self.optimizers.append(_adam(real, settings.lr))
        else:
            self.optimizers = [_adam(self.model.parameters(), settings.lr)]
        self.clipped = (
            [m.weight for m, b in zip(self.dense, self.binary, strict=True) if b]
            if (settings.clip and not self.use_bop)
            else []
        )
        self.has_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in self.model.layers)
        self.flips, self.flip_share, self.seconds = 0, 0.0, 0.0

    def signs(self) -> list[torch.Tensor]:
        """What a flip compares: the sign bits of the weights (of every layer for the twin, binary ones else)."""
        watched = [m for m, b in zip(self.dense, self.binary, strict=True) if b] or self.dense
        return [(m.weight < 0).clone() for m in watched]

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> None:
        started = time.perf_counter()
        settings = self.settings
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(_epoch_seed(settings.seed, epoch)))
        before = self.signs()
        self.model.train()
        bounds = _batch_bounds(len(x), settings.batch, self.has_bn)
        batches = len(bounds) - 1
        for batch in range(batches):
            index = order[bounds[batch] : bounds[batch + 1]]
            if self.soft:
                self.model.set_soft_temperature(soft_temperature(settings, epoch + batch / batches))
            loss = F.cross_entropy(self.model(x[index]), y[index])
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in self.optimizers:
                optimizer.step()
            if self.clipped:
                with torch.no_grad():
                    for weight in self.clipped:
                        weight.clamp_(-settings.bound, settings.bound)
        after = self.signs()
        self.flips = int(sum(int((a != b).sum()) for a, b in zip(before, after, strict=True)))
        self.flip_share = self.flips / max(sum(a.numel() for a in after), 1)
        self.seconds = time.perf_counter() - started

    def at_bound(self) -> float | None:
        """Share of latent binary weights at (or past) the clip bound, or the STE window without clipping."""
        latent = [m.weight.detach().reshape(-1) for m, b in zip(self.dense, self.binary, strict=True) if b]
        if not latent or self.use_bop:
            return None
        bound = self.settings.bound if self.settings.clip else STE_WINDOW
        values = torch.cat(latent).abs()
        return float((values >= bound * (1 - SATURATION_TOLERANCE)).float().mean())

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(loss, accuracy) in eval mode: the hard sign and batch norm's running statistics, as deployed."""
        self.model.eval()
        logits = self.model(x)
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())

    @torch.no_grad()
    def pictures(self, grid: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
        """Class-1 probability over the grid, and what each hidden neuron passes on (its sign, if binary)."""
        self.model.eval()
        neurons, h, seen = [], grid, 0
        for module in self.model.layers:
            if isinstance(module, QuantDense):
                if seen:
                    neurons.append(module.quantize_input(h).T.reshape(-1, GRID, GRID).numpy().copy())
                seen += 1
            h = module(h)
        boundary = torch.softmax(h, dim=1)[:, 1].reshape(GRID, GRID).numpy().copy()
        return boundary, neurons


class PlaygroundSession:
    """A BNN and its float twin on one data set; ``step`` trains both, ``snapshot`` says how they stand."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.specs = dict(zip(NETWORKS, network_specs(settings), strict=True))
        self.points = points = make_points(settings)
        self.x_train, self.y_train = torch.from_numpy(points.x_train), torch.from_numpy(points.y_train)
        self.x_test, self.y_test = torch.from_numpy(points.x_test), torch.from_numpy(points.y_test)
        self.grid = torch.from_numpy(grid_points())
        self.memory_bits = {name: _bits(spec) for name, spec in self.specs.items()}
        self.reset()

    def reset(self) -> None:
        """Back to epoch 0: freshly initialised from the seed, so the same start as any session of these settings."""
        with _one_thread():
            self.nets = {name: _Net(spec, self.settings) for name, spec in self.specs.items()}
        self.epoch = 0
        self.history: dict[str, dict[str, list[float]]] = {name: {key: [] for key in _METRICS} for name in NETWORKS}

    def step(self, epochs: int = 1) -> None:
        """Train both networks ``epochs`` more epochs (the same batches for both)."""
        with _one_thread():
            for _ in range(max(int(epochs), 0)):
                for name, net in self.nets.items():
                    net.train_epoch(self.x_train, self.y_train, self.epoch)
                    self._record(name, net)
                self.epoch += 1

    def advance_to(self, epoch: int) -> None:
        """Train until ``epoch`` (a link's epoch); a later epoch than that is left as it is."""
        self.step(epoch - self.epoch)

    def _record(self, name: str, net: _Net) -> None:
        history = self.history[name]
        for key, value in zip(
            _METRICS[:4],
            (*net.evaluate(self.x_train, self.y_train), *net.evaluate(self.x_test, self.y_test)),
            strict=True,
        ):
            history[key].append(value)
        history["flips"].append(float(net.flips))
        at_bound = net.at_bound()
        history["at_bound"].append(float("nan") if at_bound is None else at_bound)

    def snapshot(self) -> Frame:
        """Both networks now: metrics, decision boundaries, neuron maps and weights, flips, memory."""
        with _one_thread():
            nets = {name: self._net_frame(net, self.history[name]) for name, net in self.nets.items()}
        history = {
            name: {key: list(values) for key, values in metrics.items()} for name, metrics in self.history.items()
        }
        return Frame(
            self.epoch, nets, history, dict(self.memory_bits), {name: net.seconds for name, net in self.nets.items()}
        )

    def _net_frame(self, net: _Net, history: dict[str, list[float]]) -> NetFrame:
        if history["test_loss"]:  # measured after the last epoch, on the same weights
            train_loss, train_accuracy, test_loss, test_accuracy = (history[key][-1] for key in _METRICS[:4])
        else:
            train_loss, train_accuracy = net.evaluate(self.x_train, self.y_train)
            test_loss, test_accuracy = net.evaluate(self.x_test, self.y_test)
        boundary, neurons = net.pictures(self.grid)
        return NetFrame(
            train_loss,
            train_accuracy,
            test_loss,
            test_accuracy,
            boundary,
            neurons,
            [m.weight.detach().numpy().copy() for m in net.dense],
            list(net.binary),
            net.flips,
            net.flip_share,
            net.at_bound(),
        )


def _batch_bounds(count: int, size: int, has_bn: bool) -> list[int]:
    """Where the batches of an epoch begin and end; with batch norm none has a single sample (it cannot be
    normalised): a batch size of 1 trains as 2, a lone last sample joins the batch before it."""
    size = max(size, 2) if has_bn else size
    bounds = list(range(0, count, size)) + [count]
    if has_bn and len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return bounds


_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "flips", "at_bound")


def _bits(spec: dict) -> int:
    """All parameters of a network in bits, by the library's summary (1-bit weights: one bit each)."""
    return sum(bits * count for bits, count in summary(spec).totals["params_by_bits"].items())


def warm_up() -> PlaygroundSession:
    """Pay torch's first-call costs once, before a visitor does: the first optimizer imports torch._dynamo
    (about 2 s), the first forward and backward pass set up their kernels. The app command calls this while
    the server starts, so a playground link opened on a fresh app draws its first boundary at once."""
    for optimizer in OPTIMIZERS:
        session = PlaygroundSession(with_layers(Settings(points=40, optimizer=optimizer), (2,)))
        session.step(1)
        session.snapshot()
    return session


def measure(settings: Settings, frames: int = 20) -> dict[str, float]:
    """Mean milliseconds of one frame per network (one epoch + its boundary grid and neuron maps)."""
    session = PlaygroundSession(settings)
    session.step(2)  # warm up torch's kernels
    train = dict.fromkeys(NETWORKS, 0.0)
    pictures = dict.fromkeys(NETWORKS, 0.0)
    for _ in range(frames):
        session.step(1)
        for name, net in session.nets.items():
            train[name] += net.seconds
            started = time.perf_counter()
            with _one_thread():
                net.pictures(session.grid)
            pictures[name] += time.perf_counter() - started
    out = {}
    for name in NETWORKS:
        out[f"{name}_epoch_ms"] = 1000 * train[name] / frames
        out[f"{name}_grids_ms"] = 1000 * pictures[name] / frames
        out[f"{name}_frame_ms"] = out[f"{name}_epoch_ms"] + out[f"{name}_grids_ms"]
    return out
