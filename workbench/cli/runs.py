"""``bnn-workbench runs list`` and ``runs show RUN_ID``: the run store as text tables."""

from __future__ import annotations

import argparse
import time

from workbench.runs.store import RunStore


def add_parser(commands) -> None:
    parser = commands.add_parser("runs", help="list and show runs in the run store")
    actions = parser.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="one line per run").set_defaults(handler=run_list)
    show = actions.add_parser("show", help="a run's specs, status and metrics")
    show.add_argument("run_id")
    show.set_defaults(handler=run_show)
    check = actions.add_parser("check", help="report damaged rows, orphaned folders and damaged checkpoints")
    check.add_argument(
        "--repair",
        action="store_true",
        help="remove interrupted writes, set damaged checkpoints "
        "aside, fail runs whose folder is gone (nothing else is changed or deleted)",
    )
    check.set_defaults(handler=run_check)


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment)) if moment else "-"


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if not isinstance(value, float):
        return str(value)
    return f"{value:.{digits}f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2e}"


def format_table(headers: list[str], rows: list[list]) -> str:
    """A plain fixed-width text table."""
    cells = [headers] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run_list(args: argparse.Namespace) -> int:
    runs = RunStore(args.runs_dir).list_runs()
    if not runs:
        print("no runs yet")
        return 0
    # the accuracies are the exported (best) checkpoint's, whose epoch is the "exported" column
    rows = [
        [
            r.id,
            r.name,
            r.status,
            r.data_ref,
            f"{r.epochs_done}/{r.training_spec.get('epochs', '?')}",
            "-" if r.best_epoch is None else r.best_epoch,
            _number(r.best_val_accuracy),
            _number(r.test_accuracy),
            _when(r.created_at),
        ]
        for r in runs
    ]
    print(format_table(["id", "name", "status", "data", "epochs", "exported", "val acc", "test acc", "created"], rows))
    return 0


def run_show(args: argparse.Namespace) -> int:
    store = RunStore(args.runs_dir)
    run = store.get_run(args.run_id)
    net, training = run.network_spec, run.training_spec
    layers = ", ".join(layer.get("type", "?") for layer in net.get("layers", []))
    optimizer = training.get("optimizer") or {}
    print(f"run       {run.id}  ({run.name})")
    print(f"status    {run.status}" + (f"  (pid {run.pid})" if run.active else ""))
    if run.parent_id:
        print(f"teacher of {run.parent_id}")
    print(
        f"network   {net.get('name', '?')}: input {net.get('input_shape')}, {net.get('num_classes')} classes; {layers}"
    )
    print(
        f"training  {training.get('epochs')} epochs, batch {training.get('batch_size')}, "
        f"optimizer {optimizer.get('name')} lr {optimizer.get('lr')}, seed {training.get('seed')}"
        + (f", distillation {training['distillation']}" if training.get("distillation") else "")
    )
    print(f"data      {run.data_ref}" + (f"\n          {run.data_summary}" if run.data_summary else ""))
    print(
        f"times     created {_when(run.created_at)}, started {_when(run.started_at)}, finished {_when(run.finished_at)}"
    )
    print(
        f"results   epochs {run.epochs_done}; exported checkpoint: {run.best_checkpoint_label}; "
        f"its val acc {_number(run.best_val_accuracy)}, test acc {_number(run.test_accuracy)}"
    )
    if run.error:
        print("error     " + run.error.strip().replace("\n", "\n          "))
    table = store.metrics(run.id, "epoch")
    if table["epoch"]:
        keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds") if k in table]
        rows = [[table["epoch"][i]] + [_number(table[k][i]) for k in keys] for i in range(len(table["epoch"]))]
        print()
        print(format_table(["epoch"] + keys, rows))
    return 0


def run_check(args: argparse.Namespace) -> int:
    # lazy: reading checkpoints to verify them loads torch, which the other runs commands never need
    from workbench.runs.check import check_store

    store = RunStore(args.runs_dir)
    findings = check_store(store, repair=args.repair)
    for finding in findings:
        print(f"{finding.run_id}: {finding.problem}" + (" -- repaired" if finding.repaired else ""))
    print(
        f"{store.db_path}: {len(store.list_runs())} runs, {len(findings)} problem(s)"
        + (f", {sum(f.repaired for f in findings)} repaired" if args.repair else "")
    )
    return 0 if all(f.repaired for f in findings) else 1
