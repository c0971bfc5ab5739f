"""Time boxes for symbolic work that may not end (SymPy's simplify, limits): ``time_limit``
arms SIGALRM in the main thread, so that a build reports or skips such a step instead of hanging."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager


class Timeout(BaseException):
    """Raised by the alarm inside SymPy; a BaseException so that SymPy's ``except Exception``
    blocks do not swallow it."""


@contextmanager
def time_limit(seconds: float):
    """Yield True with an alarm armed that raises Timeout after ``seconds``; False (and no
    alarm) where signals cannot be used (a thread other than the main one, no SIGALRM)."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield False
        return

    active = [True]

    def on_alarm(signum, frame):
        if active[0]:  # not once the block is being left: the handler is restored below
            raise Timeout

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    if 0 < old_delay < seconds:  # inside a shorter time box: that one's deadline comes first
        signal.setitimer(signal.ITIMER_REAL, old_delay)
    try:
        yield True
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:  # someone else's alarm was pending: re-arm what is left of it
            remaining = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)
