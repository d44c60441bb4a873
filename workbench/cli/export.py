"""``bnn-workbench export RUN_ID -o model.bnn``: pack a run's checkpoint into a .bnn file."""

from __future__ import annotations

import argparse

from workbench.deploy import bnnfile
from workbench.runs.store import RunStore


def add_parser(commands) -> None:
    parser = commands.add_parser("export", help="pack a trained run into a .bnn file")
    parser.add_argument("run_id")
    parser.add_argument("-o", "--output", required=True, help="the .bnn file to write")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # lazy: torch loads only for the command that packs
    from workbench.runs.trained import pack_run

    packed = pack_run(args.run_id, store=RunStore(args.runs_dir))
    size = bnnfile.save(packed, args.output)
    binary = sum(1 for layer in packed.layers if layer.op.startswith(("binary_", "input_")))
    print(f"wrote {args.output}: {size} bytes, {len(packed.layers)} ops ({binary} binary layers)")
    return 0
