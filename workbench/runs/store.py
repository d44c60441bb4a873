"""The run store: one SQLite database (WAL) in a runs folder, with each run's checkpoints as files beside it.

The worker process writes (status, heartbeat, metrics, histograms, checkpoints); the app and the CLI read.
WAL mode lets readers run while the writer commits, and the writer batches per-batch metrics so that it
commits at most a few times a second. Metrics are JSON rows (one per batch or epoch), so any key a
reporter sends is kept without a schema change. Control requests (pause/resume/stop) go through the
``request`` column and are read by the worker between batches.

A run whose worker vanished (SIGKILL, power loss) still says "running" in the table; reading it checks the
worker's pid and heartbeat and reports it as "interrupted", with everything written so far intact.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

# Every status a run can read as; the lists below are the only other place statuses are grouped.
STATUSES = ("queued", "running", "paused", "stopped", "completed", "failed", "interrupted", "damaged")
ACTIVE = ("queued", "running", "paused")  # a worker owns the run, or is about to
RESUMABLE = ("stopped", "interrupted", "failed")  # ended early: resuming trains on from the last checkpoint
REQUESTS = ("pause", "resume", "stop")
HEARTBEAT_SECONDS = 2.0  # how often a worker says it is alive
STALE_SECONDS = 60.0  # a live pid whose heartbeat is this old is not our worker any more
KEEP_EPOCHS = 1  # epoch checkpoints kept per run (the last), besides best
FLUSH_SECONDS = 0.25  # per-batch metrics are committed at most this often


def max_workers() -> int:
    """How many runs of one store train at once; more wait, queued ($BNN_WORKBENCH_MAX_WORKERS, default: cores)."""
    value = os.environ.get("BNN_WORKBENCH_MAX_WORKERS", "")
    return int(value) if value.isdigit() and int(value) > 0 else max(os.cpu_count() or 1, 1)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, network_spec TEXT NOT NULL, training_spec TEXT NOT NULL,
    data_ref TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL,
    error TEXT, pid INTEGER, heartbeat_at REAL, request TEXT, epochs_done INTEGER NOT NULL DEFAULT 0,
    best_val_accuracy REAL, test_accuracy REAL, parent_id TEXT, best_epoch INTEGER, data_summary TEXT, owner TEXT);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, level TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL,
    time REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, level, step);
CREATE TABLE IF NOT EXISTS histograms (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run_id, epoch));
"""
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # what create_run names a run (and its folder)
# Columns added after the first release: (name, SQL type), added to an older runs table when it is opened.
_ADDED_COLUMNS = (("best_epoch", "INTEGER"), ("data_summary", "TEXT"), ("owner", "TEXT"))


class RunNotFoundError(ValueError, LookupError):
    """No run with that id in this store."""


class RunBusyError(ValueError):
    """Another live worker holds the run's lease."""


class RunStoreDamagedError(ValueError):
    """The runs database cannot be read; it is reported with its path and never overwritten."""


