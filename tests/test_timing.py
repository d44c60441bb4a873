"""Interleaved timing (workbench.deploy.timing) and the measured thread choice (kernels.ThreadChoice).

No timing is asserted: the rounds are checked for order and count with recorded calls, ThreadChoice with
fed durations.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from random_models import MIXED_SPEC, random_packed

from workbench.cli import main
from workbench.deploy import _xnor, free_cpus, kernels, timing
from workbench.deploy.engine import Engine


def test_rounds_alternate_the_order_and_setup_runs_before_each_sample():
    log = []
    contenders = {
        "a": (lambda: log.append("setup a"), lambda: log.append("a")),
        "b": lambda: log.append("b"),
    }
    times = timing.interleaved(contenders, rounds=3, min_seconds=0.0)
    assert {name: len(values) for name, values in times.items()} == {"a": 3, "b": 3}
    assert log[:5] == ["setup a", "a", "a", "b", "b"]  # warm-up: two calls each
    # rounds a b, b a, a b; each sample: setup, one untimed call, then the timed one (number == 1 here)
    sample_a, sample_b = ["setup a", "a", "a"], ["b", "b"]
    assert log[5:] == sample_a + sample_b + sample_b + sample_a + sample_a + sample_b


def test_ratios_are_per_round():
    assert timing.ratios([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == (2.0, 3.0, 4.0)
    assert timing.fastest([1.0, 5.0], [2.0, 3.0]) == [1.0, 3.0]
    assert timing.format_spread((1.0, 2.25, 3.5), ".1f", "x") == "1.0x / 2.2x / 3.5x"


@pytest.mark.parametrize("path", kernels.available_backends())
def test_ceiling_loop_counts_its_work(path):
    number = kernels._PATHS[path]
    assert _xnor.peak_loop(number, 2) == 2 * 1024 * 64
    call, macs = timing.ceiling_call(number, 0.0005)
    assert call() == macs
    with pytest.raises(ValueError, match="even"):
        _xnor.peak_loop(number, 3)


def test_vnni_ceiling_loop_counts_its_work():
    if "avx512" not in kernels.available_backends():
        with pytest.raises(ValueError, match="no AVX-512 VNNI"):
            _xnor.vnni_peak_loop(1)
        return
    assert _xnor.vnni_peak_loop(3) == 3 * 16384  # 32 loads x 8 accumulators x 64 MACs per pass


def _drive(choice: kernels.ThreadChoice, seconds: dict, calls: int) -> list[int]:
    used = []
    for _ in range(calls):
        count = choice.pick()
        choice.record(count, seconds[count])
        used.append(count)
    return used


def test_thread_choice_stays_on_one_thread_when_more_are_slower_and_tries_them_ever_less():
    used = _drive(kernels.ThreadChoice(2), {1: 1.0, 2: 20.0}, 5000)
    trials = [i for i, count in enumerate(used) if count == 2]
    assert used[0] == 1 and trials[0] == 1
    assert len(trials) <= 10  # 16, 32, ... 4096 calls apart
    assert np.all(np.diff(trials)[1:] >= np.diff(trials)[:-1])


def test_thread_choice_moves_to_more_threads_when_they_are_faster_and_back_when_load_comes():
    choice = kernels.ThreadChoice(2)
    used = _drive(choice, {1: 1.0, 2: 0.5}, 200)
    assert used[2:].count(2) > 180
    used = _drive(choice, {1: 1.0, 2: 10.0}, 40)  # another process takes a core
    assert used[:4].count(1) >= 2 and used.count(2) <= 4  # back on one thread at once, one trial 16 calls later


def test_thread_choice_counts_rare_stalls_of_many_threads_in_their_mean():
    """One core busy: many threads are usually twice as fast but one call in 50 waits a time slice (300x):
    their mean is slower than one thread, so after the first stall the choice stays on one thread."""
    choice, used, many_calls = kernels.ThreadChoice(2), [], 0
    for _ in range(20000):
        count = choice.pick()
        if count == 2:
            many_calls += 1
        choice.record(count, 300.0 if count == 2 and many_calls % 50 == 0 else {1: 1.0, 2: 0.5}[count])
        used.append(count)
    assert used[5000:].count(2) <= 10


def test_explicit_and_environment_thread_counts_are_fixed(monkeypatch):
    assert isinstance(kernels.thread_policy(3), kernels.ThreadCount)
    monkeypatch.setenv("BNN_WORKBENCH_THREADS", "2")
    assert kernels.thread_policy(None).count == 2
    monkeypatch.delenv("BNN_WORKBENCH_THREADS")
    policy = kernels.thread_policy(None)
    assert isinstance(policy, kernels._AutoThreads) == (kernels.default_threads() > 1 and _xnor.OPENMP)
    with pytest.raises(ValueError, match="threads"):
        kernels.thread_policy(0)


def test_default_thread_calls_give_the_same_results(monkeypatch):
    monkeypatch.delenv("BNN_WORKBENCH_THREADS", raising=False)
    rng = np.random.default_rng(0)
    a = kernels.pack_signs(rng.standard_normal((300, 700)))
    b = kernels.pack_signs(rng.standard_normal((500, 700)))
    bound = kernels.bind_gemm(b, 700)
    first = kernels.xnor_gemm(a, b, 700, threads=1)
    for _ in range(4):  # one thread, the trial of all CPUs, then the choice
        np.testing.assert_array_equal(bound(a), first)
        np.testing.assert_array_equal(kernels.xnor_gemm(a, b, 700), first)


@pytest.mark.slow
def test_bench_kernels_prints_per_round_ratios_and_the_ceiling(capsys):
    assert main(["bench", "kernels", "--quick", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "interleaved rounds" in out and "load average" in out and "binary MAC/s" in out
    assert "of ceiling" in out and "ceiling (" in out and "threads=None vs 1 thread" in out
    assert out.count(" / ") >= 10  # min / median / max triples


class _FakeStat:
    """/proc/stat and os.times as numbers the test sets: (busy seconds of the CPUs, this process's seconds)."""

    def __init__(self):
        self.now, self.busy, self.own = 0.0, 0.0, 0.0

    def advance(self, seconds: float, others_cores: float, own_cores: float) -> None:
        self.now += seconds
        self.busy += seconds * (others_cores + own_cores)
        self.own += seconds * own_cores


def _free_cpus_with(stat: _FakeStat, monkeypatch, cpus=(0, 1)) -> free_cpus.FreeCpus:
    monkeypatch.setattr(free_cpus.os, "sched_getaffinity", lambda pid: set(cpus), raising=False)
    return free_cpus.FreeCpus(clock=lambda: stat.now, read=lambda cpus: (stat.busy, stat.own))


def test_free_cpus_subtracts_this_process_and_needs_two_free_windows(monkeypatch):
    stat = _FakeStat()
    free = _free_cpus_with(stat, monkeypatch)
    assert free.count() == 1  # nothing known before the first windows: one thread
    stat.advance(0.3, others_cores=0.0, own_cores=2.0)  # our own two threads use both CPUs: both are ours
    assert free.count() == 1  # one free window is not enough
    stat.advance(0.3, others_cores=0.0, own_cores=2.0)
    assert free.count() == 2
    stat.advance(0.3, others_cores=1.0, own_cores=1.0)  # a busy loop on the other CPU: at once
    assert free.count() == 1
    stat.advance(0.3, others_cores=0.0, own_cores=1.0)  # it was descheduled for one window
    assert free.count() == 1
    stat.advance(0.1, others_cores=0.3, own_cores=1.0)  # within the window: the last answer stands
    assert free.count() == 1
    stat.advance(0.3, others_cores=0.3, own_cores=1.0)  # 0.3 of a core busy elsewhere: 1.7 free -> 1
    assert free.count() == 1
    stat.advance(0.3, others_cores=0.1, own_cores=1.0)
    assert free.count() == 1
    stat.advance(0.3, others_cores=0.1, own_cores=1.0)
    assert free.count() == 2


def test_free_cpus_is_none_where_the_os_does_not_tell():
    assert free_cpus.FreeCpus(read=lambda cpus: None).count() is None


def test_default_threads_stay_on_one_when_other_processes_hold_the_cores(monkeypatch):
    monkeypatch.setattr(kernels, "free_cpus", lambda: 1)
    policy, used = kernels._AutoThreads(2), []
    for _ in range(100):
        policy.run(1, used.append)
    assert used == [1] * 100 and policy.choices == {}  # no trial of 2 threads, nothing learnt meanwhile
    monkeypatch.setattr(kernels, "free_cpus", lambda: 3)
    policy, used = kernels._AutoThreads(4), []
    for _ in range(3):
        policy.run(1, used.append)
    assert used[:2] == [1, 3]  # the trial of "all CPUs" runs on the 3 that are free


def test_the_engine_decides_threads_once_per_network_call(monkeypatch, tmp_path):
    monkeypatch.delenv("BNN_WORKBENCH_THREADS", raising=False)
    if kernels.default_threads() < 2 or not _xnor.OPENMP:
        pytest.skip("needs 2 CPUs and OpenMP: with one thread there is nothing to decide")
    monkeypatch.setattr(kernels, "free_cpus", lambda: 2)
    packed = random_packed(MIXED_SPEC, seed=0)
    auto, one = Engine(packed), Engine(packed, threads=1)
    x = np.random.default_rng(0).integers(0, 256, (3, *auto.input_shape), dtype=np.uint8)
    counts = []
    original = auto._logits_on
    monkeypatch.setattr(auto, "_logits_on", lambda threads, state: counts.append(threads) or original(threads, state))
    for _ in range(4):
        np.testing.assert_array_equal(auto.logits(x), one.logits(x))
    assert counts[:2] == [1, 2]  # one thread, then the trial of all CPUs for the whole network
    assert list(auto._policy.choices) == [3]  # one choice per batch size, for the whole network


def test_free_cpus_reads_this_machine():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat (not Linux): FreeCpus answers None there, tested above")
    busy, own = free_cpus._busy_and_own_seconds(frozenset(os.sched_getaffinity(0)))
    assert busy > 0 and own > 0
    assert 1 <= free_cpus.FreeCpus().count() <= len(os.sched_getaffinity(0))
