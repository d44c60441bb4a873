"""How many of this process's CPUs no other process is using: the default thread count's admission check.

A fork-join kernel call on a core that another process keeps busy waits, now and then, a whole time slice for
its thread (milliseconds against a layer's tens of microseconds), and a few calls on many threads cannot tell
that apart from luck: the stalls are rare and long. The OS can: Linux counts every CPU's busy time in
/proc/stat, and this process's own share is its CPU time (``os.times``). Their difference over a quarter
second is what other processes used of the CPUs this process may run on; what is left in two such windows
in a row is free.
Where /proc/stat cannot be read (macOS, Windows) the answer is None and the measured choice alone decides.
"""

from __future__ import annotations

import os
import time

# Refresh at most this often: /proc/stat is read and parsed in ~20 us, and the counters tick at 100 Hz, so
# a quarter second holds 25 ticks per CPU.
WINDOW_SECONDS = 0.25
# A CPU counts as free when others use less than this share of it (so 0.3 of a core busy elsewhere leaves
# 2 of 2 CPUs "1.7 free", which rounds down to 1).
_SLACK = 0.25


def affinity() -> frozenset[int]:
    """The CPUs this process may run on (all of them where the OS does not say)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return frozenset(range(os.cpu_count() or 1))


def _busy_and_own_seconds(cpus: frozenset[int]) -> tuple[float, float] | None:
    """(non-idle seconds summed over ``cpus`` since boot, this process's CPU seconds), or None off Linux."""
    try:
        with open("/proc/stat", "rb") as stat:
            text = stat.read(1 << 16)
    except OSError:
        return None
    busy = 0
    for line in text.split(b"\n")[1:]:
        if not line.startswith(b"cpu"):
            break
        name, *fields = line.split()
        if int(name[3:]) in cpus and len(fields) >= 8:
            # user nice system idle iowait irq softirq steal: idle and iowait are free; steal (a hypervisor
            # running someone else on this virtual CPU) is as busy as any process
            ticks = [int(value) for value in fields[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]
    times = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), times.user + times.system


class FreeCpus:
    """``count()``: the CPUs of this process's affinity that other processes left free in each of the last two
    windows (one lucky window, say the other process was descheduled, does not open them), rounded down, at
    least 1; 1 until two windows have passed; None where the OS does not tell."""

    def __init__(self, clock=time.monotonic, read=_busy_and_own_seconds):
        self._clock, self._read = clock, read
        self._cpus = affinity()
        self._start = self._clock()
        self._sample = self._read(self._cpus)
        self._free = None if self._sample is None else 1
        self._last = 1  # the previous window's count

    def count(self) -> int | None:
        if self._free is None:
            return None
        now = self._clock()
        if now - self._start >= WINDOW_SECONDS:
            sample = self._read(self._cpus)
            if sample is None:
                self._free = None
                return None
            busy = (sample[0] - self._sample[0]) - (sample[1] - self._sample[1])  # others' CPU seconds
            others = max(0.0, busy / (now - self._start))
            free = max(1, min(len(self._cpus), int(len(self._cpus) - others + _SLACK)))
            self._free, self._last = min(free, self._last), free  # free in both of the last two windows
            self._start, self._sample = now, sample
            cpus = affinity()
            if cpus != self._cpus:  # the next window sums other CPUs: start it afresh
                self._cpus, self._sample = cpus, self._read(cpus)
        return self._free


_shared: FreeCpus | None = None


def free_cpus() -> int | None:
    """The process-wide FreeCpus' count (made on first use)."""
    global _shared
    if _shared is None:
        _shared = FreeCpus()
    return _shared.count()
