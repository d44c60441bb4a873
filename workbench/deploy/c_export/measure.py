"""Export, build, run and compare: a model's C library on each target against the engine, with its footprint and
cost (``bnn-workbench footprint``; the tests use the same steps)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.deploy.c_export import targets
from workbench.deploy.c_export.generator import CLibrary, reference_scores
from workbench.deploy.packed import PackedModel


@dataclass
class Agreement:
    """How a run of the C library compares with the engine on the same inputs (exact comparisons)."""

    inputs: int
    scores_equal: int  # inputs whose scores are all equal (bit for bit for float scores)
    logits_equal: int  # inputs whose float32 logits are all bit-equal
    classes_equal: int
    max_relative: float  # the largest |logit difference| / max(1, |logit|)

    @property
    def exact(self) -> bool:
        return self.scores_equal == self.logits_equal == self.classes_equal == self.inputs

    def line(self) -> str:
        if self.exact:
            return f"  bit-exact with the engine on {self.inputs} inputs (scores, logits and classes)"
        return (
            f"  against the engine on {self.inputs} inputs: scores equal on {self.scores_equal}, logits bit-equal "
            f"on {self.logits_equal}, classes on {self.classes_equal}; largest relative logit difference "
            f"{self.max_relative:.2g} (float layers: the engine's BLAS sums in another order)"
        )


def agreement(packed: PackedModel, result: targets.RunResult, inputs: np.ndarray, reference=None) -> Agreement:
    scores, logits = reference if reference is not None else reference_scores(packed, inputs)
    same_scores = (
        (result.scores.view(np.uint32) == scores.view(np.uint32))
        if scores.dtype == np.float32
        else (result.scores == scores)
    )
    same_logits = result.logits.view(np.uint32) == logits.view(np.uint32)
    with np.errstate(invalid="ignore"):
        relative = np.abs(result.logits.astype(np.float64) - logits) / np.maximum(1.0, np.abs(logits))
    return Agreement(
        inputs=len(inputs),
        scores_equal=int(same_scores.all(axis=1).sum()),
        logits_equal=int(same_logits.all(axis=1).sum()),
        classes_equal=int((result.classes == logits.argmax(axis=1)).sum()),
        max_relative=float(np.nan_to_num(relative, nan=np.inf).max(initial=0.0)),
    )


@dataclass
class Measurement:
    footprint: targets.Footprint
    agreement: Agreement

    def lines(self) -> list[str]:
        return [*self.footprint.lines(), self.agreement.line()]


def measure(
    packed: PackedModel, library: CLibrary, folder: str | Path, which: str, inputs: np.ndarray, timeout: float = 600
) -> Measurement:
    """Build the exported library in ``folder`` for a target, run it on inputs, compare with the engine and
    measure it. Raises BuildError (compiler or emulator output) and ValueError (missing tools)."""
    t = targets.target(which)
    missing = t.missing()
    if missing:
        raise ValueError(f"target {t.name}: missing {', '.join(missing)} (see docs/DEPLOY.md for the packages)")
    targets.build(folder, library.name, t, timeout=timeout)
    result = targets.run(folder, library.name, t, inputs, library.num_classes, library.scores_are_dots, timeout)
    return Measurement(targets.footprint(folder, library.name, t, result), agreement(packed, result, inputs))
