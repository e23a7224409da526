"""Statistics, loop-stall measurement and number formatting."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stats:
    """Median and range of the samples of one metric."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarise ``samples`` (at least one)."""
        values = tuple(float(s) for s in samples)
        return cls(statistics.median(values), min(values), max(values), values)


class Heartbeat:
    """Measures the longest time the event loop went without running a task.

    :meth:`run` yields to the loop once per iteration and records the largest
    gap between two of its own wake-ups: that gap is the longest stretch during
    which some other code kept the loop busy.
    """

    def __init__(self, sleep0: Callable[[], Awaitable[None]]) -> None:
        self._sleep0 = sleep0
        self._running = True
        self.longest = 0.0
        self.beats = 0

    async def run(self) -> None:
        """Beat until :meth:`stop` is called."""
        clock = time.perf_counter
        last = clock()
        while self._running:
            await self._sleep0()
            now = clock()
            gap = now - last
            if gap > self.longest:
                self.longest = gap
            last = now
            self.beats += 1

    def reset(self) -> None:
        """Forget the longest gap seen so far."""
        self.longest = 0.0

    def stop(self) -> None:
        """Make :meth:`run` return at its next beat."""
        self._running = False


def fmt_time(ns: float) -> str:
    """Format nanoseconds with a unit that keeps three significant figures."""
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f} us"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def fmt_bytes(b: float) -> str:
    """Format a byte count."""
    if abs(b) >= 2**20:
        return f"{b / 2**20:.1f} MiB"
    if abs(b) >= 10 * 2**10:
        return f"{b / 2**10:.1f} KiB"
    return f"{b:.0f} B"


def fmt_count(x: float) -> str:
    """Format a count (integers without decimals)."""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def fmt_ratio(x: float | None) -> str:
    """Format a ratio like ``1.23x``; ``-`` when there is none."""
    if x is None:
        return "-"
    return f"{x:.2f}x"
