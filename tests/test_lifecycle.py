"""Entering and leaving the registry: nothing hangs, leaks or warns.

The registry owns its timers and sweeps; leaving its block, normally, with
an error or by cancellation, stops them promptly and leaves no task behind,
whatever is still going on (calls in flight, open circuits with pending
expiries, subscribers iterating). Afterwards every handle says clearly that
the registry is closed.
"""

import gc
import time
import warnings

import anyio
import anyio.lowlevel
import pytest

from brama_async import Brama, RegistryClosedError, State
from brama_async.testing import ManualClock

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """A counted failure."""


def task_ids():
    """Identifiers of the tasks running now."""
    return {task.id for task in anyio.get_running_tasks()}


async def succeed():
    return "ok"


async def busy_registry(brama, connections=1000, open_circuits=500):
    """Fill a registry with connections, half of them open with a timer."""
    breakers = [
        await brama.register(f"c{index}", expiry=30.0) for index in range(connections)
    ]
    for breaker in breakers[:open_circuits]:
        await breaker.open_circuit(reason="lifecycle test")

    return breakers


async def test_leaving_a_busy_registry_is_prompt_and_leaves_no_task():
    """1,000 connections, 500 pending expiries, subscribers and calls in
    flight: leaving the block takes well under a second and stops all
    library work."""
    baseline = task_ids()
    release = anyio.Event()
    results = []
    iterated = []

    async def caller(breaker):
        async def slow():
            await release.wait()
            return "late result"

        results.append(await breaker.call(slow))

    async def subscriber(subscription):
        async for event in subscription:
            iterated.append(event)
        iterated.append("ended")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as outside:
            async with Brama(cleanup_interval=0.05) as brama:
                breakers = await busy_registry(brama)
                for breaker in breakers[500:600]:
                    outside.start_soon(caller, breaker)
                outside.start_soon(subscriber, brama.subscribe())
                await anyio.wait_all_tasks_blocked()
                in_flight = sum(b.status().in_flight for b in breakers)
                started = time.monotonic()
            closing_time = time.monotonic() - started
            release.set()

    assert in_flight == 100
    assert closing_time < 1.0
    assert results == ["late result"] * 100
    assert iterated[-1] == "ended"
    assert task_ids() == baseline


async def test_call_finishing_after_close_keeps_its_own_outcome():
    """A call admitted before the registry closed returns its result or
    raises its own exception; bookkeeping never replaces it."""
    release = anyio.Event()
    outcomes = []

    async def caller(breaker, fail):
        async def slow():
            await release.wait()
            if fail:
                raise Boom
            return "done"

        try:
            outcomes.append(await breaker.call(slow))
        except Boom:
            outcomes.append("boom")

    async with anyio.create_task_group() as outside:
        async with Brama() as brama:
            breaker = await brama.register("api", max_attempts=1)
            outside.start_soon(caller, breaker, False)
            outside.start_soon(caller, breaker, True)
            await anyio.wait_all_tasks_blocked()
        release.set()

    assert sorted(outcomes) == ["boom", "done"]


async def test_subscription_iteration_ends_when_the_registry_closes():
    """A subscriber waiting for events is released when the registry closes."""
    ended = anyio.Event()

    async def subscriber(subscription):
        async for _ in subscription:
            pass
        ended.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as outside:
            async with Brama() as brama:
                subscription = brama.subscribe()
                outside.start_soon(subscriber, subscription)
                await anyio.wait_all_tasks_blocked()
            await ended.wait()

    assert subscription.closed is True


async def test_cancelling_the_host_task_closes_cleanly():
    """Cancellation of the task that holds the registry stops it at once."""
    baseline = task_ids()
    clock_started = time.monotonic()
    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with Brama(cleanup_interval=0.01) as brama:
                breakers = await busy_registry(brama, 200, 100)
                scope.cancel()
                await anyio.sleep(10)
    elapsed = time.monotonic() - clock_started

    assert scope.cancelled_caught
    assert elapsed < 2.0
    assert brama.closed is True
    with pytest.raises(RegistryClosedError):
        breakers[0].status()
    assert task_ids() == baseline


