"""PreciseTimer: sleeps on a timerfd, never shorter than asked, and a
cancelled sleep leaves nothing that cuts the next one short."""

from __future__ import annotations

import time

import trio

from lxcflow.daemon.timer import PreciseTimer


async def test_a_sleep_lasts_at_least_what_it_was_asked() -> None:
    timer = PreciseTimer()
    try:
        for seconds in (0.0001, 0.0004, 0.003):
            t0 = time.perf_counter()
            await timer.sleep(seconds)
            assert time.perf_counter() - t0 >= seconds
    finally:
        timer.close()


async def test_a_cancelled_sleep_does_not_end_the_next_one_early() -> None:
    timer = PreciseTimer()
    try:
        with trio.move_on_after(0.001):
            await timer.sleep(0.002)  # cancelled; its expiry comes 1 ms later
        await trio.sleep(0.003)  # ... and is left on the fd
        t0 = time.perf_counter()
        await timer.sleep(0.01)
        assert time.perf_counter() - t0 >= 0.01
    finally:
        timer.close()
