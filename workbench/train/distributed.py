"""Training on several processes with PyTorch's DistributedDataParallel, and on the device a spec names.

One run on N processes (``processes`` in the training spec; ``torchrun`` starts them and sets RANK, WORLD_SIZE,
LOCAL_RANK): every process builds the same model from the same seed and walks the same seeded order of the
training set; each global batch is cut into N equal shares, one per process (``batch_size`` is a multiple of
``processes``), and DDP averages the gradients, so every process steps with the gradient of the whole batch,
as a single process would. What follows from that:

- Bop's flips are the same on every rank: Bop reads only the (all-reduced, identical) gradients and its own
  momentum, which starts at zero everywhere, and the +-1 weights start equal (same seed, and DDP broadcasts
  rank 0's parameters when it wraps the model). ``check_replicas_agree`` verifies it each epoch.
- Latent clipping, the schedules, two-stage and soft-to-hard are functions of the step and the (identical)
  weights, so they agree too.
- Batch norm: on CUDA the layers become ``SyncBatchNorm`` (statistics of the whole batch, as one process);
  PyTorch has no CPU SyncBatchNorm, so with gloo each process normalises with its own share's statistics, the
  usual DDP behaviour. Networks without batch norm train to the same weights as one process (within float
  rounding of the all-reduce); networks with it train alike but not identically.
- Rank 0 alone reports (metrics, checkpoints, the run store); the others take its pause/stop decision, which it
  broadcasts before every batch, and evaluate nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from workbench.train.reporting import TrainingReporter

# A paused run keeps every rank waiting in a collective; the process group's timeout bounds the pause.
PAUSE_LIMIT = datetime.timedelta(days=7)
_DECISIONS = ("continue", "stop")


def resolve_device(name: str) -> torch.device:
    """The torch device a training spec's ``device`` names, checked against this machine."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"training spec field 'device' is {name!r}, but this machine has no CUDA GPU that PyTorch can use "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False); use 'auto' or 'cpu'"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"training spec field 'device' is {name!r}, but this machine has {torch.cuda.device_count()} "
                "CUDA device(s), numbered from 0"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("training spec field 'device' is 'mps', but this machine has no Apple GPU PyTorch can use")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast for the training forward pass, when the spec asks for mixed precision.

    Only matmuls and convolutions run in bfloat16 (+-1 operands are exact in it); latent weights, Bop's
    momentum, the optimizers' states, batch norm and the loss stay float32 (autocast keeps those ops in
    float32), and evaluation always runs in float32, so the accuracies reported are the float32 model's.
    """
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclass(frozen=True)
class World:
    """This process's place in a distributed run: rank among size, and the local rank on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        return self.rank == 0


SINGLE = World()


def world_from_environment() -> World:
    """The World torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (a single process without them)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return SINGLE
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def join(world: World, device: torch.device) -> torch.device:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU); returns the device this rank trains on."""
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=PAUSE_LIMIT)
    if dist.get_world_size() != world.size:
        raise ValueError(f"torchrun started {dist.get_world_size()} processes, the run's spec says {world.size}")
    return device


def leave(together: bool) -> None:
    """Leave the process group; ``together``: after a barrier, so no rank tears gloo down while another still
    finishes (rank 0 evaluates and writes the result after the last batch). A rank that left alone while rank 0
    was still at work died in gloo's teardown ("terminate called without an active exception", SIGABRT)."""
    if not dist.is_initialized():
        return
    if together:
        dist.barrier()
    dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The module the training forward pass goes through: DDP around ``model`` when distributed."""
    if not world.distributed:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device])
    return torch.nn.parallel.DistributedDataParallel(model)


def share(index: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's equal share of one global batch's sample indices."""
    if not world.distributed:
        return index
    step = len(index) // world.size
    return index[world.rank * step : (world.rank + 1) * step]


def sum_over_ranks(values: list[float], world: World) -> list[float]:
    """Element-wise sums over every rank (loss sums, correct counts, sample counts); as given on one process."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def check_replicas_agree(model: torch.nn.Module, world: World) -> None:
    """Fail loudly if the ranks' weights have drifted apart (they must stay identical; see the module doc)."""
    if not world.distributed:
        return
    with torch.no_grad():
        digest = torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()
    highest, lowest = digest.clone(), digest.clone()
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
    if not torch.equal(highest, lowest):
        raise RuntimeError("distributed training: the processes' weights differ; the replicas diverged")


class RankReporter(TrainingReporter):
    """Rank 0 passes progress to the run's reporter and broadcasts its pause/stop decision; the other ranks
    report nothing and follow that decision (a pause holds them in the broadcast until rank 0 goes on)."""

    def __init__(self, leader_reporter: TrainingReporter | None, world: World):
        self.inner, self.world = leader_reporter, world

    def on_batch(self, epoch, step, metrics):
        if self.inner is not None:
            self.inner.on_batch(epoch, step, metrics)

    def on_epoch(self, epoch, metrics, histograms, checkpoint, is_best):
        if self.inner is not None:
            self.inner.on_epoch(epoch, metrics, histograms, checkpoint, is_best)

    def control(self) -> str:
        decision = self.inner.control() if self.inner is not None else "continue"
        if not self.world.distributed:
            return decision
        code = torch.tensor([_DECISIONS.index(decision) if self.world.leader else 0], dtype=torch.int64)
        dist.broadcast(code, src=0)
        return _DECISIONS[int(code)]
