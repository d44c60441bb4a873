"""Waiting on real processes in tests: poll until a condition holds, with limits generous for a loaded machine."""

import time


def wait_until(predicate, what: str, timeout: float):
    """The first truthy value of ``predicate()``, polled every 50 ms; fails naming ``what`` after ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
