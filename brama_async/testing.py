"""Helpers for testing code that uses brama_async.

* :class:`ManualClock`: a clock that moves only when told to, and runs the
  expiries and sweeps that fall due when it moves.
* :func:`set_state`, :func:`add_failures`, :func:`simulate_recovery`: put a
  connection in a given state through real transitions (events included).
* :func:`run_cleanup`: run one cleanup sweep now.

The pytest plugin shipped with the package adds two fixtures,
``brama_clock`` (a :class:`ManualClock`) and ``brama`` (a running
:class:`~brama_async.Brama` on that clock, closed after the test), for tests
run by anyio's pytest plugin.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

import anyio.lowlevel

from ._errors import ConfigurationError
from ._options import count as check_count
from ._options import reason as check_reason
from ._options import seconds as check_seconds
from ._options import show
from ._types import State

if TYPE_CHECKING:
    from datetime import timedelta

    from ._cleanup import SweepSummary
    from ._registry import Brama

__all__ = [
    "ManualClock",
    "add_failures",
    "run_cleanup",
    "set_state",
    "simulate_recovery",
]


class ManualClock:
    """A monotonic clock for tests that starts at 0.0 and moves only by
    :meth:`advance`.

    Pass it as ``Brama(clock=ManualClock())``. A registry on a manual clock
    runs no timer of its own: each ``advance()`` applies the expiries and runs
    the cleanup sweeps that fell due, each at its own time, before it
    returns. One clock may drive several registries.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._registries: weakref.WeakSet[Brama] = weakref.WeakSet()

    def __call__(self) -> float:
        """Return the current time in seconds."""
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"

    async def advance(self, seconds: float | timedelta) -> None:
        """Move the clock forward and run everything that fell due, in order.

        The clock stops at each moment something falls due (an expiry, a
        cleanup sweep), runs it at that time, then goes on, as real time
        would. Returns once every expiry that fell due has run and its events
        were queued, and every sweep that fell due has finished. A jump over
        more than a hundred sweep intervals with no expiry in between runs
        only the last two of those sweeps: the outcome is the same, since
        nothing else happens in between.

        Raises:
            ConfigurationError: If the amount is negative, NaN or infinite.
        """
        if isinstance(seconds, (int, float)) and seconds == 0:
            step = 0.0
        else:
            step = check_seconds("seconds", seconds)

        target = self._now + step
        while True:
            registries = list(self._registries)
            due = min(
                (registry._next_due(target) for registry in registries),
                default=math.inf,
            )
            if due > target:
                break

            self._now = max(self._now, due)
            for registry in registries:
                await registry._clock_advanced()

        self._now = target
        for registry in list(self._registries):
            await registry._clock_advanced()

        await anyio.lowlevel.checkpoint()

    def _attach(self, registry: Brama) -> None:
        self._registries.add(registry)

    def _detach(self, registry: Brama) -> None:
        self._registries.discard(registry)


async def set_state(
    brama: Brama,
    identifier: str,
    state: State | str,
    *,
    scope: str | None = None,
    reason: str | None = None,
) -> None:
    """Put a connection in ``state`` through real transitions.

    ``"open"`` opens it by hand, ``"half_open"`` opens it then ends the
    expiry at once (so ``circuit_half_opened`` is emitted), ``"closed"``
    closes it by hand. ``reason`` (default ``"test setup"``) is used as given.
    """
    try:
        target = State(state)
    except ValueError:
        raise ConfigurationError(
            f"state must be 'closed', 'open' or 'half_open', got {show(state)}"
        ) from None

    why = check_reason(reason) or "test setup"
    breaker = brama.breaker(identifier, scope=scope)
    if target is State.CLOSED:
        await breaker.close_circuit(reason=why)
    elif target is State.OPEN:
        await breaker.open_circuit(reason=why)
    else:
        if breaker.status().state is not State.OPEN:
            await breaker.open_circuit(reason=why)
        await breaker.reset_expiry()


async def add_failures(
    brama: Brama,
    identifier: str,
    count: int,
    *,
    scope: str | None = None,
    reason: str | None = None,
) -> None:
    """Report ``count`` failures by hand (0 adds none)."""
    if not (isinstance(count, int) and not isinstance(count, bool) and count == 0):
        check_count("count", count)

    why = check_reason(reason) or "test failure"
    breaker = brama.breaker(identifier, scope=scope)
    for _ in range(count):
        await breaker.failure(reason=why)


async def simulate_recovery(
    brama: Brama, identifier: str, *, scope: str | None = None
) -> None:
    """Drive a connection to closed the way a recovery would.

    Open: the expiry is ended at once (half-open). Half-open: a success is
    reported, which closes it. Closed: nothing happens.
    """
    breaker = brama.breaker(identifier, scope=scope)
    if breaker.status().state is State.OPEN:
        await breaker.reset_expiry()
    if breaker.status().state is State.HALF_OPEN:
        await breaker.success()


async def run_cleanup(brama: Brama) -> SweepSummary:
    """Run one cleanup sweep now and return its summary."""
    return await brama.sweep()
