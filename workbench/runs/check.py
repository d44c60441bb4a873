"""``runs check``: what is wrong in a run store, and the repairs that lose nothing.

Reported: damaged rows, run folders without a row (orphans) and rows without a folder, leftover ``*.partial``
files, checkpoints that fail their checksum. Repaired with ``repair=True``, and only these: ``*.partial`` files
removed (an interrupted write, never a finished file), damaged checkpoints set aside as ``*.damaged``, and runs
left queued or active without their folder marked failed. Nothing else is changed or deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from workbench.runs.store import ACTIVE, RunStore


@dataclass
class Finding:
    run_id: str
    problem: str
    repaired: bool = False


def check_store(store: RunStore, repair: bool = False) -> list[Finding]:
    findings = []
    records = store.list_runs()
    known = {record.id for record in records}
    for record in records:
        folder = store.run_dir(record.id)
        if record.status == "damaged":
            findings.append(Finding(record.id, record.error))
            continue
        if not folder.is_dir():
            fixable = record.status in ACTIVE
            if fixable and repair:
                store.update_run(
                    record.id,
                    status="failed",
                    error=f"its run folder {folder} is missing",
                    finished_at=time.time(),
                    pid=None,
                )
            findings.append(
                Finding(
                    record.id,
                    f"its folder {folder} is missing" + (" (the run was left queued or active)" if fixable else ""),
                    fixable and repair,
                )
            )
            continue
        for leftover in sorted(folder.glob("*.partial")):
            if repair:
                leftover.unlink(missing_ok=True)
            findings.append(Finding(record.id, f"an interrupted write left {leftover.name}", repair))
        for path in sorted(folder.glob("*.safetensors")):
            which = "best" if path.stem == "best" else int(path.stem.split("-")[1])
            try:
                store.load_checkpoint(record.id, which)
            except (ValueError, OSError) as error:
                if repair:
                    path.replace(path.with_name(path.name + ".damaged"))
                findings.append(Finding(record.id, f"checkpoint {path.name} is damaged: {error}", repair))
    for folder in store.run_folders():
        if folder.name not in known:
            findings.append(Finding(folder.name, f"folder {folder} has no row in {store.db_path} (left as it is)"))
    return findings
