"""Behaviours that other circuit breakers got wrong, checked on every backend.

Expiry is driven by the manual clock; real time is only used where the
scenario is about concurrency, cancellation or timeouts, and then in short
steps.
"""

import inspect
import math
import time
from contextlib import asynccontextmanager

import anyio
import pytest

from brama_async import CircuitOpenError, State

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """A counted failure."""


class Biz(Exception):
    """A business error that the breaker is told to exclude."""


class Abort(BaseException):
    """A non-``Exception`` that must never count."""


async def drain(subscription):
    """Close a subscription and return the events it had queued."""
    subscription.close()

    return [event async for event in subscription]


def types(events, *wanted):
    """The types of ``events``, keeping only ``wanted`` ones if given."""
    return [e.type for e in events if not wanted or e.type in wanted]


async def fail():
    raise Boom


async def succeed():
    return "ok"


async def trip(breaker, count):
    """Open ``breaker`` with ``count`` failing calls."""
    for _ in range(count):
        with pytest.raises(Boom):
            await breaker.call(fail)


def run_in_style(breaker, style, body):
    """A zero-argument coroutine function running ``body`` through ``style``."""
    if style == "call":

        async def via_call():
            return await breaker.call(body)

        return via_call

    if style == "context":

        async def via_context():
            async with breaker:
                return await body()

        return via_context

    return breaker(body)


STYLES = ["call", "context", "decorator"]


@pytest.mark.parametrize("slots", [1, 3])
async def test_half_open_admits_only_its_trial_slots(brama, brama_clock, slots):
    """Half-open runs at most ``half_open_max_calls`` trials and refuses the rest.

    Ten concurrent callers arrive after the expiry; the trials fail, so the
    circuit opens again with a fresh opening time and a full expiry.
    """
    breaker = await brama.register(
        "api", max_attempts=2, expiry=1.0, half_open_max_calls=slots
    )
    await trip(breaker, 2)
    first_opened_at = breaker.status().opened_at
    await brama_clock.advance(1.0)
    half_open = breaker.status().state
    release = anyio.Event()
    runs = 0
    outcomes = []

    async def slow_failure():
        nonlocal runs
        runs += 1
        await release.wait()
        raise Boom

    async def caller():
        try:
            await breaker.call(slow_failure)
        except CircuitOpenError:
            outcomes.append("refused")
        except Boom:
            outcomes.append("boom")

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        refused_at_once = outcomes.count("refused")
        in_flight = breaker.status().in_flight
        release.set()

    after = breaker.status()

    assert half_open == State.HALF_OPEN
    assert runs == slots
    assert refused_at_once == 10 - slots
    assert in_flight == slots
    assert outcomes.count("boom") == slots
    assert after.state == State.OPEN
    assert after.opened_at > first_opened_at
    assert after.in_flight == 0
    assert (after.half_open_at - after.opened_at).total_seconds() == pytest.approx(
        1.0, abs=1e-5
    )


async def test_failed_trial_reopens_and_rearms_the_timer(brama, brama_clock):
    """A failed trial reopens at once and the new expiry counts from it."""
    breaker = await brama.register("api", max_attempts=3, expiry=1.0)
    await trip(breaker, 3)
    await brama_clock.advance(1.0)
    runs = 0

    async def counted():
        nonlocal runs
        runs += 1
        return "ok"

    with pytest.raises(Boom):
        await breaker.call(fail)
    after_trial = breaker.status().state
    await brama_clock.advance(0.5)
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(counted)
    runs_while_open = runs
    await brama_clock.advance(0.55)
    result = await breaker.call(counted)

    assert after_trial == State.OPEN
    assert refused.value.remaining == pytest.approx(0.5)
    assert runs_while_open == 0
    assert result == "ok"
    assert runs == 1
    assert breaker.status().state == State.CLOSED


@pytest.mark.parametrize("holder", STYLES)
async def test_every_call_style_shares_the_trial_slot(brama, brama_clock, holder):
    """Call, context manager and decorator all take the same half-open slot.

    Five concurrent trials in one style: one body runs. While it runs, every
    other style is refused too. The successful trial closes the circuit.
    """
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker, 1)
    await brama_clock.advance(1.0)
    release = anyio.Event()
    bodies = 0
    refused = []

    async def body():
        nonlocal bodies
        bodies += 1
        await release.wait()
        return "ok"

    async def attempt(style):
        try:
            await run_in_style(breaker, style, body)()
        except CircuitOpenError:
            refused.append(style)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(attempt, holder)
        await anyio.wait_all_tasks_blocked()
        for style in ["call"] + ["decorator"] * 4 + ["context"]:
            await attempt(style)
        bodies_while_held = bodies
        release.set()

    assert bodies_while_held == 1
    assert bodies == 1
    assert sorted(refused) == sorted(
        [holder] * 4 + ["call", "context"] + 4 * ["decorator"]
    )
    assert breaker.status().state == State.CLOSED
    assert breaker.status().in_flight == 0


