"""Shape arithmetic that every room shares: packed words, padding, conv and pool output sizes.

Stated once here so that spec validation, the summary, packing, the engine and the kernels agree by
construction (floor mode, as torch; "same" pads (K - 1) // 2 before and the rest after).
"""

from __future__ import annotations

WORD_BITS = 64  # bits per packed word (uint64), see docs/FORMAT.md


def words(bits: int) -> int:
    """Packed uint64 words that hold ``bits`` sign bits: ceil(bits / 64)."""
    return -(-bits // WORD_BITS)


def same_padding(kernel: int) -> tuple[int, int]:
    """(before, after) of "same" padding for one axis."""
    return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2


def padding_pair(padding: str, kernel: int) -> tuple[int, int]:
    """(before, after) for one axis of a spec's "same" or "valid" padding."""
    return same_padding(kernel) if padding == "same" else (0, 0)


def conv_output_size(size: int, kernel: int, stride: int = 1, before: int = 0, after: int = 0) -> int:
    """Output length along one axis of a convolution (or pooling): (size + before + after - kernel) // stride + 1."""
    return (size + before + after - kernel) // stride + 1


def pool_output_size(size: int, pool: int, stride: int) -> int:
    """Output length along one axis of an unpadded pooling window."""
    return conv_output_size(size, pool, stride)
