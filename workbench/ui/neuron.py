"""One neuron (dense row) or filter (conv output channel) of a trained layer, as the Inspect page shows it:
latent float weights, their signs, and the uint64 words the packed format stores for them.

Layouts follow the packed format: a dense row packs along K; a conv filter is taken in OHWI order,
so it packs along the input channels, one run of words per kernel position. The picture is for the eye:
a dense row as a grid (28 x 28 for MNIST pixels), a conv filter as one k x k tile per input channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench.deploy.kernels import pack_signs


@dataclass
class NeuronView:
    latent: np.ndarray  # float32, the latent weights in packing order (positions x elements)
    row_labels: list[str]
    words: np.ndarray  # uint64 (positions, words per position): the packed sign bits
    word_labels: list[str]  # what each row of ``words`` covers
    count: int  # number of weights
    negative: int  # how many binarize to -1
    picture: np.ndarray  # float32 for display: a dense row as a grid, a conv filter as k x k tiles (NaN gaps)
    picture_note: str  # how to read the picture

    def hex_words(self) -> list[list[str]]:
        """Each word as 16 hex digits, most significant first: bit j (element j of the run) is 1 for -1."""
        return [[f"{int(w):016x}" for w in row] for row in self.words]

    def hex_bytes(self) -> list[str]:
        """The words as they lie in the file (little-endian uint64), byte by byte."""
        return [self.words[i].astype("<u8").tobytes().hex(" ") for i in range(len(self.words))]


def _grid(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A flat weight vector as a grid: square when K is a square (e.g. 784 pixels), else rows of 32."""
    count = len(values)
    side = math.isqrt(count)
    width = side if side * side == count and side > 1 else min(32, count)
    rows = -(-count // width)
    grid = np.full(rows * width, np.nan, dtype=np.float32)
    grid[:count] = values
    return grid.reshape(rows, width), [f"{r * width}…" for r in range(rows)]


def filter_tiles(filter_ikk: np.ndarray) -> np.ndarray:
    """A conv filter (I, KH, KW) as one KH x KW tile per input channel, row by row, in a near-square mosaic
    with a NaN gap between tiles (drawn as blank)."""
    channels, kh, kw = filter_ikk.shape
    columns = math.ceil(math.sqrt(channels))
    rows = -(-channels // columns)
    mosaic = np.full((rows * (kh + 1) - 1, columns * (kw + 1) - 1), np.nan, dtype=np.float32)
    for channel in range(channels):
        top, left = (channel // columns) * (kh + 1), (channel % columns) * (kw + 1)
        mosaic[top : top + kh, left : left + kw] = filter_ikk[channel]
    return mosaic


def neuron_view(weight: np.ndarray, index: int) -> NeuronView:
    """The view of output channel ``index`` of a latent weight tensor, torch layout (N, K) or (O, I, KH, KW)."""
    weight = np.asarray(weight, dtype=np.float32)
    if weight.ndim not in (2, 4):
        raise ValueError(f"neuron_view: expected dense (N, K) or conv (O, I, KH, KW) weights, got shape {weight.shape}")
    if not 0 <= index < weight.shape[0]:
        raise ValueError(f"neuron_view: output channel must be in [0, {weight.shape[0]}), got {index}")
    if weight.ndim == 2:
        row = weight[index]
        latent, labels = _grid(row)
        words = pack_signs(row)[None, :]
        word_labels = ["all inputs"]
        picture = latent
        side = latent.shape[1]
        picture_note = (
            f"the {row.size} inputs as a {side} x {side} grid"
            if side * side == row.size
            else f"the {row.size} inputs in rows of {side}"
        )
    else:
        filter_hwi = np.transpose(weight[index], (1, 2, 0))  # (KH, KW, I): OHWI without O
        kh, kw, channels = filter_hwi.shape
        latent = filter_hwi.reshape(kh * kw, channels)
        labels = [f"({y},{x})" for y in range(kh) for x in range(kw)]
        words = pack_signs(latent)
        word_labels = labels
        picture = filter_tiles(weight[index])
        picture_note = (
            f"one {kh} x {kw} tile per input channel ({channels}), left to right and top to bottom"
            if channels > 1
            else f"the {kh} x {kw} kernel"
        )
    flat = weight[index].ravel()
    return NeuronView(
        latent=latent,
        row_labels=labels,
        words=words,
        word_labels=word_labels,
        count=flat.size,
        negative=int(np.count_nonzero(flat < 0)),
        picture=picture,
        picture_note=picture_note,
    )