async def test_trial_ending_in_excluded_error_closes_the_circuit(brama, brama_clock):
    """An excluded error from the trial propagates unchanged and counts as success."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0, exclude=(Biz,))
    await trip(breaker, 1)
    await brama_clock.advance(1.0)
    error = Biz("not ours")

    async def business():
        raise error

    with pytest.raises(Biz) as caught:
        await breaker.call(business)
    state = breaker.status().state
    result = await breaker.call(succeed)

    assert caught.value is error
    assert state == State.CLOSED
    assert result == "ok"


async def test_trial_abandoned_by_caller_timeout_frees_its_slot(brama, brama_clock):
    """A hung trial whose caller times out stays undecided and frees the slot."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker, 1)
    await brama_clock.advance(1.0)
    never = anyio.Event()

    async def hang():
        await never.wait()

    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.1):
            await breaker.call(hang)
    after_timeout = breaker.status()
    available = breaker.available()
    result = await breaker.call(succeed)

    assert after_timeout.state == State.HALF_OPEN
    assert after_timeout.in_flight == 0
    assert after_timeout.failure_count == 1
    assert available is True
    assert result == "ok"
    assert breaker.status().state == State.CLOSED


async def test_cancelled_trial_is_not_swallowed_and_frees_its_slot(brama, brama_clock):
    """Cancelling a half-open trial ends the caller's scope at once, counts
    nothing and leaves the circuit half-open with the slot free."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker, 1)
    await brama_clock.advance(1.0)
    subscription = brama.subscribe()
    reached = False

    async def long_trial():
        await anyio.sleep(10)

    started = time.monotonic()
    with anyio.move_on_after(0.1) as scope:
        await breaker.call(long_trial)
        reached = True
    elapsed = time.monotonic() - started
    after_cancel = breaker.status()
    available = breaker.available()
    result = await breaker.call(succeed)
    events = await drain(subscription)

    assert scope.cancelled_caught
    assert not reached
    assert elapsed < 1.0
    assert after_cancel.state == State.HALF_OPEN
    assert after_cancel.in_flight == 0
    assert after_cancel.failure_count == 1
    assert available is True
    assert result == "ok"
    assert breaker.status().state == State.CLOSED
    assert "failure" not in types(events)


@pytest.mark.parametrize("make_error", [KeyboardInterrupt, SystemExit, Abort])
async def test_trial_ending_in_base_exception_propagates_and_frees_its_slot(
    brama, brama_clock, make_error
):
    """A trial raising a non-``Exception`` re-raises it unchanged, decides
    nothing and leaves the slot free for a trial that then closes the circuit."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker, 1)
    await brama_clock.advance(1.0)
    error = make_error()

    async def interrupted():
        raise error

    with pytest.raises(make_error) as caught:
        await breaker.call(interrupted)
    after = breaker.status()
    available = breaker.available()
    result = await breaker.call(succeed)

    assert caught.value is error
    assert after.state == State.HALF_OPEN
    assert after.in_flight == 0
    assert after.failure_count == 1
    assert available is True
    assert result == "ok"
    assert breaker.status().state == State.CLOSED


async def test_caller_cancellation_is_never_a_failure(brama):
    """Cancel scopes of the caller around a call never count as failures."""
    breaker = await brama.register("api", max_attempts=3)
    subscription = brama.subscribe()
    cancelled = 0

    async def slow():
        await anyio.sleep(1)

    for _ in range(5):
        with anyio.move_on_after(0.01) as scope:
            await breaker.call(slow)
        cancelled += scope.cancelled_caught
    status = breaker.status()
    events = await drain(subscription)

    assert cancelled == 5
    assert status.failure_count == 0
    assert status.state == State.CLOSED
    assert status.in_flight == 0
    assert types(events, "failure", "circuit_opened") == []


async def test_timeout_inside_the_protected_function_counts(brama):
    """A timeout raised inside the function is a ``TimeoutError`` and counts."""
    breaker = await brama.register("api", max_attempts=3)
    seen = []

    async def times_out():
        with anyio.fail_after(0.05):
            await anyio.sleep(1)

    for _ in range(3):
        with pytest.raises(TimeoutError) as caught:
            await breaker.call(times_out)
        seen.append(breaker.status().state)

    assert isinstance(caught.value, TimeoutError)
    assert seen == [State.CLOSED, State.CLOSED, State.OPEN]
    assert breaker.status().failure_count == 3