async def test_error_in_the_block_propagates_unchanged():
    """An exception leaving the block is re-raised as itself."""
    error = Boom("from the body")

    async def use_and_fail():
        async with Brama() as brama:
            await busy_registry(brama, 20, 10)
            raise error

    with pytest.raises(Boom) as caught:
        await use_and_fail()

    assert caught.value is error
    assert caught.value.__cause__ is None


async def test_every_handle_refuses_use_after_close():
    """Registry methods, handles, decorators and subscriptions all raise
    ``RegistryClosedError`` once the block is left."""
    async with Brama() as brama:
        breaker = await brama.register("api")

        @brama.circuit_breaker("decorated")
        async def decorated():
            return 1

        @breaker
        async def wrapped():
            return 2

        await decorated()

    sync_uses = [
        lambda: brama.status("api"),
        lambda: brama.available("api"),
        lambda: brama.breaker("api"),
        brama.connections,
        brama.subscribe,
        breaker.status,
        breaker.available,
    ]
    async_uses = [
        lambda: brama.register("new"),
        lambda: brama.unregister("api"),
        lambda: brama.success("api"),
        lambda: brama.failure("api"),
        lambda: brama.open_circuit("api"),
        lambda: brama.close_circuit("api"),
        lambda: brama.reset_circuit("api"),
        lambda: brama.reset_expiry("api"),
        lambda: brama.set_expiry("api", 5.0),
        lambda: brama.disable_expiry("api"),
        lambda: brama.configure(max_attempts=3),
        lambda: brama.configure("api", max_attempts=3),
        lambda: breaker.call(succeed),
        lambda: breaker.success(),
        lambda: breaker.failure(),
        lambda: breaker.open_circuit(),
        lambda: breaker.set_expiry(1.0),
        decorated,
        wrapped,
    ]
    refused = 0
    for use in sync_uses:
        with pytest.raises(RegistryClosedError):
            use()
        refused += 1
    for use in async_uses:
        with pytest.raises(RegistryClosedError):
            await use()
        refused += 1
    ran = False
    with pytest.raises(RegistryClosedError):
        async with breaker:
            ran = True

    assert refused == len(sync_uses) + len(async_uses)
    assert ran is False
    assert issubclass(RegistryClosedError, RuntimeError)


async def test_registry_must_be_entered_once():
    """Use before entering is refused, and a registry is entered only once."""
    brama = Brama()
    with pytest.raises(RegistryClosedError):
        await brama.register("api")
    async with brama:
        with pytest.raises(RuntimeError):
            async with brama:
                pass
        still_running = not brama.closed
    with pytest.raises(RuntimeError):
        async with brama:
            pass

    assert still_running


async def test_manual_clock_keeps_working_after_close():
    """Advancing a manual clock after its registry closed is harmless."""
    clock = ManualClock()
    async with Brama(clock=clock) as brama:
        breaker = await brama.register("api", max_attempts=1, expiry=1.0)
        await breaker.failure()
    await clock.advance(5.0)

    assert clock() == 5.0


async def test_closing_leaves_nothing_for_the_garbage_collector(caplog):
    """No never-awaited coroutine, pending task or resource warning shows up
    after a busy registry is closed and collected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Brama(cleanup_interval=0.01) as brama:
            breakers = await busy_registry(brama, 300, 150)
            subscription = brama.subscribe()
            await breakers[-1].call(succeed)
            await anyio.sleep(0.05)
        del breakers, subscription, brama
        for _ in range(3):
            gc.collect()
        await anyio.lowlevel.checkpoint()

    problems = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]

    assert [str(w.message) for w in caught] == []
    assert problems == []


async def test_half_open_state_survives_until_close():
    """A registry on the real clock half-opens on time while running."""
    async with Brama() as brama:
        breaker = await brama.register("api", max_attempts=1, expiry=0.05)
        await breaker.failure()
        with anyio.fail_after(2):
            async with brama.subscribe(events=["circuit_half_opened"]) as events:
                async for _ in events:
                    break
        state = breaker.status().state

    assert state == State.HALF_OPEN
