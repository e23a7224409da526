"""Edge cases at the borders of the API: odd call sites, odd options."""

from __future__ import annotations

import time
import typing

import anyio
import anyio.lowlevel
import pytest

from brama_async import Brama, CircuitOpenError, ConfigurationError, State
from brama_async.testing import ManualClock

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """A counted failure."""


class Biz(Exception):
    """An excluded, business-level error."""


async def boom() -> None:
    raise Boom


async def test_context_entered_and_left_in_different_tasks_frees_the_trial():
    """An exit in another task is matched to the current period: the
    half-open trial slot it held is freed and its outcome counts."""
    clock = ManualClock()
    async with Brama(clock=clock, max_attempts=1, expiry=1.0) as brama:
        breaker = await brama.register("api")
        with pytest.raises(Boom):
            await breaker.call(boom)
        await clock.advance(1.0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(breaker.__aenter__)
        during = breaker.status().trials_in_flight
        async with anyio.create_task_group() as tg:
            tg.start_soon(breaker.__aexit__, None, None, None)

        after = breaker.status()

    assert during == 1
    assert after.state == State.CLOSED
    assert after.trials_in_flight == 0
    assert after.in_flight == 0


@pytest.mark.parametrize("bad", [5, None, "x"])
async def test_call_with_a_non_callable_counts_nothing(bad):
    """``call(5)`` is a programming error, not an outage."""
    async with Brama(clock=ManualClock(), max_attempts=1) as brama:
        breaker = await brama.register("api")
        with pytest.raises(TypeError, match="needs a callable"):
            await breaker.call(bad)

        status = breaker.status()

    assert (status.state, status.failure_count, status.in_flight) == (
        State.CLOSED,
        0,
        0,
    )


async def test_call_with_a_function_returning_no_awaitable_counts_nothing():
    """A plain function passed to ``call()`` is refused without a failure."""
    async with Brama(clock=ManualClock(), max_attempts=1) as brama:
        breaker = await brama.register("api")
        with pytest.raises(TypeError, match="returned None"):
            await breaker.call(lambda: None)

        status = breaker.status()

    assert (status.state, status.failure_count) == (State.CLOSED, 0)


async def test_call_with_arguments_that_do_not_fit_counts_nothing():
    """Wrong arguments for an ``async def`` raise its TypeError, uncounted."""

    async def takes_one(value: int) -> int:
        return value

    async with Brama(clock=ManualClock(), max_attempts=1) as brama:
        breaker = await brama.register("api")
        with pytest.raises(TypeError, match="positional argument"):
            await breaker.call(takes_one, 1, 2)  # type: ignore[call-arg]

        status = breaker.status()

    assert (status.state, status.failure_count) == (State.CLOSED, 0)


async def test_type_error_raised_inside_the_function_counts():
    """A TypeError from the dependency's own code is a failure like any."""

    async def broken() -> None:
        raise TypeError("inside")

    async with Brama(clock=ManualClock(), max_attempts=1) as brama:
        breaker = await brama.register("api")
        with pytest.raises(TypeError, match="inside"):
            await breaker.call(broken)

        state = breaker.status().state

    assert state == State.OPEN


async def test_decorator_options_are_resolved_when_applied():
    """A later ``configure()`` cannot make accepted options fail on first use."""
    async with Brama(clock=ManualClock(), expiry=60.0) as brama:

        @brama.circuit_breaker("x", expiry_strategy="progressive", max_expiry=100.0)
        async def f() -> int:
            return 1

        await brama.configure(expiry=500.0)
        result = await f()
        status = brama.status("x")

    assert result == 1
    assert (status.expiry, status.max_expiry) == (60.0, 100.0)


async def test_decorator_keeps_a_one_shot_exclude_and_copies_metadata():
    """Options given as generators and mutable mappings are taken as they were."""
    metadata = {"team": "search"}
    async with Brama(clock=ManualClock(), max_attempts=1) as brama:

        @brama.circuit_breaker("g", exclude=(t for t in [Biz]), metadata=metadata)
        async def g() -> None:
            raise Biz

        metadata["team"] = "changed"
        with pytest.raises(Biz):
            await g()

        status = brama.status("g")

    assert status.state == State.CLOSED
    assert dict(status.metadata) == {"team": "search"}


async def test_decorated_function_keeps_its_annotations():
    """``typing.get_type_hints`` works on a ``circuit_breaker`` function."""
    async with Brama(clock=ManualClock()) as brama:

        @brama.circuit_breaker("typed")
        async def search(query: str) -> list[str]:
            return [query]

        hints = typing.get_type_hints(search)

    assert hints == {"query": str, "return": list[str]}


async def test_progressive_bounds_do_not_constrain_fixed_connections():
    """``max_expiry`` below ``expiry`` only matters to the progressive strategy."""
    async with Brama(clock=ManualClock(), expiry=60.0, max_expiry=100.0) as brama:
        fixed = await brama.register("x", expiry=500.0)
        await fixed.set_expiry(700.0)
        with pytest.raises(ConfigurationError, match="max_expiry"):
            await brama.register("y", expiry=500.0, expiry_strategy="progressive")

        status = fixed.status()
        names = [s.identifier for s in brama.connections()]

    assert status.expiry == 700.0
    assert names == ["x"]


async def test_two_readers_of_one_subscription_both_end_on_close():
    """Every task iterating a subscription wakes when it closes."""
    ended = []
    async with Brama(clock=ManualClock()) as brama:
        subscription = brama.subscribe()

        async def reader(name: str) -> None:
            async for _ in subscription:
                pass
            ended.append(name)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader, "a")
                tg.start_soon(reader, "b")
                await anyio.sleep(0.01)
                await brama.register("api")
                await anyio.sleep(0.01)
                subscription.close()

    assert sorted(ended) == ["a", "b"]


