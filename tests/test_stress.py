"""Stress: thousands of tasks on hundreds of circuits with random outcomes.

Calls succeed, fail, raise excluded errors or non-``Exception``s, or are
cancelled by timeouts, by their task group or by a failing sibling, while the
manual clock jumps forward at random. Throughout and at the end, no call or
trial slot may leak, no circuit may be stuck half-open with no trial running,
the event history must agree with the status, and nothing may be left running
once the registry closes. Runs are seeded, so a failure is reproducible.
"""

import contextlib
import random

import anyio
import pytest

from brama_async import Brama, CircuitOpenError, State
from brama_async.testing import ManualClock

pytestmark = pytest.mark.anyio

CIRCUITS = 300
TASKS = 2000
CALLS_PER_TASK = 5


class Boom(Exception):
    """A counted failure."""


class Biz(Exception):
    """An excluded error."""


class Abort(BaseException):
    """A non-``Exception`` that is never counted."""


class Sibling(Exception):
    """Raised by a sibling task to cancel the call next to it."""


OUTCOMES = [
    "success",
    "success",
    "success",
    "failure",
    "failure",
    "excluded",
    "abort",
    "timeout",
    "group_cancel",
    "sibling_failure",
]


def task_ids():
    """Identifiers of the tasks running now."""
    return {task.id for task in anyio.get_running_tasks()}


async def protected(outcome, checkpoints):
    """The protected function: yield a few times, then end as told."""
    for _ in range(checkpoints):
        await anyio.lowlevel.checkpoint()
    if outcome == "failure":
        raise Boom
    if outcome == "excluded":
        raise Biz
    if outcome == "abort":
        raise Abort
    if outcome in ("timeout", "group_cancel", "sibling_failure"):
        await anyio.sleep_forever()


async def one_call(breaker, outcome, checkpoints, style):
    """Make one call in ``style`` with ``outcome``; swallow what is expected."""

    async def attempt():
        if style == "call":
            await breaker.call(protected, outcome, checkpoints)
        elif style == "context":
            async with breaker:
                await protected(outcome, checkpoints)
        else:
            await breaker(protected)(outcome, checkpoints)

    async def attempt_in_group():
        with contextlib.suppress(CircuitOpenError):
            await attempt()

    try:
        if outcome == "timeout":
            with anyio.move_on_after(0):
                await attempt()
        elif outcome == "group_cancel":
            async with anyio.create_task_group() as tg:
                tg.start_soon(attempt_in_group)
                for _ in range(checkpoints):
                    await anyio.lowlevel.checkpoint()
                tg.cancel_scope.cancel()
        elif outcome == "sibling_failure":
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(attempt_in_group)
                    await anyio.lowlevel.checkpoint()
                    raise Sibling
            except BaseException as exc:
                if not any(isinstance(e, Sibling) for e in flatten(exc)):
                    raise
        else:
            await attempt()
    except (CircuitOpenError, Boom, Biz, Abort):
        pass


def flatten(exc):
    """The leaf exceptions of a possibly nested exception group."""
    if hasattr(exc, "exceptions"):
        return [leaf for inner in exc.exceptions for leaf in flatten(inner)]

    return [exc]


def check_invariants(brama):
    """Slots and counters are consistent for every connection right now."""
    for status in brama.connections():
        assert status.in_flight >= 0
        assert 0 <= status.trials_in_flight <= status.half_open_max_calls
        assert status.trials_in_flight <= status.in_flight
        if status.state == State.HALF_OPEN and status.trials_in_flight == 0:
            assert brama.available(status.identifier)


async def test_random_load_leaks_nothing(anyio_backend):
    """Random outcomes and cancellations leave every counter consistent.

    Each backend runs its own seed, so two runs of the suite cover two
    different random loads.
    """
    rng = random.Random({"asyncio": 7, "trio": 2024}[anyio_backend])
    clock = ManualClock()
    baseline = task_ids()
    done = anyio.Event()
    checks = 0

    async with Brama(clock=clock, cleanup_interval=5.0) as brama:
        breakers = []
        for index in range(CIRCUITS):
            breakers.append(
                await brama.register(
                    f"c{index}",
                    max_attempts=rng.randint(1, 3),
                    expiry=rng.choice([0.5, 1.0, 2.0]),
                    expiry_strategy=rng.choice(["fixed", "progressive"]),
                    half_open_max_calls=rng.randint(1, 3),
                    exclude=(Biz,),
                )
            )
        subscription = brama.subscribe(events=["state_change"], max_queued=10**6)

        async def worker(plan):
            for breaker, outcome, checkpoints, style, pause in plan:
                for _ in range(pause):
                    await anyio.lowlevel.checkpoint()
                await one_call(breaker, outcome, checkpoints, style)

        async def clock_driver():
            while not done.is_set():
                for _ in range(rng.randint(1, 5)):
                    await anyio.lowlevel.checkpoint()
                await clock.advance(rng.choice([0.05, 0.1, 0.25, 0.5]))

        async def checker():
            nonlocal checks
            while not done.is_set():
                for _ in range(rng.randint(1, 50)):
                    await anyio.lowlevel.checkpoint()
                check_invariants(brama)
                checks += 1

        with anyio.fail_after(60):
            async with anyio.create_task_group() as background:
                background.start_soon(clock_driver)
                background.start_soon(checker)
                async with anyio.create_task_group() as workers:
                    for _ in range(TASKS):
                        plan = [
                            (
                                rng.choice(breakers),
                                rng.choice(OUTCOMES),
                                rng.randint(0, 3),
                                rng.choice(["call", "context", "decorator"]),
                                rng.randint(0, 60),
                            )
                            for _ in range(CALLS_PER_TASK)
                        ]
                        workers.start_soon(worker, plan)
                done.set()

        check_invariants(brama)
        final = {s.identifier: s for s in brama.connections()}
        subscription.close()
        events = [event async for event in subscription]
        dropped = subscription.dropped

    history = {}
    for event in events:
        history.setdefault(event.identifier, []).append(event)
    states_seen = {event.state for event in events}

    assert checks > 0
    assert dropped == 0
    assert all(s.in_flight == 0 for s in final.values())
    assert all(s.trials_in_flight == 0 for s in final.values())
    assert {State.OPEN, State.HALF_OPEN, State.CLOSED} <= states_seen
    for identifier, status in final.items():
        chain = history.get(identifier, [])
        previous = State.CLOSED
        for event in chain:
            assert event.previous_state == previous
            assert event.state != previous
            previous = event.state
        assert previous == status.state
    assert task_ids() == baseline
