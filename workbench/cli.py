"""The ``bnn-workbench`` command: one parser, each subcommand a thin call into the library.

Subcommand bodies live next to the code they drive (``commands`` functions in the library modules),
imported lazily so that ``bnn-workbench --help`` starts fast and a command that needs no torch never
imports it.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> "module:function"; each function takes the parsed argparse.Namespace and returns an exit code.
_HANDLERS = {
    "train": "workbench.worker:cli_train",
    "runs list": "workbench.store:cli_runs_list",
    "runs show": "workbench.store:cli_runs_show",
    "bench kernels": "workbench.bench:cli_bench_kernels",
    "bench training": "workbench.bench:cli_bench_training",
    "bench model": "workbench.reports:cli_bench_model",
    "export": "workbench.packing:cli_export",
    "predict": "workbench.engine:cli_predict",
    "app": "workbench.cli:cli_app",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnn-workbench",
        description="Design, train, inspect and ship binary neural networks.",
    )
    parser.add_argument("--runs-dir", help="run store folder (default: $BNN_WORKBENCH_RUNS or ~/.bnn-workbench/runs)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a network spec in the foreground, with a progress bar")
    train.add_argument("spec", help="network spec JSON file, or a preset name (see docs/SPEC.md)")
    train.add_argument("--data", required=True, help="dataset: mnist-sample, moons, circles, spirals, xor, "
                       "mnist:DIR (IDX files), or a .npz/.csv/.idx file")
    train.add_argument("--training", help="training spec JSON file (defaults per docs/SPEC.md)")
    train.add_argument("--epochs", type=int, help="override the training spec's epochs")
    train.add_argument("--name", help="a name for the run")
    train.add_argument("--resume", metavar="RUN_ID", help="resume a stopped or interrupted run")

    runs = commands.add_parser("runs", help="list and show runs in the run store")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    runs_commands.add_parser("list", help="one line per run")
    show = runs_commands.add_parser("show", help="a run's specs, status and metrics")
    show.add_argument("run_id")

    bench = commands.add_parser("bench", help="measure: 'bench kernels', 'bench training', 'bench MODEL.bnn' or 'bench PRESET'")
    bench.add_argument("target", help="'kernels', 'training', a .bnn file, or a preset name (random weights)")
    bench.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    bench.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="batch sizes (bench MODEL.bnn)")
    bench.add_argument("--mnist", help="folder with the MNIST IDX files (bench training; default $BNN_MNIST_DIR)")
    bench.add_argument("--minutes", type=float, default=10.0, help="training budget per model (bench training)")
    bench.add_argument("--quick", action="store_true", help="smaller shapes / fewer repeats, for a smoke run")

    export = commands.add_parser("export", help="pack a trained run into a .bnn file")
    export.add_argument("run_id")
    export.add_argument("-o", "--output", required=True, help="the .bnn file to write")

    predict = commands.add_parser("predict", help="run a .bnn file on data with the XNOR engine")
    predict.add_argument("model", help="a .bnn file")
    predict.add_argument("--data", required=True, help="dataset reference as for 'train'")
    predict.add_argument("--run", help="the run the model came from, to report agreement with torch")
    predict.add_argument("--threads", type=int, default=None)

    app = commands.add_parser("app", help="start the Streamlit app on 127.0.0.1")
    app.add_argument("--port", type=int, default=8501)
    return parser


def cli_app(args: argparse.Namespace) -> int:
    """Serve app.py on 127.0.0.1 from this process, with this Python's installed workbench.

    Streamlit treats a ``pages/`` folder beside the entry script as old-style pages until the first
    ``st.navigation`` call of the server's life: a deep link as the first request (a reloaded
    ``/train?run=...`` after a restart) would run ``pages/train.py`` on its own, without the app's
    navigation. Declaring up front that the app navigates with ``st.navigation`` closes that gap.
    """
    import os
    import pathlib

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli as streamlit_cli

    if args.runs_dir:
        os.environ["BNN_WORKBENCH_RUNS"] = str(pathlib.Path(args.runs_dir).resolve())
    entry = pathlib.Path(__file__).resolve().parent.parent / "app.py"
    PagesManager.uses_pages_directory = False
    # Pages run in this process: import what Home needs now, so the first visitor does not wait for it.
    importlib.import_module("workbench.ui.figures")
    importlib.import_module("workbench.ui.widgets")
    # The settings of .streamlit/config.toml, given here so that they hold from any working directory; and no
    # file watcher: it would watch the whole checkout (.venv included) for edits a user never makes.
    sys.argv = ["streamlit", "run", str(entry), "--server.address", "127.0.0.1", "--server.port", str(args.port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none", "--server.maxUploadSize", "200",
                "--client.toolbarMode", "minimal"]
    return streamlit_cli.main(prog_name="streamlit")


def _handler_key(args: argparse.Namespace) -> str:
    if args.command == "runs":
        return f"runs {args.runs_command}"
    if args.command == "bench":
        return f"bench {args.target}" if args.target in ("kernels", "training") else "bench model"
    return args.command


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, function_name = _HANDLERS[_handler_key(args)].split(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as error:
        # Library errors are written to name the file, field or layer: show them without a traceback.
        print(f"bnn-workbench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