class RunStoreGoneError(RuntimeError):
    """The run store's database was removed while a worker was writing to it (its folder was deleted)."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("BNN_WORKBENCH_RUNS") or Path.home() / ".bnn-workbench" / "runs")


@dataclass
class RunRecord:
    """One row of the runs table; ``status`` is as read (a dead worker's run reads "interrupted")."""

    id: str
    name: str
    network_spec: dict
    training_spec: dict
    data_ref: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    pid: int | None
    epochs_done: int
    best_val_accuracy: float | None
    test_accuracy: float | None
    parent_id: str | None
    heartbeat_at: float | None = None
    request: str | None = None
    best_epoch: int | None = None  # the epoch of the "best" checkpoint: the one export packs and test_accuracy measures
    data_summary: str | None = None  # what training saw: sizes, shape, classes, preprocessing (core.data.describe)
    owner: str | None = None  # the lease: "pid:start time" of the worker training the run (RunStore.take_lease)

    @property
    def chosen_by_validation(self) -> bool:
        """Whether the best checkpoint was chosen by validation accuracy (else it is the last epoch)."""
        return float(self.training_spec.get("validation_split") or 0) > 0

    @property
    def best_checkpoint_label(self) -> str:
        """Which model the run's test accuracy and its export are: e.g. "epoch 4 of 6, best validation accuracy"."""
        if self.best_epoch is None:
            return "no checkpoint yet"
        why = "best validation accuracy" if self.chosen_by_validation else "the last epoch (no validation split)"
        return f"epoch {self.best_epoch} of {self.epochs_done}, {why}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (a zombie, killed but not yet reaped, counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_identity(pid: int) -> str:
    """ "pid:start time" (clock ticks since boot, from /proc): unique to one process, unlike a pid alone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return f"{pid}:{handle.read().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return f"{pid}:?"  # no /proc (macOS): the pid alone, with pid_alive


def owner_alive(owner: str) -> bool:
    """Whether the process that took a lease (``process_identity``) is still that live process."""
    pid = int(owner.split(":")[0])
    return pid_alive(pid) and (owner.endswith(":?") or process_identity(pid) == owner)


class RunStore:
    """Runs, metrics, histograms and checkpoints under ``runs_dir`` (default $BNN_WORKBENCH_RUNS, else
    ~/.bnn-workbench/runs).

    Safe to share between threads: each thread gets its own SQLite connection.
    """

    def __init__(self, runs_dir: str | os.PathLike | None = None):
        self.runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.runs_dir / "runs.db"
        self._local = threading.local()
        if self.db_path.exists() and self.db_path.stat().st_size == 0 and any(self.run_folders()):
            raise RunStoreDamagedError(
                f"{self.db_path} is empty but {len(self.run_folders())} run folders are beside it: the database "
                f"was lost or truncated; it is left as it is (move it aside to start a new history)"
            )
        try:
            self._db().executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self.close()
            raise RunStoreDamagedError(
                f"{self.db_path}: not a readable run store database ({error}); it is left "
                f"as it is (move it aside to start a new history)"
            ) from None
        present = {row[1] for row in self._execute("PRAGMA table_info(runs)")}
        for column, kind in _ADDED_COLUMNS:
            if column not in present:
                self._execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

    # ------------------------------------------------------------ plumbing

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def _execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self._db().execute(sql, params)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def log_path(self, run_id: str) -> Path:
        """The worker's stderr/stdout log."""
        return self.run_dir(run_id) / "worker.log"

    # ------------------------------------------------------------ runs

    def create_run(
        self, name: str | None, network_spec: dict, training_spec: dict, data_ref: str, parent_id: str | None = None
    ) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        name = name or f"{network_spec.get('name', 'network')} on {data_ref}"
        self._execute(
            "INSERT INTO runs (id, name, network_spec, training_spec, data_ref, status, created_at, parent_id)"
            " VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
            (run_id, name, json.dumps(network_spec), json.dumps(training_spec), data_ref, time.time(), parent_id),
        )
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def run_folders(self) -> list[Path]:
        """The folders beside the database that are named like runs."""
        return [path for path in self.runs_dir.iterdir() if path.is_dir() and _RUN_ID.fullmatch(path.name)]

    def _record(self, row: sqlite3.Row | tuple) -> RunRecord:
        values = dict(zip([f.name for f in fields(RunRecord)], row))
        try:
            values["network_spec"] = _json_object(values["network_spec"])
            values["training_spec"] = _json_object(values["training_spec"])
        except ValueError as error:
            # one bad row must not hide the others: it reads as "damaged", with the reason
            values.update(
                network_spec={},
                training_spec={},
                status="damaged",
                pid=None,
                error=f"this run's row in {self.db_path} is damaged: {error}",
            )
            return RunRecord(**values)
        record = RunRecord(**values)
        if record.status in ACTIVE and not self._worker_alive(record):
            if record.status == "queued":
                record.status = "failed"
                record.error = record.error or f"the worker exited before it started; see {self.log_path(record.id)}"
            else:
                record.status = "interrupted"
        return record

    @staticmethod
    def _worker_alive(record: RunRecord) -> bool:
        """Whether the run's worker lives: its lease owner (pid and start time) is alive; before a worker takes
        the lease, the launched pid is alive; a run queued without a pid counts as alive for STALE_SECONDS."""
        if record.owner:
            return owner_alive(record.owner)
        if record.pid is None:
            return time.time() - record.created_at < STALE_SECONDS or record.started_at is not None
        last_sign = record.heartbeat_at or record.started_at or record.created_at
        return pid_alive(record.pid) and (record.status == "queued" or time.time() - last_sign <= STALE_SECONDS)

    def take_lease(self, run_id: str, max_workers: int | None = None) -> bool:
        """Make this process the run's one worker, atomically; RunBusyError while another live worker holds it.
        False (nothing taken) while ``max_workers`` other workers are training runs of this store.

        The lease is the owner's pid and process start time, so a live worker holds it however long it pauses,
        and a pid reused by another process after a crash is recognised as not the owner."""
        mine = process_identity(os.getpid())
        db = self._db()
        with _transaction(db):
            row = db.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"run {run_id!r} not found in {self.db_path}")
            if row[0] and row[0] != mine and owner_alive(row[0]):
                raise RunBusyError(
                    f"run {run_id} is being trained by another worker (pid {row[0].split(':')[0]}); "
                    f"a second worker does not start"
                )
            if max_workers is not None and row[0] != mine:
                owners = {
                    owner
                    for (owner,) in db.execute(
                        "SELECT owner FROM runs WHERE owner IS NOT NULL AND status IN ('running', 'paused')"
                    )
                }
                if len({o for o in owners if o != mine and owner_alive(o)}) >= max_workers:
                    return False
            db.execute(
                "UPDATE runs SET owner = ?, pid = ?, heartbeat_at = ? WHERE id = ?",
                (mine, os.getpid(), time.time(), run_id),
            )
        return True

    def release_lease(self, run_id: str) -> None:
        """Give the lease back (a worker ending); nothing to do when the store itself was removed."""
        if not self.db_path.exists():
            return
        self._execute(
            "UPDATE runs SET owner = NULL WHERE id = ? AND owner = ?", (run_id, process_identity(os.getpid()))
        )

    _COLUMNS = ", ".join(f.name for f in fields(RunRecord))

    def get_run(self, run_id: str) -> RunRecord:
        row = self._execute(f"SELECT {self._COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"run {run_id!r} not found in {self.db_path}")
        return self._record(row)

    def list_runs(self) -> list[RunRecord]:
        """All runs, newest first (teacher runs included: they have ``parent_id`` set)."""
        rows = self._execute(f"SELECT {self._COLUMNS} FROM runs ORDER BY created_at DESC, id DESC").fetchall()
        return [self._record(row) for row in rows]

    def update_run(self, run_id: str, **values) -> None:
        """Set columns of a run (worker side: status, pid, times, progress, error)."""
        for key in ("network_spec", "training_spec"):
            if key in values:
                values[key] = json.dumps(values[key])
        unknown = set(values) - {f.name for f in fields(RunRecord)}
        if unknown:
            raise ValueError(f"update_run: unknown column(s) {sorted(unknown)}")
        if "status" in values and values["status"] not in STATUSES:
            raise ValueError(f"update_run: status must be one of {', '.join(STATUSES)}, got {values['status']!r}")
        assignments = ", ".join(f"{key} = ?" for key in values)
        self._execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), run_id))

    def request(self, run_id: str, action: str) -> None:
        """Ask the run's worker to pause, resume or stop; it acts between batches."""
        if action not in REQUESTS:
            raise ValueError(f"request: action must be one of {', '.join(REQUESTS)}, got {action!r}")
        record = self.get_run(run_id)
        if not record.active:
            raise ValueError(f"run {run_id} is {record.status}; only queued, running or paused runs take requests")
        self._execute("UPDATE runs SET request = ? WHERE id = ?", (None if action == "resume" else action, run_id))

    def pending_request(self, run_id: str) -> str | None:
        row = self._execute("SELECT request FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def delete_run(self, run_id: str) -> None:
        """Remove a run, its metrics and its files; a live run must be stopped first."""
        if self.get_run(run_id).active:
            raise ValueError(f"run {run_id} is still active; stop it before deleting it")
        db = self._db()
        with _transaction(db):
            for table, column in (("metrics", "run_id"), ("histograms", "run_id"), ("runs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))
            db.execute("UPDATE runs SET parent_id = NULL WHERE parent_id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # ------------------------------------------------------------ metrics and histograms

    def write_metrics(
        self,
        run_id: str,
        rows: list[tuple[str, int, int, dict]],
        histograms: dict[int, dict] | None = None,
        heartbeat: bool = True,
    ) -> None:
        """Append (level, step, epoch, metrics) rows and histograms in one transaction."""
        now = time.time()
        db = self._db()
        with _transaction(db):
            db.executemany(
                "INSERT INTO metrics (run_id, level, step, epoch, time, data) VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, level, step, epoch, now, json.dumps(data)) for level, step, epoch, data in rows],
            )
            for epoch, data in (histograms or {}).items():
                db.execute(
                    "INSERT OR REPLACE INTO histograms (run_id, epoch, data) VALUES (?, ?, ?)",
                    (run_id, epoch, json.dumps(data)),
                )
            if heartbeat:
                db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (now, run_id))

    def metrics(
        self, run_id: str, level: str = "epoch", since_step: int | None = None, stride: int = 1
    ) -> dict[str, list]:
        """Columns ``step``, ``epoch``, ``time`` and one per metric key (None where a row lacks it).

        For pages that poll a long run: ``since_step`` returns only newer rows, ``stride`` only the rows whose
        step is a multiple of it (a 20,000-batch run read with stride 10 is 2,000 rows).
        """
        if level not in ("epoch", "step"):
            raise ValueError(f"metrics: level must be 'epoch' or 'step', got {level!r}")
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"metrics: stride must be a positive integer, got {stride!r}")
        rows = self._execute(
            "SELECT step, epoch, time, data FROM metrics WHERE run_id = ? AND level = ? AND step > ? AND step % ? = 0"
            " ORDER BY step",
            (run_id, level, -1 if since_step is None else since_step, stride),
        ).fetchall()
        table: dict[str, list] = {
            "step": [row[0] for row in rows],
            "epoch": [row[1] for row in rows],
            "time": [row[2] for row in rows],
        }
        records = [json.loads(row[3]) for row in rows]
        keys = dict.fromkeys(key for record in records for key in record)  # first-seen order
        for key in keys:
            table[key] = [record.get(key) for record in records]
        return table

    def last_step(self, run_id: str, level: str = "step") -> int | None:
        """The newest step with metrics (to choose a stride, or to poll with ``since_step``)."""
        return self._execute(
            "SELECT MAX(step) FROM metrics WHERE run_id = ? AND level = ?", (run_id, level)
        ).fetchone()[0]

    def histograms(self, run_id: str, epoch: int | None = None) -> dict:
        """The per-layer histograms of ``epoch`` (default: the latest); {} when there are none."""
        if epoch is None:
            row = self._execute(
                "SELECT data FROM histograms WHERE run_id = ? ORDER BY epoch DESC LIMIT 1", (run_id,)
            ).fetchone()
        else:
            row = self._execute(
                "SELECT data FROM histograms WHERE run_id = ? AND epoch = ?", (run_id, epoch)
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def histogram_epochs(self, run_id: str) -> list[int]:
        return [
            row[0] for row in self._execute("SELECT epoch FROM histograms WHERE run_id = ? ORDER BY epoch", (run_id,))
        ]

    def truncate(self, run_id: str, epoch: int) -> None:
        """Forget what came after ``epoch`` completed epochs (before resuming from that epoch's checkpoint)."""
        db = self._db()
        row = db.execute(
            "SELECT MAX(step) FROM metrics WHERE run_id = ? AND level = 'epoch' AND epoch <= ?", (run_id, epoch)
        ).fetchone()
        last_step = row[0] if row[0] is not None and epoch > 0 else -1
        with _transaction(db):
            db.execute("DELETE FROM metrics WHERE run_id = ? AND level = 'epoch' AND epoch > ?", (run_id, epoch))
            db.execute("DELETE FROM metrics WHERE run_id = ? AND level = 'step' AND step > ?", (run_id, last_step))
            db.execute("DELETE FROM histograms WHERE run_id = ? AND epoch > ?", (run_id, epoch))

    # ------------------------------------------------------------ checkpoints

    def checkpoint_path(self, run_id: str, which: str | int = "best") -> Path:
        """The checkpoint file for "best", "last" or an epoch number; FileNotFoundError when there is none."""
        folder = self.run_dir(run_id)
        if which == "last":
            epochs = self.checkpoint_epochs(run_id)
            if not epochs:
                raise FileNotFoundError(f"run {run_id} has no checkpoint yet (in {folder})")
            return folder / f"epoch-{epochs[-1]:04d}.safetensors"
        if which == "best":
            path = folder / "best.safetensors"
        elif isinstance(which, int) and not isinstance(which, bool):
            path = folder / f"epoch-{which:04d}.safetensors"
        else:
            raise ValueError(f"checkpoint: which must be 'best', 'last' or an epoch number, got {which!r}")
        if not path.is_file():
            raise FileNotFoundError(f"run {run_id} has no {which} checkpoint ({path} does not exist)")
        return path

    def checkpoint_epochs(self, run_id: str) -> list[int]:
        """Epochs with a checkpoint file, ascending."""
        names = self.run_dir(run_id).glob("epoch-*.safetensors")
        return sorted(int(path.stem.split("-")[1]) for path in names)

    def save_checkpoint(self, run_id: str, checkpoint, is_best: bool) -> Path:
        """Write ``epoch-NNNN.safetensors`` (and ``best.safetensors``), keeping the last KEEP_EPOCHS epochs.

        The best checkpoint is a hard link to its epoch's file where the file system allows it (one copy on disk
        while the last epoch is the best), else a copy."""
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = checkpoint.save(folder / f"epoch-{checkpoint.epoch:04d}.safetensors")
        if is_best:
            partial = folder / "best.safetensors.partial"
            partial.unlink(missing_ok=True)
            try:
                os.link(path, partial)
            except OSError:
                shutil.copyfile(path, partial)
            os.replace(partial, folder / "best.safetensors")
        for old in self.checkpoint_epochs(run_id)[:-KEEP_EPOCHS]:
            (folder / f"epoch-{old:04d}.safetensors").unlink(missing_ok=True)
        return path

    def load_checkpoint(self, run_id: str, which: str | int = "best"):
        """Read a run's checkpoint (a :class:`workbench.train.checkpoint.Checkpoint`; safetensors, no pickle)."""
        # lazy: the store stays torch-free for the pages and commands that only read runs
        from workbench.train.checkpoint import Checkpoint

        return Checkpoint.load(self.checkpoint_path(run_id, which))


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK) on an autocommit connection."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, value, traceback):
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


class MetricsWriter:
    """Buffers per-batch metrics of one run and commits them at most every FLUSH_SECONDS (worker side)."""

    def __init__(self, store: RunStore, run_id: str, flush_seconds: float = FLUSH_SECONDS):
        self.store, self.run_id, self.flush_seconds = store, run_id, flush_seconds
        self._rows: list[tuple[str, int, int, dict]] = []
        self._last_flush = time.monotonic()
        self.last_step = -1

    def step(self, epoch: int, step: int, metrics: dict) -> None:
        self._rows.append(("step", step, epoch, _plain(metrics)))
        self.last_step = max(self.last_step, step)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def epoch(self, epoch: int, metrics: dict, histograms: dict | None = None) -> None:
        """An epoch's row (at the last step seen) and its histograms, committed now with pending batches."""
        self._rows.append(("epoch", max(self.last_step, 0), epoch, _plain(metrics)))
        self.flush({epoch: histograms} if histograms else None)

    def flush(self, histograms: dict | None = None) -> None:
        if self._rows or histograms:
            self.store.write_metrics(self.run_id, self._rows, histograms)
            self._rows = []
        self._last_flush = time.monotonic()


def _json_object(text) -> dict:
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"invalid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _plain(metrics: dict) -> dict:
    """JSON-able floats (tensors and numpy scalars become floats; NaN/inf become None)."""
    out = {}
    for key, value in metrics.items():
        value = float(value)
        out[key] = value if value == value and abs(value) != float("inf") else None
    return out
