"""What a finished binary + float twin pair costs to ship and to run: measured file sizes and latencies.

Sizes are the lengths of real files: the binary run's ``.bnn`` (what Export writes) against the float twin's
trained weights as a float32 safetensors file. Latency is the XNOR engine on the packed binary network against
torch float32 on the trained float twin, on the same test images, in interleaved rounds (engine, torch, torch,
engine, ...) so that a machine busy with something else slows both alike; each side's spread over the rounds is
reported as min / median / max. Timings are shown, never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from workbench.core.data import _preprocessed
from workbench.deploy.engine import Engine, raw_inputs
from workbench.deploy.packed import PackedModel


def float32_file(model: torch.nn.Module) -> bytes:
    """The model's trained state (weights and batch-norm statistics) as a float32 safetensors file."""
    state = {
        name: (tensor.float() if tensor.is_floating_point() else tensor).detach().contiguous()
        for name, tensor in model.state_dict().items()
    }
    return safetensors_bytes(state)


def model_input(u: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Raw pixels (uint8, as a drawing gives them) as the float32 input torch was trained on."""
    return _preprocessed(np.asarray(u), preprocessing or {"kind": "none"})


def float_probabilities(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Softmax of the torch model's logits for preprocessed float32 inputs ``x`` (N, ...)."""
    with torch.inference_mode():
        logits = model.eval()(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return torch.softmax(logits.double(), dim=1).numpy()


def _per_call(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def interleaved_latency(
    functions: dict[str, Callable[[], object]], rounds: int = 15, budget: float = 1.5
) -> dict[str, dict[str, float]]:
    """Seconds per call of each function: min, median and max over ``rounds`` rounds, the functions taking
    turns within each round (their order reversed every other round). Each round repeats a call enough
    times to last about budget / rounds / len(functions) seconds, so that timer resolution does not matter."""
    if rounds < 1 or not functions:
        raise ValueError(f"interleaved_latency: need at least one round and one function, got {rounds} and {functions}")
    names = list(functions)
    calls = {}
    for name in names:
        functions[name]()  # warm up (allocations, thread pools)
        once = max(_per_call(functions[name], 1), 1e-7)
        calls[name] = max(1, int(budget / rounds / len(names) / once))
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            times[name].append(_per_call(functions[name], calls[name]))
    return {
        name: {
            "min": float(np.min(values)),
            "median": float(np.median(values)),
            "max": float(np.max(values)),
            "rounds": rounds,
            "calls_per_round": calls[name],
        }
        for name, values in times.items()
    }


def pair_latency(
    packed: PackedModel,
    float_model: torch.nn.Module,
    x: np.ndarray,
    *,
    threads: int = 1,
    rounds: int = 15,
    budget: float = 1.5,
) -> dict:
    """Engine (packed binary network) vs torch float32 (the trained float twin) on the preprocessed inputs
    ``x`` (one batch), both on ``threads`` threads; torch's thread count is restored afterwards."""
    u = raw_inputs(x, packed.meta.get("preprocessing") or {})
    engine = Engine(packed, threads=threads)
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    model = float_model.eval()

    def torch_call():
        with torch.inference_mode():
            return model(tensor)

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        measured = interleaved_latency(
            {"engine": lambda: engine.logits(u), "torch_float32": torch_call}, rounds=rounds, budget=budget
        )
    finally:
        torch.set_num_threads(previous)
    return {
        "batch": len(x),
        "threads": threads,
        "exact_input": u.dtype == np.uint8,
        "engine": measured["engine"],
        "torch_float32": measured["torch_float32"],
        "speedup_median": measured["torch_float32"]["median"] / measured["engine"]["median"],
    }
