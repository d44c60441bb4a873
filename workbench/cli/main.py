"""The top-level parser: global options, then one subcommand module per command."""

from __future__ import annotations

import argparse
import sys

from workbench.cli import app, bench, export, footprint, predict, runs, train, worker

COMMANDS = (train, runs, export, predict, footprint, bench, app, worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnn-workbench",
        description="Design, train, inspect and ship binary neural networks.",
    )
    parser.add_argument("--runs-dir", help="run store folder (default: $BNN_WORKBENCH_RUNS or ~/.bnn-workbench/runs)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as error:
        # Library errors are written to name the file, field or layer: show them without a traceback.
        print(f"bnn-workbench: error: {error}", file=sys.stderr)
        return 2
