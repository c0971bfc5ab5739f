"""irtgen.timelimit: the time boxes around symbolic work (diagnostics' limits, derive's simplify)."""

import signal
import threading
import time

import pytest

from irtgen.timelimit import Timeout, time_limit


def test_time_limit_interrupts_and_restores():
    with time_limit(0.2) as armed:
        assert armed
        start = time.monotonic()
        with pytest.raises(Timeout):
            time.sleep(5)
        assert time.monotonic() - start < 2
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # nothing left armed


def test_an_inner_box_keeps_the_outer_deadline():
    start = time.monotonic()
    with pytest.raises(Timeout):
        with time_limit(0.3):
            with time_limit(10.0):  # would hide the outer alarm for 10 s
                time.sleep(0.1)
            time.sleep(5)
    assert time.monotonic() - start < 2
    # an inner box that the outer deadline cuts short: the outer still fires after it
    start = time.monotonic()
    with pytest.raises(Timeout):
        with time_limit(0.2):
            try:
                with time_limit(10.0):
                    time.sleep(5)
            except Timeout:
                pass
            time.sleep(5)
    assert time.monotonic() - start < 2
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_is_off_outside_the_main_thread():
    seen = []

    def worker():
        with time_limit(0.1) as armed:
            seen.append(armed)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [False]
