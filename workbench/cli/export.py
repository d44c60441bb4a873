"""``bnn-workbench export MODEL -o OUT [--target bnn|c]``: pack a run's checkpoint into a .bnn file, or write a run
or a .bnn file as a portable C99 library (docs/DEPLOY.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from workbench.core.data import DataError, load_run_data
from workbench.deploy import bnnfile
from workbench.deploy.c_export import export_c
from workbench.deploy.engine import raw_inputs
from workbench.deploy.packed import PackedModel
from workbench.runs.store import RunStore


def add_parser(commands) -> None:
    parser = commands.add_parser("export", help="pack a trained run into a .bnn file, or export it as C")
    parser.add_argument("model", metavar="RUN", help="a run id; with --target c also a .bnn file")
    parser.add_argument("-o", "--output", required=True, help="the .bnn file (--target bnn) or the folder (--target c)")
    parser.add_argument(
        "--target",
        choices=("bnn", "c"),
        default="bnn",
        help="bnn: the .bnn file (default); c: a C99 library <name>.h/.c with a Makefile",
    )
    parser.add_argument("--name", help="--target c: the C name of the model (default: from the network's name)")
    parser.set_defaults(handler=run)


def is_bnn_file(model: str) -> bool:
    return model.endswith(".bnn") or Path(model).is_file()


def load_model(model: str, runs_dir: str | None) -> tuple[PackedModel, str]:
    """A .bnn file, or a run packed now: (packed model, where it came from)."""
    if is_bnn_file(model):
        return bnnfile.load(model), Path(model).name
    # lazy: torch loads only for the command that packs a run
    from workbench.runs.trained import pack_run

    return pack_run(model, store=RunStore(runs_dir)), f"run {model}"


def sample_inputs(packed: PackedModel, count: int) -> tuple[np.ndarray | None, str]:
    """Up to ``count`` uint8 test inputs of the data the model was trained on (its run's test split), or None."""
    training = packed.meta.get("training") or {}
    if not training.get("data_ref") or not training.get("training_spec"):
        return None, "the model names no training data"
    try:
        dataset = load_run_data(training["data_ref"], training["training_spec"])
    except (DataError, ValueError, OSError) as error:
        return None, f"its data {training['data_ref']!r} did not load: {error}"
    x = raw_inputs(dataset.x_test[:count], dataset.preprocessing)
    if x.dtype != np.uint8 or not len(x):
        return None, f"the test inputs of {training['data_ref']!r} are not uint8 raw values"
    return x, f"the test split of {training['data_ref']!r}"


def run(args: argparse.Namespace) -> int:
    if args.target == "c":
        return _export_c(args)
    if is_bnn_file(args.model):
        raise ValueError(f"{args.model} is a file, not a run id: --target bnn packs a run (--target c exports a .bnn)")
    # lazy: torch loads only for the command that packs
    from workbench.runs.trained import pack_run

    packed = pack_run(args.model, store=RunStore(args.runs_dir))
    size = bnnfile.save(packed, args.output)
    binary = sum(1 for layer in packed.layers if layer.op.startswith(("binary_", "input_")))
    print(f"wrote {args.output}: {size} bytes, {len(packed.layers)} ops ({binary} binary layers)")
    return 0


def _export_c(args: argparse.Namespace) -> int:
    packed, source = load_model(args.model, args.runs_dir)
    inputs, which = sample_inputs(packed, 1)
    library = export_c(
        packed, args.output, name=args.name, selftest_input=None if inputs is None else inputs[0], source=source
    )
    name, c_bytes = library.name, len(library.files[f"{library.name}.c"].encode())
    scores = "int32 dot products" if library.scores_are_dots else "float32 logits"
    selftest = f"the first test input of {which}" if inputs is not None else f"seeded random ({which})"
    print(
        f"wrote {args.output}/: {name}.h, {name}.c ({c_bytes:,} bytes of C), {name}_selftest.c, main.c, Makefile, "
        f"cortex_m/\n  weights {library.weight_bytes:,} B (flash), arena {library.arena_bytes:,} B (RAM), "
        f"scores: {scores}\n  self-test input: {selftest}\n"
        f"  build: make -C {args.output} && {args.output}/classify --selftest"
    )
    return 0
