"""``bnn-workbench worker RUN_ID``: the worker process that ``start_run`` launches (not listed in --help)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback


def add_parser(commands) -> None:
    parser = commands.add_parser("worker", description="train one queued run of the run store to its end")
    parser.add_argument("run_id")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # lazy: torch loads only in the worker process
    from workbench.runs.worker import run_worker

    try:
        status = run_worker(args.run_id, args.runs_dir)
    except Exception:
        traceback.print_exc()  # into the run's worker.log; the store has the message and the tail
        return _end_rank(1)
    if os.environ.get("RANK", "0") == "0":  # one line per run, not one per distributed rank
        print(f"run {args.run_id} {status}", flush=True)
    return _end_rank(0)


def _end_rank(code: int) -> int:
    """A torchrun rank ends here, its work written and its process group left: os._exit skips the interpreter's
    teardown, where gloo's threads now and then aborted a finished rank ("terminate called without an active
    exception", SIGABRT), which turned a completed run's torchrun exit code into a failure."""
    if "RANK" not in os.environ:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
