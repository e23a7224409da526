"""Soak: a million calls over a thousand circuits, memory flat, counts exact.

One task makes the calls one after another with random outcomes while a
manual clock moves on, so circuits keep opening, half-opening and closing.
Memory must stay flat after warm-up: the interpreter's allocated blocks
barely move between the 200,000th and the 1,000,000th call, and
``tracemalloc``, tracing from the 700,000th call, sees what is held grow by
less than 1 MB between the 750,000th (once every connection's last failure
has been replaced under tracing) and the last. Every connection must end
where a plain model of the rules says. Log records still go to the
``brama_async`` logger but are not kept (the test harness would otherwise
hold every one of them).
"""

import contextlib
import gc
import logging
import random
import sys
import tracemalloc

import pytest

from brama_async import Brama, CircuitOpenError, State
from brama_async.testing import ManualClock

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALLS = 1_000_000
WARM_UP = 200_000
TRACED = 700_000
SETTLED = 750_000
CIRCUITS = 1000
MAX_ATTEMPTS = 3
EXPIRY = 0.5


@pytest.fixture
def anyio_backend():
    """Tracing a million calls is slow: one backend is enough for the soak."""
    return "asyncio"


class Boom(Exception):
    """A counted failure."""


class Biz(Exception):
    """An excluded error."""


async def succeed():
    return None


async def fail():
    raise Boom


async def business():
    raise Biz


class Circuit:
    """The rules for sequential calls with one trial slot."""

    __slots__ = ("count", "half_open_at", "state")

    def __init__(self):
        self.state = "closed"
        self.count = 0
        self.half_open_at = 0.0

    def admit(self, now):
        if self.state == "open" and now >= self.half_open_at:
            self.state = "half_open"

        return self.state != "open"

    def settle(self, failed, now):
        if not failed:
            self.state = "closed"
            self.count = 0
            return 0

        self.count += 1
        if self.state == "half_open" or self.count >= MAX_ATTEMPTS:
            self.state = "open"
            self.half_open_at = now + EXPIRY
            return 1

        return 0


async def test_a_million_calls_keep_memory_flat_and_counts_exact():
    """Memory stays flat after warm-up and the final states match the model."""
    rng = random.Random(1)
    clock = ManualClock()
    models = [Circuit() for _ in range(CIRCUITS)]
    ran = refused = opened = 0
    logger = logging.getLogger("brama_async")
    quiet = logging.NullHandler()
    outcomes = (succeed, succeed, succeed, fail, fail, business)

    async with Brama(clock=clock, cleanup_interval=3600.0) as brama:
        breakers = [
            await brama.register(
                f"c{index}", max_attempts=MAX_ATTEMPTS, expiry=EXPIRY, exclude=(Biz,)
            )
            for index in range(CIRCUITS)
        ]
        subscription = brama.subscribe(events=["circuit_opened"], max_queued=100)
        logger.propagate = False
        logger.addHandler(quiet)
        try:
            for batch in range(CALLS // 1000):
                if batch * 1000 == WARM_UP:
                    gc.collect()
                    warm_blocks = sys.getallocatedblocks()
                if batch * 1000 == TRACED:
                    tracemalloc.start()
                if batch * 1000 == SETTLED:
                    settled = tracemalloc.get_traced_memory()[0]
                await clock.advance(0.01)
                now = clock()
                indexes = rng.choices(range(CIRCUITS), k=1000)
                functions = rng.choices(outcomes, k=1000)
                for index, fn in zip(indexes, functions, strict=True):
                    model = models[index]
                    if model.admit(now):
                        ran += 1
                        opened += model.settle(fn is fail, now)
                    else:
                        refused += 1
                    with contextlib.suppress(Boom, Biz, CircuitOpenError):
                        await breakers[index].call(fn)
            held = tracemalloc.get_traced_memory()[0]
            gc.collect()
            end_blocks = sys.getallocatedblocks()
        finally:
            tracemalloc.stop()
            logger.removeHandler(quiet)
            logger.propagate = True
        statuses = [b.status() for b in breakers]
        received = len(subscription) + subscription.dropped
        subscription.close()

    final_time = clock()
    states = [
        State(
            "half_open" if m.admit(final_time) and m.state == "half_open" else m.state
        )
        for m in models
    ]
    counts = [m.count for m in models]

    assert end_blocks - warm_blocks < 10_000
    assert held - settled < 1_000_000
    assert held < 4_000_000
    assert [s.state for s in statuses] == states
    assert [s.failure_count for s in statuses] == counts
    assert sum(s.in_flight for s in statuses) == 0
    assert received == opened
    assert ran + refused == CALLS
    assert opened > 10_000
    assert refused > 10_000
