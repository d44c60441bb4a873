"""The static arena of an exported C model: every activation and scratch buffer, placed so that buffers whose
lifetimes overlap never overlap in memory (greedy by size, as TensorFlow Lite Micro's planner).
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 8  # every buffer starts at a multiple of 8 bytes (double activations; the arena itself is 8-aligned)


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


@dataclass
class Buffer:
    """``nbytes`` live from step ``first`` (written) to step ``last`` (last read), both inclusive."""

    what: str
    nbytes: int
    first: int
    last: int
    offset: int = -1


class Arena:
    def __init__(self):
        self.buffers: list[Buffer] = []
        self.size = 0

    def new(self, nbytes: int, step: int, what: str) -> int:
        self.buffers.append(Buffer(what, _aligned(max(int(nbytes), 1)), step, step))
        return len(self.buffers) - 1

    def use(self, index: int, step: int) -> None:
        buffer = self.buffers[index]
        buffer.last = max(buffer.last, step)

    def place(self) -> int:
        """Offsets for every buffer; returns the arena's size in bytes."""
        placed: list[Buffer] = []
        for buffer in sorted(self.buffers, key=lambda b: (-b.nbytes, b.first)):
            busy = sorted(
                (other.offset, other.offset + other.nbytes)
                for other in placed
                if other.first <= buffer.last and buffer.first <= other.last
            )
            offset = 0
            for start, end in busy:
                if offset + buffer.nbytes <= start:
                    break
                offset = max(offset, end)
            buffer.offset = offset
            placed.append(buffer)
        self.size = max((b.offset + b.nbytes for b in self.buffers), default=0)
        return self.size

    def peak_live(self) -> int:
        """The most bytes live at one step: no placement can use less."""
        steps = {b.first for b in self.buffers} | {b.last for b in self.buffers}
        return max(
            (sum(b.nbytes for b in self.buffers if b.first <= s <= b.last) for s in steps),
            default=0,
        )
