"""What a finished binary + float twin pair costs to ship and to run: measured file sizes and latencies.

Sizes are the lengths of real files: the binary run's ``.bnn`` (what Export writes) against the float twin's
trained weights as a float32 safetensors file. Latency is the XNOR engine on the packed binary network against
torch float32 on the trained float twin, on the same test images, in interleaved rounds (engine, torch, torch,
engine, ...) so that a machine busy with something else slows both alike; each side's spread over the rounds is
reported as min / median / max. Timings are shown, never asserted.
"""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from workbench.core.data import preprocessed
from workbench.deploy.engine import Engine, raw_inputs
from workbench.deploy.packed import PackedModel
from workbench.deploy.timing import interleaved, ratios, spread


def float32_file(model: torch.nn.Module) -> bytes:
    """The model's trained state (weights and batch-norm statistics) as a float32 safetensors file."""
    state = {
        name: (tensor.float() if tensor.is_floating_point() else tensor).detach().contiguous()
        for name, tensor in model.state_dict().items()
    }
    return safetensors_bytes(state)


def model_input(u: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Raw pixels (uint8, as a drawing gives them) as the float32 input torch was trained on."""
    return preprocessed(np.asarray(u), preprocessing or {"kind": "none"})


def float_probabilities(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Softmax of the torch model's logits for preprocessed float32 inputs ``x`` (N, ...)."""
    with torch.inference_mode():
        logits = model.eval()(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return torch.softmax(logits.double(), dim=1).numpy()


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
        times = interleaved(
            {"engine": lambda: engine.logits(u), "torch_float32": torch_call},
            rounds=rounds,
            min_seconds=budget / rounds / 2,
        )
    finally:
        torch.set_num_threads(previous)
    low, median, high = ratios(times["torch_float32"], times["engine"])
    return {
        "batch": len(x),
        "threads": threads,
        "exact_input": u.dtype == np.uint8,
        **{name: dict(zip(("min", "median", "max"), spread(values)), rounds=rounds) for name, values in times.items()},
        "speedup": {"min": low, "median": median, "max": high},  # per-round ratios torch / engine
    }