async def test_failure_predicate_never_sees_base_exceptions(brama):
    """``is_failure`` is only asked about ``Exception``s; cancellation,
    interrupts, exits and other base exceptions propagate unchanged."""
    asked = []

    def is_failure(exc):
        asked.append(exc)
        return not isinstance(exc, ValueError)

    breaker = await brama.register("api", max_attempts=5, is_failure=is_failure)

    async def slow():
        await anyio.sleep(1)

    with anyio.move_on_after(0.01) as scope:
        await breaker.call(slow)
    propagated = []
    for error in [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), Abort()]:

        async def raises(error=error):
            raise error

        with pytest.raises(type(error)) as caught:
            await breaker.call(raises)
        propagated.append(caught.value is error)
    count_after_base = breaker.status().failure_count
    value_error = ValueError("not a failure")

    async def raises_value_error():
        raise value_error

    with pytest.raises(ValueError, match="not a failure"):
        await breaker.call(raises_value_error)
    count_after_value_error = breaker.status().failure_count
    with pytest.raises(Boom):
        await breaker.call(fail)

    assert scope.cancelled_caught
    assert propagated == [True, True, True, True]
    assert count_after_base == 0
    assert count_after_value_error == 0
    assert breaker.status().failure_count == 1
    assert asked[0] is value_error
    assert isinstance(asked[1], Boom)
    assert len(asked) == 2


@pytest.mark.parametrize("strategy", ["fixed", "progressive"])
async def test_repeated_recovery_cycles_all_go_through_half_open(
    brama, brama_clock, strategy
):
    """Three rounds of fail, expire, succeed: each opens, half-opens and
    closes; with progressive expiry each round opens for the initial expiry."""
    breaker = await brama.register(
        "api", max_attempts=1, expiry=1.0, expiry_strategy=strategy
    )
    subscription = brama.subscribe()
    rounds = []
    for _ in range(3):
        await trip(breaker, 1)
        trips = breaker.status().trips
        await brama_clock.advance(0.5)
        midway = breaker.status().state
        await brama_clock.advance(0.5)
        expired = breaker.status().state
        await breaker.call(succeed)
        rounds.append((trips, midway, expired, breaker.status().state))
    events = await drain(subscription)

    assert rounds == [(1, State.OPEN, State.HALF_OPEN, State.CLOSED)] * 3
    assert (
        types(events, "circuit_opened", "circuit_half_opened", "circuit_closed")
        == ["circuit_opened", "circuit_half_opened", "circuit_closed"] * 3
    )


async def test_success_resets_the_consecutive_failure_count(brama):
    """Failures separated by successes never add up to a trip."""
    breaker = await brama.register("api", max_attempts=3)
    states = []
    for outcome in "FFSFFSF":
        if outcome == "F":
            with pytest.raises(Boom):
                await breaker.call(fail)
        else:
            await breaker.call(succeed)
        states.append(breaker.status().state)

    assert states == [State.CLOSED] * 7
    assert breaker.status().failure_count == 1
    assert breaker.status().trips == 0


async def test_excluded_errors_propagate_and_never_count(brama):
    """Excluded errors reach the caller unchanged, with no failure counted."""
    breaker = await brama.register("api", max_attempts=2, exclude=(Biz,))
    subscription = brama.subscribe()
    caught = []
    for index in range(3):
        error = Biz(index)

        async def business(error=error):
            raise error

        with pytest.raises(Biz) as info:
            await breaker.call(business)
        caught.append(info.value is error)
    events = await drain(subscription)

    assert caught == [True, True, True]
    assert breaker.status().failure_count == 0
    assert breaker.status().state == State.CLOSED
    assert types(events, "failure", "circuit_opened") == []


@pytest.mark.parametrize("how", ["breaker", "registry"])
async def test_decorated_coroutine_records_outcome_when_awaited(brama, how):
    """The decorator counts the awaited outcome, keeps the function's
    metadata, and refuses functions that are not ``async def``."""
    if how == "breaker":
        decorate = await brama.register("api", max_attempts=2)
    else:
        decorate = brama.circuit_breaker("api", max_attempts=2)
    runs = []

    async def fetch(x, *, y=1):
        """Fetch something."""
        runs.append((x, y))
        raise Boom

    decorated = decorate(fetch)
    coroutine = decorated(0)
    coroutine.close()
    outcomes = []
    for x in range(3):
        try:
            await decorated(x, y=2)
        except Boom:
            outcomes.append("boom")
        except CircuitOpenError:
            outcomes.append("refused")

    def plain():
        return 1

    async def agen():
        yield 1

    assert outcomes == ["boom", "boom", "refused"]
    assert runs == [(0, 2), (1, 2)]
    assert decorated.__name__ == "fetch"
    assert decorated.__doc__ == "Fetch something."
    assert decorated.__wrapped__ is fetch
    assert inspect.signature(decorated) == inspect.signature(fetch)
    assert inspect.iscoroutinefunction(decorated)
    with pytest.raises(TypeError):
        decorate(plain)
    with pytest.raises(TypeError):
        decorate(agen)