async def test_async_predicates_are_refused():
    """An ``async def`` predicate would always look true: refused up front."""

    async def predicate(value: object) -> bool:
        return False

    async with Brama(clock=ManualClock()) as brama:
        with pytest.raises(ConfigurationError, match="is_failure"):
            await brama.register("c", is_failure=predicate)
        with pytest.raises(ConfigurationError, match="filter"):
            brama.subscribe(filter=predicate)

        count = len(brama)

    assert count == 0


@pytest.mark.parametrize("closing", ["close_circuit", "reset_circuit"])
async def test_a_close_ends_a_disabled_expiry(closing):
    """After a close, the next trip heals on time again."""
    clock = ManualClock()
    async with Brama(clock=clock, max_attempts=1, expiry=5.0) as brama:
        breaker = await brama.register("api")
        await breaker.open_circuit()
        await breaker.disable_expiry()
        await getattr(breaker, closing)()
        with pytest.raises(Boom):
            await breaker.call(boom)
        await clock.advance(5.0)

        status = breaker.status()

    assert status.expiry_enabled is True
    assert status.state == State.HALF_OPEN


async def test_error_messages_stay_short_for_huge_values():
    """A huge bad value is abbreviated in the message, which still names it."""
    async with Brama(clock=ManualClock()) as brama:
        with pytest.raises(ConfigurationError) as caught:
            await brama.register("a", metadata="x" * 1_000_000)  # type: ignore[arg-type]

    assert "metadata" in str(caught.value)
    assert len(str(caught.value)) < 300


async def test_a_retired_handle_says_so():
    """The repr of a handle whose connection is gone says it is gone."""
    async with Brama(clock=ManualClock()) as brama:
        breaker = await brama.register("api")
        await brama.unregister("api")

    assert repr(breaker) == "<Breaker identifier='api' scope=None state=gone>"


async def test_wall_clock_jumps_change_nothing():
    """Timing uses the monotonic clock: moving the wall clock a day ahead
    (as time-machine does) neither ends an open period nor shortens it."""
    import time_machine

    async with Brama(max_attempts=1, expiry=60.0) as brama:
        breaker = await brama.register("api")
        with pytest.raises(Boom):
            await breaker.call(boom)

        with time_machine.travel(time.time() + 86_400, tick=False):
            state = breaker.status().state
            with pytest.raises(CircuitOpenError) as refused:
                await breaker.call(boom)

    assert state == State.OPEN
    assert refused.value.remaining is not None
    assert 59.0 < refused.value.remaining <= 60.0


async def test_events_keep_their_order_under_a_thousand_concurrent_transitions():
    """A thousand circuits tripping at once: every event arrives, and each
    connection's events arrive in the order they happened."""
    count = 1000
    async with Brama(clock=ManualClock(), max_attempts=1) as brama:
        breakers = [await brama.register(f"c{index}") for index in range(count)]
        subscription = brama.subscribe(max_queued=10 * count)

        async def fail_once(breaker):
            async def flaky() -> None:
                await anyio.lowlevel.checkpoint()
                raise Boom

            with pytest.raises(Boom):
                await breaker.call(flaky)

        async with anyio.create_task_group() as tg:
            for breaker in breakers:
                tg.start_soon(fail_once, breaker)

        events = []
        while (event := subscription.get_nowait()) is not None:
            events.append(event)

    per_connection: dict[str | None, list[str]] = {}
    for event in events:
        per_connection.setdefault(event.identifier, []).append(event.type.value)

    assert subscription.dropped == 0
    assert len(events) == 3 * count
    assert all(
        kinds == ["failure", "circuit_opened", "state_change"]
        for kinds in per_connection.values()
    )
    assert len(per_connection) == count


async def test_names_that_are_not_valid_text_are_refused():
    """A lone surrogate cannot be stored anywhere: refused, nothing registered."""
    async with Brama(clock=ManualClock()) as brama:
        with pytest.raises(ConfigurationError, match="identifier"):
            await brama.register("bad\ud800")
        with pytest.raises(ConfigurationError, match="scope"):
            await brama.register("ok", scope="\udfff")

        count = len(brama)

    assert count == 0
