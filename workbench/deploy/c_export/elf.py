"""Section sizes of an ELF file (object or executable), read from its section headers: what a build puts in flash
and RAM, without arm-none-eabi-size."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SHT_NOBITS = 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    size: int

    @property
    def kind(self) -> str | None:
        """text (code), rodata (constants), data (initialised RAM, copied from flash), bss (zeroed RAM), or None."""
        if not self.flags & SHF_ALLOC or self.size == 0:
            return None
        if self.flags & SHF_EXECINSTR:
            return "text"
        if not self.flags & SHF_WRITE:
            return "rodata"
        return "bss" if self.type == SHT_NOBITS else "data"


def sections(path: str | Path) -> list[Section]:
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path}: not an ELF file")
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    if wide:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
        header = order + "IIQQQQIIQQ"
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x2E)
        header = order + "IIIIIIIIII"
    rows = [struct.unpack_from(header, data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = rows[shstrndx][4]

    def name(offset: int) -> str:
        start = names_offset + offset
        return data[start : data.index(b"\0", start)].decode("ascii", "replace")

    return [Section(name(r[0]), r[1], r[2], r[5]) for r in rows]


def sizes(path: str | Path) -> dict[str, int]:
    """Bytes of text, rodata, data and bss; flash = text + rodata + data (its initial values), ram = data + bss."""
    total = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for section in sections(path):
        if section.kind:
            total[section.kind] += section.size
    total["flash"] = total["text"] + total["rodata"] + total["data"]
    total["ram"] = total["data"] + total["bss"]
    return total
