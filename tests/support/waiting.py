"""Polling for a condition in tests that watch threads or other processes."""
import time


def wait_until(predicate, limit=30.0):
    """True as soon as predicate() is true, False after limit seconds."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False
