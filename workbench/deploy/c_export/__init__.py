"""Export a packed model as a portable C99 library, bit-exact with the engine (docs/DEPLOY.md).

``export_c(model, folder)`` writes ``<name>.h``, ``<name>.c`` (weights as const arrays, one static arena),
``<name>_selftest.c``, an example ``main.c``, a ``Makefile`` for every target of ``targets.TARGETS`` and
``cortex_m/`` (startup, linker scripts and the QEMU semihosting harness). ``targets`` builds, runs and measures them.
No torch here: a .bnn file and a C compiler are all it takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.deploy import bnnfile
from workbench.deploy.c_export.generator import (
    CExportError,
    CLibrary,
    c_name,
    fill,
    generate,
    layout,
    reference_scores,
)
from workbench.deploy.c_export.targets import TARGETS, BuildError, Footprint, RunResult, Target, makefile, target
from workbench.deploy.packed import PackedModel

__all__ = [
    "CExportError",
    "CLibrary",
    "BuildError",
    "Footprint",
    "RunResult",
    "TARGETS",
    "Target",
    "c_name",
    "export_c",
    "generate",
    "reference_scores",
    "target",
]

_TEMPLATES = Path(__file__).with_name("templates")


def export_c(
    model: PackedModel | str | Path,
    folder: str | Path,
    name: str | None = None,
    selftest_input: np.ndarray | None = None,
    source: str = "",
) -> CLibrary:
    """Write the C library of a packed model (or a .bnn file) and its build files into ``folder``."""
    if not isinstance(model, PackedModel):
        source = source or Path(model).name
        model = bnnfile.load(model)
    library = generate(model, name, selftest_input, source)
    folder = Path(folder)
    (folder / "cortex_m").mkdir(parents=True, exist_ok=True)
    values = dict(name=library.name, NAME=library.name.upper(), layout=layout(library.input_shape))
    files = dict(library.files)
    files["main.c"] = fill((_TEMPLATES / "main.c").read_text(), values)
    files["Makefile"] = makefile(library.name)
    for part in ("startup.c", "semihost.h"):
        files[f"cortex_m/{part}"] = (_TEMPLATES / "cortex_m" / part).read_text()
    files["cortex_m/harness.c"] = fill((_TEMPLATES / "cortex_m" / "harness.c").read_text(), values)
    for t in TARGETS.values():
        if t.bare_metal:
            files[f"cortex_m/{t.name}.ld"] = fill(
                (_TEMPLATES / "cortex_m" / "board.ld").read_text(),
                dict(board=f"QEMU {t.machine}", cpu=t.cpu, flash=t.flash, ram=t.ram),
            )
    for relative, text in files.items():
        (folder / relative).write_text(text, encoding="utf-8")
    library.files = files
    return library
