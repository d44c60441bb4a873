"""``bnn-workbench footprint MODEL [--target T ...] [--images N]``: export a run or a .bnn file as C, build it for each
target, run it on test inputs (QEMU for AArch64 and the Cortex-M boards), check it against the engine and print
flash, RAM (data + bss + measured stack peak) and emulated instructions per inference."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from workbench.cli.export import load_model, sample_inputs
from workbench.deploy.c_export import TARGETS, BuildError, export_c
from workbench.deploy.c_export.measure import measure


def add_parser(commands) -> None:
    parser = commands.add_parser("footprint", help="flash, RAM and instructions per inference of the model as C")
    parser.add_argument("model", metavar="RUN", help="a run id or a .bnn file")
    parser.add_argument(
        "--target",
        action="append",
        choices=list(TARGETS),
        dest="targets",
        help="repeatable; default cortex-m4 (QEMU mps2-an386)",
    )
    parser.add_argument("--images", type=int, default=20, help="test inputs to run and compare (default 20)")
    parser.add_argument("--keep", help="build in this folder and keep it (default: a temporary folder)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.images < 1:
        raise ValueError(f"--images must be at least 1, got {args.images}")
    packed, source = load_model(args.model, args.runs_dir)
    inputs, which = sample_inputs(packed, args.images)
    if inputs is None:
        inputs = np.random.default_rng(0).integers(0, 256, (args.images, *packed.input_shape), dtype=np.uint8)
        which = f"seeded random inputs ({which})"
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bnn-footprint-"))
    failed = 0
    try:
        library = export_c(packed, folder, selftest_input=inputs[0], source=source)
        print(
            f"{source}: {library.name}, weights {library.weight_bytes:,} B, arena {library.arena_bytes:,} B; "
            f"{len(inputs)} inputs from {which}"
        )
        for name in args.targets or ["cortex-m4"]:
            try:
                result = measure(packed, library, folder, name, inputs)
            except (BuildError, ValueError) as error:
                print(f"target {name}: {error}")
                failed += 1
                continue
            print("\n".join(result.lines()))
            failed += not result.agreement.exact and library.scores_are_dots
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0
