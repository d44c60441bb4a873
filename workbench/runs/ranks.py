"""Start a distributed run's processes with PyTorch's own launcher, torchrun, and say how they ended.

The worker of a run whose training spec has ``processes: N`` (N > 1) keeps the run's lease and heartbeat and
starts ``python -m torch.distributed.run --standalone --nproc-per-node N -m workbench.cli worker RUN_ID``;
each of those processes finds RANK / WORLD_SIZE in its environment and trains its share (workbench.runs.worker,
workbench.train.distributed). torchrun stops every rank when one fails; its summary names the rank, the exit
code and the signal, which becomes the run's error. On several machines, start the same module with torchrun
yourself (docs/DISTRIBUTED.md).
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading

TAIL_LINES = 200  # what is kept of torchrun's output to explain a failure
_SUMMARY = re.compile(r"^\s*(rank|exitcode|traceback)\s*:\s*(.+?)\s*$")


def torchrun_command(runs_dir, run_id: str, processes: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "workbench.cli",
        "--runs-dir",
        str(runs_dir),
        "worker",
        run_id,
    ]


def launch_ranks(runs_dir, run_id: str, processes: int, env: dict | None = None) -> str | None:
    """Run the ranks to their end; None when torchrun exits 0, else a one-paragraph reason naming the rank."""
    process = subprocess.Popen(
        torchrun_command(runs_dir, run_id, processes),
        env=dict(os.environ, **(env or {})),
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    reader = threading.Thread(target=_tee, args=(process.stderr, tail), daemon=True)
    reader.start()
    code = process.wait()
    reader.join(timeout=5)
    return None if code == 0 else failure_text(code, list(tail), processes)


def failure_text(code: int, lines: list[str], processes: int) -> str:
    """The run's error from torchrun's exit code and its failure summary ("rank : 1", "exitcode : -9").

    The cause is the rank that a signal ended (killed, out of memory: not torchrun's own SIGTERM to the others),
    else torchrun's "Root Cause" block: when one rank is killed, another often notices the broken connection
    and exits with an error before torchrun notices the killed one, and becomes torchrun's "first failure".
    """
    blocks, current, in_root = [], None, False
    for line in lines:
        in_root = in_root or "Root Cause" in line
        match = _SUMMARY.match(line)
        if match is None:
            continue
        if match.group(1) == "rank":
            current = {"root": in_root}
            blocks.append(current)
        if current is not None:
            current.setdefault(match.group(1), match.group(2))
    signalled = [b for b in blocks if _signal_of(b.get("exitcode", "")) not in (None, signal.SIGTERM)]
    roots = [b for b in blocks if b["root"]]
    cause = (signalled or roots or blocks or [None])[0]
    if cause is not None:
        exit_code = cause.get("exitcode", "?").split()[0]
        reason = f"rank {cause['rank'].split()[0]} of {processes} failed (exit code {_with_signal(exit_code)})"
        if cause.get("traceback", "<N/A>") != "<N/A>":
            reason += f": {cause['traceback']}"
    else:
        reason = f"torchrun exited with code {_with_signal(str(code))}"
    return f"distributed training failed: {reason}\n" + "\n".join(lines[-12:])


def _signal_of(exit_code: str):
    try:
        value = int(exit_code.split()[0])
    except (ValueError, IndexError):
        return None
    return signal.Signals(-value) if value < 0 else None


def _with_signal(code: str) -> str:
    """ "-9" -> "-9, SIGKILL": a negative exit code is the signal that ended the process."""
    try:
        return f"{code}, {signal.Signals(-int(code)).name}" if int(code) < 0 else code
    except ValueError:
        return code


def _tee(stream, tail) -> None:
    """Pass torchrun's stderr through (the progress bar, warnings) and keep its last lines."""
    for line in stream:
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))
    sys.stderr.flush()


def _die_with_parent() -> None:
    """torchrun (and through it every rank) gets SIGTERM if the worker that started it dies, so no rank trains
    on unseen after its run was marked interrupted."""
    import ctypes  # lazy: only in the child, between fork and exec

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
