"""``bnn-workbench train SPEC --data REF``: train one run in the foreground, with a progress bar."""

from __future__ import annotations

import argparse
import json
import os
import sys

from workbench.core import presets
from workbench.core.data import describe, load_run_data
from workbench.core.spec import (
    default_training_spec,
    float_twin,
    training_warnings,
    validate_spec,
    validate_training_spec,
)
from workbench.runs.launch import create_run, prepare_resume
from workbench.runs.store import RunStore


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train a network spec in the foreground, with a progress bar")
    parser.add_argument("spec", help="network spec JSON file, or a preset name (see docs/SPEC.md)")
    parser.add_argument(
        "--data",
        required=True,
        help="dataset: mnist-sample, moons, circles, spirals, xor, mnist:DIR (IDX files), cifar10:PATH "
        "(cifar-10-binary.tar.gz or its folder), or a .npz/.csv/.idx file",
    )
    parser.add_argument(
        "--training", help="training spec JSON file, or a recipe: vgg-small-cifar10 (defaults per docs/SPEC.md)"
    )
    parser.add_argument("--epochs", type=int, help="override the training spec's epochs")
    parser.add_argument(
        "--validation-split",
        type=float,
        metavar="FRACTION",
        help="override the training spec's validation share of the training data (0 for none)",
    )
    parser.add_argument(
        "--test-split",
        type=float,
        metavar="FRACTION",
        help="override the test share split off data that comes as one set (a .csv, .npz or .idx)",
    )
    parser.add_argument(
        "--float-twin",
        action="store_true",
        help="train the spec's float twin (every quantizer off, sign activations -> hardtanh)",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train on N processes with DistributedDataParallel (torchrun; sets the training spec's 'processes')",
    )
    parser.add_argument(
        "--device", help="where to train: auto (a GPU if there is one), cpu, cuda, cuda:N or mps (sets 'device')"
    )
    parser.add_argument(
        "--create-only",
        action="store_true",
        help="create the run (queued) and print its id without training: for torchrun on several machines",
    )
    parser.add_argument("--name", help="a name for the run")
    parser.add_argument("--resume", metavar="RUN_ID", help="resume a stopped or interrupted run")
    parser.set_defaults(handler=run)


def read_json(path: str, what: str) -> dict:
    """A JSON object from a file, or a ValueError naming the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {path}: invalid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} {path}: expected a JSON object, got {type(value).__name__}")
    return value


def network_spec(argument: str) -> dict:
    """A spec JSON file, or a preset name."""
    if argument.endswith(".json") or os.path.sep in argument or os.path.exists(argument):
        return read_json(argument, "network spec")
    if argument not in presets.PRESETS:
        raise ValueError(
            f"network spec {argument!r}: no such file, and not a preset (presets: {', '.join(sorted(presets.PRESETS))})"
        )
    return presets.preset(argument)


def training_spec(argument: str) -> dict:
    """A training spec JSON file, or a training recipe's name (e.g. vgg-small-cifar10)."""
    if argument in presets.TRAINING_PRESETS and not os.path.exists(argument):
        return presets.training_preset(argument)
    return read_json(argument, "training spec")


def _override(training: dict, args: argparse.Namespace) -> None:
    """The command line's values win over the training spec file's."""
    for option, field in (
        ("epochs", "epochs"),
        ("validation_split", "validation_split"),
        ("test_split", "test_split"),
        ("nproc", "processes"),
        ("device", "device"),
    ):
        if getattr(args, option) is not None:
            training[field] = getattr(args, option)


def run(args: argparse.Namespace) -> int:
    # lazy: torch loads only for the command that trains
    from workbench.runs.worker import run_worker

    store = RunStore(args.runs_dir)
    if args.resume:
        record = store.get_run(args.resume)
        training = training_spec(args.training) if args.training else dict(record.training_spec)
        if args.validation_split is not None or args.test_split is not None or args.float_twin:
            raise ValueError(
                f"--resume {args.resume}: the run's network and data split are fixed; only --epochs "
                f"and --training can change when resuming"
            )
        _override(training, args)
        data_ref = record.data_ref
        dataset = load_run_data(data_ref, record.training_spec)  # before the run is queued again
        prepare_resume(store, args.resume, training)
        run_id = args.resume
    else:
        network = network_spec(args.spec)
        if args.float_twin:
            network = float_twin(validate_spec(network))
        training = training_spec(args.training) if args.training else default_training_spec()
        _override(training, args)
        training = validate_training_spec(training)
        data_ref = args.data
        dataset = load_run_data(data_ref, training)
        run_id = create_run(store, network, training, data_ref, args.name, dataset=dataset)
    print(f"run {run_id} in {store.runs_dir}\ndata: {describe(dataset)}", flush=True)
    if args.create_only:
        print(f"queued; train it with: torchrun ... -m workbench.cli --runs-dir {store.runs_dir} worker {run_id}")
        return 0
    record = store.get_run(run_id)
    for warning in training_warnings(
        record.training_spec, n_train=len(dataset.x_train), network_spec=record.network_spec
    ):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        status = run_worker(run_id, store.runs_dir, dataset=dataset, progress=True)
    except KeyboardInterrupt:
        print(
            f"run {run_id} stopped; resume with: bnn-workbench train {args.spec} --data {data_ref} --resume {run_id}",
            file=sys.stderr,
        )
        return 130
    record = store.get_run(run_id)
    best = "-" if record.best_val_accuracy is None else f"{record.best_val_accuracy:.4f}"
    test = "-" if record.test_accuracy is None else f"{record.test_accuracy:.4f}"
    print(
        f"run {run_id} {status}: {record.epochs_done} epochs; exported checkpoint: {record.best_checkpoint_label}; "
        f"its val accuracy {best}, test accuracy {test}"
    )
    return 0 if status in ("completed", "stopped") else 1