async def test_generator_context_manager_gets_the_body_exception(brama):
    """Exceptions from a ``with`` body are thrown into generator-based context
    managers, whether they wrap a decorated function or the breaker itself."""
    breaker = await brama.register("api", max_attempts=5)

    @breaker
    async def connect():
        return "connected"

    @asynccontextmanager
    async def around_decorated():
        await connect()
        try:
            yield
        except KeyError as exc:
            raise ValueError("converted") from exc

    @asynccontextmanager
    async def around_breaker():
        async with breaker:
            try:
                yield
            except KeyError as exc:
                raise ValueError("converted") from exc

    with pytest.raises(ValueError, match="converted") as first:
        async with around_decorated():
            raise KeyError("body")
    count_after_decorated = breaker.status().failure_count
    with pytest.raises(ValueError, match="converted") as second:
        async with around_breaker():
            raise KeyError("body")

    assert isinstance(first.value.__cause__, KeyError)
    assert isinstance(second.value.__cause__, KeyError)
    assert count_after_decorated == 0
    assert breaker.status().failure_count == 1
    assert breaker.status().in_flight == 0


async def test_progressive_backoff_caps_without_overflow(brama, brama_clock):
    """Two thousand failed trials in a row give 1, 2, 4, ... 32, then 60 for
    good, never an error, infinity, NaN or non-positive value; recovery starts
    again at the initial expiry."""
    breaker = await brama.register(
        "api",
        max_attempts=1,
        expiry_strategy="progressive",
        initial_expiry=1.0,
        backoff_factor=2.0,
        max_expiry=60.0,
    )

    def current_duration():
        status = breaker.status()
        return (status.half_open_at - status.opened_at).total_seconds()

    await trip(breaker, 1)
    durations = [current_duration()]
    for _ in range(2000):
        await brama_clock.advance(round(durations[-1], 3))
        with pytest.raises(Boom):
            await breaker.call(fail)
        durations.append(current_duration())
    trips = breaker.status().trips
    await brama_clock.advance(60.0)
    await breaker.call(succeed)
    await trip(breaker, 1)
    after_recovery = current_duration()
    expected = [min(60.0, 2.0**n) for n in range(6)] + [60.0] * 1995

    assert durations == pytest.approx(expected, abs=1e-5)
    assert durations[1024] == pytest.approx(60.0)
    assert durations[1999] == pytest.approx(60.0)
    assert all(math.isfinite(d) and d > 0 for d in durations)
    assert trips == 2001
    assert after_recovery == pytest.approx(1.0, abs=1e-5)


async def test_tripping_failure_emits_failure_then_opened(brama):
    """The failure that trips the circuit is reported like any other."""
    breaker = await brama.register("api", max_attempts=3)
    subscription = brama.subscribe()
    await trip(breaker, 3)
    events = await drain(subscription)

    assert types(events) == [
        "failure",
        "failure",
        "failure",
        "circuit_opened",
        "state_change",
    ]
    assert events[-1].previous_state == State.CLOSED
    assert events[-1].state == State.OPEN


async def test_tripping_call_raises_its_own_exception(brama):
    """The calls that fail raise their own errors; only the refused call
    raises ``CircuitOpenError``, which names the connection, carries about the
    full expiry and the last failure."""
    breaker = await brama.register(
        "payments", scope="billing", max_attempts=2, expiry=30.0
    )
    first = ConnectionError("a")
    second = TimeoutError("b")
    ran = []

    async def raise_(error):
        ran.append(error)
        raise error

    with pytest.raises(ConnectionError) as one:
        await breaker.call(raise_, first)
    with pytest.raises(TimeoutError) as two:
        await breaker.call(raise_, second)
    with pytest.raises(CircuitOpenError) as three:
        await breaker.call(raise_, ValueError("never"))
    refused = three.value

    assert one.value is first
    assert two.value is second
    assert ran == [first, second]
    assert refused.identifier == "payments"
    assert refused.scope == "billing"
    assert refused.state == State.OPEN
    assert refused.remaining == pytest.approx(30.0)
    assert refused.last_failure is second
    assert "payments" in str(refused)


async def test_concurrent_calls_on_a_closed_circuit_run_in_parallel(brama):
    """No lock is held across the protected call."""
    breaker = await brama.register("api")
    peak = 0

    async def slow():
        nonlocal peak
        peak = max(peak, breaker.status().in_flight)
        await anyio.sleep(0.2)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(breaker.call, slow)
    elapsed = time.monotonic() - started

    assert elapsed < 1.0
    assert peak == 10
    assert breaker.status().in_flight == 0
