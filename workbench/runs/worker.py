"""The training worker: runs one run of the store to its end, in its own process or in the foreground.

``workbench.runs.launch.start_run`` runs it in its own process (``python -m workbench.cli worker RUN_ID``);
``bnn-workbench train`` calls the same ``run_worker`` in the foreground with a progress bar. Everything the
worker learns goes into the store: status, pid and a heartbeat (from a thread, so a long batch does not look
like a dead worker), metrics, histograms, checkpoints, and on an exception the message and the traceback's
last lines.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import traceback

from tqdm import tqdm

from workbench.core.data import describe, load_run_data
from workbench.core.spec import float_twin
from workbench.runs.ranks import launch_ranks
from workbench.runs.store import HEARTBEAT_SECONDS, MetricsWriter, RunStore, RunStoreGoneError, max_workers
from workbench.runs.trained import load_trained_model
from workbench.train.distributed import World, leave, world_from_environment
from workbench.train.training import TrainingReporter, train

CONTROL_SECONDS = 0.2  # the store is asked for pause/stop requests at most this often
PAUSE_POLL_SECONDS = 0.2
QUEUE_POLL_SECONDS = 0.5  # a queued worker asks for a free slot this often
TRACEBACK_LINES = 12
_PROGRESS = "BNN_WORKBENCH_RANK_PROGRESS"  # set by a foreground launcher: rank 0 draws the progress bar
_LAUNCHED = "BNN_WORKBENCH_LAUNCHED"  # set by our launcher, which keeps the run's status; absent: torchrun by hand


class StoreReporter(TrainingReporter):
    """Writes progress into the run store and turns store requests into pause/stop between batches.

    ``watch`` lists the run ids whose requests apply (a teacher run also obeys its student's requests).
    """

    def __init__(self, store: RunStore, run_id: str, watch: tuple[str, ...] = (), progress=None):
        self.store, self.run_id, self.progress = store, run_id, progress
        self.watch = (run_id, *watch)
        self.writer = MetricsWriter(store, run_id)
        self._checked = 0.0

    def on_batch(self, epoch, step, metrics):
        self.writer.step(epoch, step, metrics)
        if self.progress is not None:
            self.progress.batch(epoch, metrics)

    def on_epoch(self, epoch, metrics, histograms, checkpoint, is_best):
        self._check_store()
        # Metrics first, checkpoint second: a worker killed in between leaves an epoch row without its
        # checkpoint, which resuming truncates and replays; the other order would lose the row for good.
        self.writer.epoch(epoch, metrics, histograms)
        self.store.save_checkpoint(self.run_id, checkpoint, is_best)
        self.store.update_run(
            self.run_id,
            epochs_done=epoch,
            best_val_accuracy=checkpoint.meta.get("best_val_accuracy"),
            best_epoch=checkpoint.meta.get("best_epoch"),
        )
        if self.progress is not None:
            self.progress.epoch(epoch, metrics)

    def _check_store(self) -> None:
        """A worker whose run store was deleted stops, instead of training on into files nobody can see."""
        if not self.store.db_path.exists():
            raise RunStoreGoneError(
                f"run store {self.store.db_path} was removed while run {self.run_id} was training; the worker stops"
            )

    def _request(self) -> str | None:
        requests = [self.store.pending_request(run_id) for run_id in self.watch]
        return "stop" if "stop" in requests else "pause" if "pause" in requests else None

    def control(self) -> str:
        now = time.monotonic()
        if now - self._checked < CONTROL_SECONDS:
            return "continue"
        self._checked = now
        self._check_store()
        request = self._request()
        if request == "pause":
            self.writer.flush()
            self.store.update_run(self.run_id, status="paused")
            while request == "pause":
                time.sleep(PAUSE_POLL_SECONDS)
                self._check_store()
                request = self._request()
            self.store.update_run(self.run_id, status="running")
        return "stop" if request == "stop" else "continue"

    def close(self):
        self.writer.flush()


class _Heartbeat(threading.Thread):
    """Stamps the run's heartbeat every HEARTBEAT_SECONDS until stopped."""

    def __init__(self, store: RunStore, run_ids: list[str]):
        super().__init__(daemon=True, name="bnn-heartbeat")
        self.store, self.run_ids, self.halt = store, run_ids, threading.Event()

    def run(self):
        while not self.halt.wait(HEARTBEAT_SECONDS):
            for run_id in list(self.run_ids):
                self.store.update_run(run_id, heartbeat_at=time.time())
        self.store.close()


class _Progress:
    """A tqdm bar over every batch of the run (foreground training)."""

    def __init__(self, total: int, initial: int, description: str):
        self.bar = tqdm(total=total, initial=initial, desc=description, unit="batch", dynamic_ncols=True)

    def batch(self, epoch, metrics):
        self.bar.update(1)
        self.bar.set_postfix(
            epoch=epoch, loss=f"{metrics['loss']:.4f}", acc=f"{metrics['accuracy']:.3f}", refresh=False
        )

    def epoch(self, epoch, metrics):
        val = metrics.get("val_accuracy")
        if val is not None and not math.isnan(val):
            self.bar.write(
                f"epoch {epoch}: loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.4f}, val accuracy {val:.4f}"
            )

    def close(self):
        self.bar.close()


def _failure_text(error: BaseException) -> str:
    lines = traceback.format_exception(error)
    tail = "".join(lines).rstrip().splitlines()[-TRACEBACK_LINES:]
    return f"{type(error).__name__}: {error}\n" + "\n".join(tail)


def _mark_ended(store: RunStore, run_id: str, error: BaseException) -> None:
    """Ctrl-C stops a foreground run (resumable); any other exception fails it, with the reason."""
    if isinstance(error, KeyboardInterrupt):
        store.update_run(run_id, status="stopped", finished_at=time.time())
    else:
        store.update_run(run_id, status="failed", error=_failure_text(error), finished_at=time.time())


def _progress_for(record, dataset, start_epoch: int) -> _Progress:
    spec = record.training_spec
    n_fit = len(dataset.x_train) - min(
        int(round(len(dataset.x_train) * float(spec.get("validation_split") or 0))), len(dataset.x_train) - 2
    )
    per_epoch = max(n_fit // int(spec.get("batch_size", 128)), 1)
    epochs = int(spec.get("epochs", 1))
    return _Progress(per_epoch * epochs, per_epoch * start_epoch, record.name)


def _intact_checkpoints(store: RunStore, run_id: str):
    """(checkpoint to resume from, the best checkpoint when it is another epoch): the newest intact one, falling
    back from a damaged "last" to "best"; (None, None) to start over when neither can be read."""
    for which in ("last", "best"):
        try:
            resume = store.load_checkpoint(run_id, which)
        except FileNotFoundError:
            continue
        except ValueError as error:
            _set_aside(store.checkpoint_path(run_id, which), error)
            continue
        if which == "best" or resume.meta.get("best_epoch", resume.epoch) == resume.epoch:
            return resume, None
        try:
            return resume, store.load_checkpoint(run_id, "best")
        except FileNotFoundError:
            return resume, None
        except ValueError as error:
            _set_aside(store.checkpoint_path(run_id, "best"), error)
            return resume, None
    return None, None


def _set_aside(path, error: Exception) -> None:
    """Keep a damaged checkpoint as ``*.damaged`` (never deleted), out of the way of the run's own files."""
    path.replace(path.with_name(path.name + ".damaged"))
    print(f"set aside a damaged checkpoint as {path.name}.damaged: {error}", file=sys.stderr, flush=True)


def _train_one(
    store: RunStore, run_id: str, dataset, teacher=None, watch=(), progress=False, heartbeat: _Heartbeat | None = None
):
    """Train the run ``run_id`` (resuming from its last checkpoint if it has one); returns the TrainResult."""
    record = store.get_run(run_id)
    store.take_lease(run_id)
    resume, best = _intact_checkpoints(store, run_id)
    store.truncate(run_id, resume.epoch if resume else 0)
    store.update_run(
        run_id,
        status="running",
        pid=os.getpid(),
        heartbeat_at=time.time(),
        started_at=record.started_at or time.time(),
        finished_at=None,
        error=None,
    )
    if heartbeat is not None:
        heartbeat.run_ids.append(run_id)
    bar = _progress_for(record, dataset, resume.epoch if resume else 0) if progress else None
    reporter = StoreReporter(store, run_id, watch=watch, progress=bar)
    try:
        result = train(
            record.network_spec, record.training_spec, dataset, reporter, resume=resume, best=best, teacher=teacher
        )
    except BaseException as error:
        reporter.close()
        _mark_ended(store, run_id, error)
        raise
    finally:
        if bar is not None:
            bar.close()
        if heartbeat is not None:
            heartbeat.run_ids.remove(run_id)
    reporter.close()
    _record_result(store, run_id, result)
    return result


def _record_result(store: RunStore, run_id: str, result) -> None:
    store.update_run(
        run_id,
        status="stopped" if result.stopped else "completed",
        finished_at=time.time(),
        epochs_done=result.epochs_done,
        best_val_accuracy=result.best_val_accuracy,
        best_epoch=result.best_epoch,
        test_accuracy=result.test_accuracy,
        request=None,
    )


def _run_rank(store: RunStore, run_id: str, world: World) -> str:
    """One of torchrun's processes of a distributed run (see workbench.runs.ranks): the launching worker holds
    the lease and the heartbeat and has trained any float-twin teacher; rank 0 reports into the store. Started
    by hand with torchrun (several machines, docs/DISTRIBUTED.md), rank 0 also keeps the run's status."""
    record = store.get_run(run_id)
    by_hand = world.leader and not os.environ.get(_LAUNCHED)
    if by_hand:
        store.update_run(run_id, status="running", pid=os.getpid(), heartbeat_at=time.time(), error=None)
    dataset = load_run_data(record.data_ref, record.training_spec)
    teacher = None
    distillation = record.training_spec.get("distillation")
    if distillation:
        teacher_id = distillation.get("teacher_run") or next(
            run.id for run in store.list_runs() if run.parent_id == record.id and run.status == "completed"
        )
        teacher = load_trained_model(teacher_id, store)[0]
    resume, best = _intact_checkpoints(store, run_id)  # the launcher set any damaged one aside already
    drawn = world.leader and os.environ.get(_PROGRESS)
    progress = _progress_for(record, dataset, resume.epoch if resume else 0) if drawn else None
    reporter = StoreReporter(store, run_id, progress=progress) if world.leader else None
    try:
        result = train(
            record.network_spec,
            record.training_spec,
            dataset,
            reporter,
            resume=resume,
            best=best,
            teacher=teacher,
            world=world,
        )
    except BaseException as error:
        if reporter is not None:  # the launcher fails the run once torchrun has named the root cause
            reporter.close()
            if by_hand:
                _mark_ended(store, run_id, error)
            else:
                store.update_run(run_id, error=_failure_text(error))
        leave(together=False)  # the others may be gone: no barrier
        raise
    finally:
        if progress is not None:
            progress.close()
    if reporter is not None:
        reporter.close()
        _record_result(store, run_id, result)
    leave(together=True)
    return store.get_run(run_id).status


def _teacher(store: RunStore, record, dataset, progress: bool, heartbeat: _Heartbeat):
    """The distillation teacher: a finished run's best model, or a float twin trained now as a child run.

    Returns (teacher model or None, stopped) — stopped when the user stopped the run while its teacher trained.
    """
    distillation = record.training_spec.get("distillation")
    if not distillation:
        return None, False
    if distillation.get("teacher_run"):
        teacher_id = distillation["teacher_run"]
        teacher_record = store.get_run(teacher_id)
        if teacher_record.status != "completed":
            raise ValueError(
                f"training spec field 'distillation.teacher_run': run {teacher_id} must be completed, "
                f"it is {teacher_record.status}"
            )
        return load_trained_model(teacher_id, store)[0], False
    children = [run for run in store.list_runs() if run.parent_id == record.id]
    if children and children[0].status == "completed":
        return load_trained_model(children[0].id, store)[0], False
    if children:
        child_id = children[0].id
    else:
        child_spec = dict(record.training_spec, distillation=None)
        child_id = store.create_run(
            f"{record.name}: float-twin teacher",
            float_twin(record.network_spec),
            child_spec,
            record.data_ref,
            parent_id=record.id,
        )
    result = _train_one(store, child_id, dataset, watch=(record.id,), progress=progress, heartbeat=heartbeat)
    return result.model, result.stopped


def run_worker(run_id: str, runs_dir: str | os.PathLike | None = None, *, dataset=None, progress: bool = False) -> str:
    """Train a queued (or resumed) run to its end; returns its final status.

    ``dataset`` saves loading it again when the caller already has it. On an exception the run is marked
    failed with the message and the traceback's tail, and the exception propagates.
    """
    store = RunStore(runs_dir)
    world = world_from_environment()
    if world.distributed:
        return _run_rank(store, run_id, world)
    record = store.get_run(run_id)
    # before anything else: a second worker of the same run stops here, changing nothing; beyond the store's
    # worker limit the run waits, queued, and can still be stopped
    while not store.take_lease(run_id, max_workers()):
        if store.pending_request(run_id) == "stop":
            store.update_run(run_id, status="stopped", finished_at=time.time(), request=None)
            return "stopped"
        time.sleep(QUEUE_POLL_SECONDS)
    for leftover in store.run_dir(run_id).glob("*.partial"):  # a write a crash interrupted
        leftover.unlink(missing_ok=True)
    store.update_run(run_id, status="running", pid=os.getpid(), heartbeat_at=time.time())
    heartbeat = _Heartbeat(store, [run_id])
    heartbeat.start()
    try:
        if dataset is None:
            dataset = load_run_data(record.data_ref, record.training_spec)
        store.update_run(run_id, data_summary=describe(dataset))
        teacher, stopped = _teacher(store, record, dataset, progress, heartbeat)
        processes = int(record.training_spec.get("processes", 1))
        if stopped:
            store.update_run(run_id, status="stopped", finished_at=time.time(), request=None)
        elif processes > 1:
            resume, _ = _intact_checkpoints(store, run_id)
            store.truncate(run_id, resume.epoch if resume else 0)
            store.update_run(run_id, started_at=record.started_at or time.time(), finished_at=None, error=None)
            env = {_LAUNCHED: "1", **({_PROGRESS: "1"} if progress else {})}
            failure = launch_ranks(store.runs_dir, run_id, processes, env=env)
            ended = store.get_run(run_id)
            if failure and ended.status not in ("completed", "stopped"):
                # torchrun's root cause first: rank 0's own error is often just "connection reset by peer"
                seen = f"\nrank 0 reported: {ended.error.splitlines()[0]}" if ended.error else ""
                store.update_run(run_id, status="failed", error=failure + seen, finished_at=time.time())
        else:
            _train_one(store, run_id, dataset, teacher=teacher, progress=progress, heartbeat=heartbeat)
    except BaseException as error:
        if store.get_run(run_id).status not in ("failed", "completed", "stopped"):
            _mark_ended(store, run_id, error)
        raise
    finally:
        heartbeat.halt.set()
        heartbeat.join()
        store.release_lease(run_id)
    return store.get_run(run_id).status
