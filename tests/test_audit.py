"""The hostile-input audit (tools/audit.py): every family ends in clean errors or valid acceptances only.

A small seeded run of each family here; the whole audit (about 2,900 tries) is marked slow. What the audit found
is tested one finding at a time in tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _audit():
    spec = importlib.util.spec_from_file_location("audit", ROOT / "tools" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _assert_clean(rows) -> None:
    for row in rows:
        assert row.counts["crash"] == row.counts["silent"] == row.hangs == row.huge == 0, (row.family, row.examples)
        assert row.counts["clean"] > 0, row.family  # the inputs reach the checks


@pytest.mark.parametrize(
    "family",
    [  # the families that import torch or build a gigabyte zip bomb take tens of seconds: slow
        "specs",
        "kernels",
        "xnor",
        pytest.param("datasets", marks=pytest.mark.slow),
        pytest.param("checkpoints", marks=pytest.mark.slow),
        pytest.param("bnn", marks=pytest.mark.slow),
    ],
)
def test_a_small_audit_of_each_family_finds_nothing(family):
    audit = _audit()
    tries = max(audit.DEFAULT_TRIES[family] // 20, 12)
    row = audit.run_family(family, 1, tries, hang=60, slow=10, huge=256, kill=2048)
    assert row.tries == tries
    _assert_clean([row])


@pytest.mark.slow
def test_the_whole_audit_finds_nothing():
    audit = _audit()
    rows = [
        audit.run_family(family, 0, audit.DEFAULT_TRIES[family], hang=60, slow=10, huge=256, kill=2048)
        for family in audit.FAMILIES
    ]
    print("\n" + audit.table(rows))
    _assert_clean(rows)


def test_the_watcher_counts_a_killed_try_and_carries_on(tmp_path, monkeypatch):
    """A try that kills its process is one crash, and the tries after it still run (in a fresh child)."""
    audit = _audit()
    cases = tmp_path / "cases.py"
    cases.write_text(
        "import os, signal\n"
        "def cases(rng, tries):\n"
        "    from audit import Case, REFUSE\n"
        "    for i in range(tries):\n"
        "        run = (lambda: os.kill(os.getpid(), signal.SIGSEGV)) if i == 2 else (lambda: int('x'))\n"
        "        yield Case(f'case {i}', REFUSE, run), (ValueError,)\n"
    )
    monkeypatch.setenv("BNN_AUDIT_EXTRA_FAMILY", str(cases))
    row = audit.run_family("extra", 0, 5, hang=30, slow=10, huge=256, kill=2048)
    assert row.tries == 5 and row.counts["clean"] == 4 and row.counts["crash"] == 1, row
    assert "SIGSEGV" in row.examples[0]
