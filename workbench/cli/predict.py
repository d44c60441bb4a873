"""``bnn-workbench predict MODEL.bnn --data REF [--run RUN]``: accuracy on the XNOR engine, and with ``--run``
the agreement with the run's torch model (predictions and every hidden bit)."""

from __future__ import annotations

import argparse
import time

from workbench.core.data import BUILTIN_DATASETS, load_dataset, load_run_data
from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine, raw_inputs
from workbench.runs.store import RunStore


def add_parser(commands) -> None:
    parser = commands.add_parser("predict", help="run a .bnn file on data with the XNOR engine")
    parser.add_argument("model", help="a .bnn file")
    parser.add_argument("--data", required=True, help="dataset reference as for 'train'")
    parser.add_argument("--run", help="the run the model came from, to report agreement with torch")
    parser.add_argument("--threads", type=int, default=None)
    parser.set_defaults(handler=run)


def _dataset(args: argparse.Namespace, packed) -> tuple:
    """The data split as the model's run split it (from --run, else from the file's own header when it names
    the same data), so that the test rows were never trained on; else the default split, said so."""
    if args.run:
        record = RunStore(args.runs_dir).get_run(args.run)
        return load_run_data(args.data, record.training_spec), f"the test split of run {args.run}"
    training = packed.meta.get("training") or {}
    if training.get("data_ref") == args.data and training.get("training_spec"):
        return load_run_data(args.data, training["training_spec"]), "the test split the model was trained with"
    dataset = load_dataset(args.data)
    if args.data in BUILTIN_DATASETS or args.data.startswith("mnist:"):
        return dataset, "its test set"
    return dataset, (
        "a default split (seed 0, stratified 20%): the model was not trained on this data reference, "
        "so some of these rows may be training rows; pass --run to use the run's split"
    )


def run(args: argparse.Namespace) -> int:
    engine = Engine(bnnfile.load(args.model), threads=args.threads)
    dataset, which = _dataset(args, engine.packed)
    x = raw_inputs(dataset.x_test, dataset.preprocessing)
    start = time.perf_counter()
    predictions = engine.predict(x)
    seconds = time.perf_counter() - start
    accuracy = float((predictions == dataset.y_test).mean()) if len(x) else float("nan")
    print(
        f"{args.model}: {len(x)} test samples of {args.data}, accuracy {accuracy:.4f} "
        f"({seconds * 1e3:.1f} ms, {seconds / max(len(x), 1) * 1e6:.1f} us/sample); samples: {which}"
    )
    if args.run:
        # lazy: torch loads only with --run
        from workbench.runs.trained import load_trained_model
        from workbench.train.agreement import compare

        model, _ = load_trained_model(args.run, store=RunStore(args.runs_dir))
        result = compare(model, engine.packed, dataset.x_test, dataset.y_test, threads=args.threads)
        agreement = 1.0 - result["disagreements"] / len(x) if len(x) else float("nan")
        print(
            f"agreement with the torch model of run {args.run}: {agreement:.4f} "
            f"({result['disagreements']} of {len(x)} predictions differ)"
        )
        for row in result["layers"]:
            print(
                f"  hidden bits into {row['layer']}: {row['differing']} of {row['bits']} differ "
                f"({row['near_zero']} torch pre-activations within 1e-5 of 0)"
            )
    return 0
