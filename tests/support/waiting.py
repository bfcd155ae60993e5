"""Waiting in a test for something another process does: poll with a deadline, never sleep and hope."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, what: str, timeout: float, interval: float = 0.02) -> T:
    """``condition()``'s first true value, asked every ``interval`` seconds; AssertionError naming
    ``what`` once ``timeout`` seconds have passed without one."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s")
        time.sleep(interval)
    return value
