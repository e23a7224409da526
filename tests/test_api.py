"""The public API: registry, handles, call styles, expiry, events, cleanup."""

import copy
import math
import time
from datetime import timedelta

import anyio
import anyio.lowlevel
import pytest

from brama_async import (
    AlreadyRegistered,
    Brama,
    BramaError,
    CircuitOpenError,
    ConnectionNotFound,
    ConnectionStatus,
    EventType,
    State,
)
from brama_async.testing import (
    ManualClock,
    add_failures,
    run_cleanup,
    set_state,
    simulate_recovery,
)

pytestmark = pytest.mark.anyio
pytest_plugins = ["pytester"]

TRANSITIONS = (
    "circuit_opened",
    "circuit_half_opened",
    "circuit_closed",
    "circuit_reset",
    "state_change",
)


class Boom(Exception):
    """A counted failure."""


async def fail():
    raise Boom


async def succeed():
    return "ok"


async def drain(subscription):
    """Close a subscription and return the events it had queued."""
    subscription.close()

    return [event async for event in subscription]


def types(events, *wanted):
    """The types of ``events``, keeping only ``wanted`` ones if given."""
    return [e.type for e in events if not wanted or e.type in wanted]


def open_for(status):
    """Seconds between opening and going half-open, from a status."""
    return (status.half_open_at - status.opened_at).total_seconds()


async def trip(breaker, count=1):
    """Open ``breaker`` with ``count`` failing calls."""
    for _ in range(count):
        with pytest.raises(Boom):
            await breaker.call(fail)


def task_ids():
    """Identifiers of the tasks running now."""
    return {task.id for task in anyio.get_running_tasks()}


# Registry methods


async def test_register_returns_a_handle_with_a_fresh_closed_status(brama):
    """A new connection is closed, counts nothing and reports its options."""
    breaker = await brama.register(
        "payments",
        scope="billing",
        max_attempts=3,
        expiry=timedelta(seconds=30),
        half_open_max_calls=2,
        metadata={"team": "core"},
    )
    status = brama.status("payments", scope="billing")

    assert breaker.identifier == "payments"
    assert breaker.scope == "billing"
    assert isinstance(status, ConnectionStatus)
    assert status.identifier == "payments"
    assert status.scope == "billing"
    assert status.state == State.CLOSED
    assert status.failure_count == 0
    assert status.max_attempts == 3
    assert status.expiry == 30.0
    assert status.expiry_strategy == "fixed"
    assert status.backoff_factor == 2.0
    assert status.half_open_max_calls == 2
    assert status.expiry_enabled is True
    assert status.trips == 0
    assert status.opened_at is None
    assert status.half_open_at is None
    assert status.last_failure_at is None
    assert status.last_success_at is None
    assert status.last_activity_at.tzinfo is not None
    assert status.last_activity_at.utcoffset() == timedelta(0)
    assert status.last_failure_reason is None
    assert status.in_flight == 0
    assert status.stale is False
    assert dict(status.metadata) == {"team": "core"}


async def test_status_is_a_frozen_snapshot(brama):
    """A status never changes after it was taken, nor can it be changed."""
    breaker = await brama.register("api", metadata={"k": 1})
    before = breaker.status()
    await trip(breaker)

    assert before.failure_count == 0
    assert breaker.status().failure_count == 1
    with pytest.raises(AttributeError):
        before.failure_count = 5
    with pytest.raises(TypeError):
        before.metadata["k"] = 2


async def test_registry_defaults_apply_to_new_connections():
    """Options not given at registration come from the registry defaults."""
    async with Brama(max_attempts=2, expiry=7.0, half_open_max_calls=4) as brama:
        breaker = await brama.register("api")
        status = breaker.status()

    assert status.max_attempts == 2
    assert status.expiry == 7.0
    assert status.half_open_max_calls == 4


async def test_register_refuses_a_taken_key_but_keys_are_pairs(brama):
    """The key is ``(scope, identifier)``: names never collide across scopes."""
    await brama.register("b", scope="a")
    await brama.register("a:b")
    await brama.register("b")
    await trip(brama.breaker("b", scope="a"))

    with pytest.raises(AlreadyRegistered):
        await brama.register("b", scope="a")
    assert issubclass(AlreadyRegistered, BramaError)
    assert brama.status("b", scope="a").failure_count == 1
    assert brama.status("a:b").failure_count == 0
    assert brama.status("b").failure_count == 0
    assert len(brama.connections()) == 3


async def test_breaker_lookup_and_unknown_connections(brama):
    """Unknown keys raise ``ConnectionNotFound``, a ``LookupError``."""
    await brama.register("api", scope="s")
    breaker = brama.breaker("api", scope="s")

    assert breaker.identifier == "api"
    assert breaker.scope == "s"
    with pytest.raises(ConnectionNotFound):
        brama.breaker("api")
    with pytest.raises(LookupError):
        brama.status("missing")
    with pytest.raises(ConnectionNotFound):
        brama.available("missing")
    with pytest.raises(ConnectionNotFound):
        await brama.success("missing")
    with pytest.raises(ConnectionNotFound):
        await brama.failure("missing")
    with pytest.raises(ConnectionNotFound):
        await brama.open_circuit("missing")


async def test_unregister_removes_and_reports_whether_it_did(brama):
    """``unregister`` is ``True`` once, then ``False``; old handles stop working."""
    breaker = await brama.register("api")
    subscription = brama.subscribe()
    removed = await brama.unregister("api")
    again = await brama.unregister("api")
    events = await drain(subscription)

    assert removed is True
    assert again is False
    assert types(events) == ["unregistered"]
    assert brama.connections() == []
    with pytest.raises(ConnectionNotFound):
        breaker.status()
    with pytest.raises(ConnectionNotFound):
        await breaker.call(succeed)


async def test_unregistered_then_registered_again_starts_fresh(brama):
    """A re-registered key is a new closed circuit."""
    breaker = await brama.register("api", max_attempts=1)
    await trip(breaker)
    await brama.unregister("api")
    await brama.register("api", max_attempts=1)

    assert brama.status("api").state == State.CLOSED
    assert brama.status("api").trips == 0
    assert brama.status("api").last_failure_at is None


async def test_connections_lists_snapshots_of_every_connection(brama):
    """``connections()`` returns one status per registered connection."""
    await brama.register("a")
    await brama.register("b", scope="s")
    keys = {(s.scope, s.identifier) for s in brama.connections()}

    assert keys == {(None, "a"), ("s", "b")}
    assert all(isinstance(s, ConnectionStatus) for s in brama.connections())


async def test_manual_reports_through_the_registry(brama):
    """``success`` and ``failure`` by identifier count like call outcomes."""
    await brama.register("api", scope="s", max_attempts=2)
    await brama.failure("api", scope="s", reason="timeout talking to api")
    after_failure = brama.status("api", scope="s")
    await brama.success("api", scope="s")
    after_success = brama.status("api", scope="s")
    await brama.failure("api", scope="s")
    await brama.failure("api", scope="s", reason="second")

    assert after_failure.failure_count == 1
    assert after_failure.last_failure_reason == "timeout talking to api"
    assert after_failure.last_failure_at is not None
    assert after_success.failure_count == 0
    assert after_success.last_success_at is not None
    assert brama.status("api", scope="s").state == State.OPEN
    assert brama.status("api", scope="s").last_failure_reason == "second"


async def test_manual_reports_while_open_move_nothing(brama, brama_clock):
    """While open, a reported failure is recorded without pushing the expiry,
    and a reported success does not close the circuit."""
    breaker = await brama.register("api", max_attempts=1, expiry=10.0)
    await trip(breaker)
    opened = breaker.status()
    subscription = brama.subscribe()
    await brama_clock.advance(4.0)
    await breaker.failure(reason="still down")
    await breaker.success()
    after = breaker.status()
    events = await drain(subscription)

    assert after.state == State.OPEN
    assert after.opened_at == opened.opened_at
    assert after.half_open_at == opened.half_open_at
    assert after.last_failure_reason == "still down"
    assert types(events, *TRANSITIONS) == []
    assert "failure" in types(events)


async def test_manual_failure_while_half_open_reopens(brama, brama_clock):
    """A failure reported by hand decides a half-open circuit."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker)
    await brama_clock.advance(1.0)
    await breaker.failure()

    assert breaker.status().state == State.OPEN
    assert breaker.status().trips == 2


async def test_available_reads_without_taking_a_slot(brama, brama_clock):
    """``available`` is closed, or half-open with a free slot, and reading it
    or the status never takes a slot."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    closed = breaker.available()
    await trip(breaker)
    opened = brama.available("api")
    await brama_clock.advance(1.0)
    half_open = [breaker.available() for _ in range(5)]
    for _ in range(5):
        breaker.status()
    release = anyio.Event()

    async def hold():
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(breaker.call, hold)
        await anyio.wait_all_tasks_blocked()
        while_trial_runs = breaker.available()
        status_during = breaker.status()
        release.set()

    assert closed is True
    assert opened is False
    assert half_open == [True] * 5
    assert while_trial_runs is False
    assert status_during.state == State.HALF_OPEN
    assert status_during.in_flight == 1
    assert breaker.status().state == State.CLOSED


async def test_expired_circuit_reads_half_open_before_the_timer(brama, brama_clock):
    """Reads apply a due expiry even if the timer has not fired yet."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker)
    subscription = brama.subscribe()
    await brama_clock.advance(2.0)
    status = breaker.status()
    events = await drain(subscription)

    assert status.state == State.HALF_OPEN
    assert status.half_open_at is None
    assert types(events, *TRANSITIONS) == ["circuit_half_opened", "state_change"]


# The three call styles


async def test_call_passes_arguments_and_returns_the_result(brama):
    """``call`` forwards positional and keyword arguments."""
    breaker = await brama.register("api")

    async def add(a, b, *, c=0):
        return a + b + c

    result = await breaker.call(add, 1, 2, c=3)

    assert result == 6


async def test_context_manager_counts_the_body(brama):
    """``async with`` counts a raising body and resets on a clean one, and is
    refused at entry when open without running the body."""
    breaker = await brama.register("api", max_attempts=2)
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    after_failure = breaker.status().failure_count
    async with breaker:
        pass
    after_success = breaker.status().failure_count
    for _ in range(2):
        with pytest.raises(Boom):
            async with breaker:
                raise Boom
    ran = False
    with pytest.raises(CircuitOpenError):
        async with breaker:
            ran = True

    assert after_failure == 1
    assert after_success == 0
    assert ran is False
    assert breaker.status().in_flight == 0


async def test_decorator_forwards_arguments(brama):
    """A decorated coroutine function keeps its arguments and result."""
    breaker = await brama.register("api")

    @breaker
    async def greet(name, *, punctuation="!"):
        return f"hi {name}{punctuation}"

    assert await greet("ana", punctuation="?") == "hi ana?"


async def test_circuit_breaker_registers_on_first_use(brama):
    """``circuit_breaker`` registers on the first call, then reuses it."""

    @brama.circuit_breaker("search", scope="web", max_attempts=3)
    async def search(query):
        if query == "bad":
            raise Boom
        return [query]

    before = [s.identifier for s in brama.connections()]
    result = await search("x")
    with pytest.raises(Boom):
        await search("bad")

    assert before == []
    assert result == ["x"]
    assert brama.status("search", scope="web").max_attempts == 3
    assert brama.status("search", scope="web").failure_count == 1


async def test_circuit_breaker_uses_an_existing_connection(brama):
    """A decorator on an existing key shares that connection."""
    breaker = await brama.register("search", max_attempts=1)
    await trip(breaker)

    @brama.circuit_breaker("search", max_attempts=9)
    async def search():
        return 1

    with pytest.raises(CircuitOpenError):
        await search()
    assert brama.status("search").max_attempts == 1


async def test_nested_use_of_one_breaker_leaks_nothing(brama, brama_clock):
    """Nested use counts each level; a refused inner trial is a failure of the
    outer one, and every slot is given back."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    async with breaker, breaker:
        nested_in_flight = breaker.status().in_flight
    await trip(breaker)
    await brama_clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        async with breaker:
            await breaker.call(succeed)
    after = breaker.status()

    assert nested_in_flight == 2
    assert after.state == State.OPEN
    assert after.in_flight == 0
    assert after.trials_in_flight == 0


async def test_circuit_open_error_inside_counts_for_the_outer_breaker(brama):
    """A refusal from an inner breaker is an ordinary failure to the outer one."""
    inner = await brama.register("inner", max_attempts=1)
    outer = await brama.register("outer", max_attempts=5)
    await trip(inner)
    with pytest.raises(CircuitOpenError):
        await outer.call(inner.call, succeed)

    assert outer.status().failure_count == 1


async def test_late_success_from_before_the_open_does_not_close(brama):
    """An outcome from a call admitted before the circuit opened moves nothing."""
    breaker = await brama.register("api", max_attempts=5)
    release = anyio.Event()

    async def slow():
        await release.wait()
        return "late"

    async with anyio.create_task_group() as tg:
        tg.start_soon(breaker.call, slow)
        await anyio.wait_all_tasks_blocked()
        await breaker.open_circuit(reason="maintenance")
        release.set()

    assert breaker.status().state == State.OPEN
    assert breaker.status().in_flight == 0


async def test_late_success_does_not_close_a_half_open_circuit(brama, brama_clock):
    """A success of a call admitted while closed does not decide the trial
    period that follows, nor does it take or free a trial slot."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    release = anyio.Event()

    async def slow():
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(breaker.call, slow)
        await anyio.wait_all_tasks_blocked()
        await trip(breaker)
        await brama_clock.advance(1.0)
        release.set()

    after = breaker.status()

    assert after.state == State.HALF_OPEN
    assert after.trips == 1
    assert after.trials_in_flight == 0
    assert breaker.available() is True


async def test_late_failure_neither_reopens_nor_extends(brama, brama_clock):
    """A failure of a call admitted while closed does not reopen a half-open
    circuit, nor push forward the opening time of an open one."""
    breaker = await brama.register("api", max_attempts=1, expiry=10.0)
    gates = [anyio.Event(), anyio.Event()]

    async def slow(gate):
        await gate.wait()
        raise Boom

    async def late(gate):
        with pytest.raises(Boom):
            await breaker.call(slow, gate)

    async with anyio.create_task_group() as tg:
        tg.start_soon(late, gates[0])
        tg.start_soon(late, gates[1])
        await anyio.wait_all_tasks_blocked()
        await trip(breaker)
        opened = breaker.status()
        await brama_clock.advance(5.0)
        gates[0].set()
        await anyio.wait_all_tasks_blocked()
        while_open = breaker.status()
        await brama_clock.advance(5.0)
        gates[1].set()

    assert while_open.opened_at == opened.opened_at
    assert while_open.half_open_at == opened.half_open_at
    assert breaker.status().state == State.HALF_OPEN
    assert breaker.status().trips == 1


# Expiry strategies


async def trip_durations(breaker, clock, rounds):
    """Durations of ``rounds`` consecutive opens with failed trials between."""
    durations = []
    await trip(breaker)
    for _ in range(rounds):
        durations.append(open_for(breaker.status()))
        await clock.advance(round(durations[-1], 3))
        await trip(breaker)

    return durations


async def test_fixed_expiry_lasts_the_same_every_time(brama, brama_clock):
    """Every open of a fixed circuit lasts ``expiry``."""
    breaker = await brama.register("api", max_attempts=1, expiry=3.0)

    durations = await trip_durations(breaker, brama_clock, 4)

    assert durations == pytest.approx([3.0] * 4, abs=1e-5)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"initial_expiry": 2.0, "backoff_factor": 3.0, "max_expiry": 50.0},
            [2.0, 6.0, 18.0, 50.0, 50.0],
        ),
        ({"expiry": 1.0}, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
        ({"expiry": 5.0, "backoff_factor": 1.0}, [5.0, 5.0, 5.0]),
        (
            {"initial_expiry": 1.0, "backoff_factor": 1000.0, "max_expiry": 1e9},
            [1.0, 1e3, 1e6, 1e9, 1e9],
        ),
    ],
)
async def test_progressive_expiry_grows_to_its_cap(
    brama, brama_clock, options, expected
):
    """The n-th consecutive open lasts ``min(max, initial * factor**(n-1))``;
    by default initial is ``expiry`` and the cap ``10 * expiry``."""
    breaker = await brama.register(
        "api", max_attempts=1, expiry_strategy="progressive", **options
    )

    durations = await trip_durations(breaker, brama_clock, len(expected))

    assert durations == pytest.approx(expected, rel=1e-9, abs=1e-5)
    assert all(math.isfinite(d) for d in durations)


async def test_recovery_and_reset_restart_the_backoff(brama, brama_clock):
    """After recovery or ``reset_circuit`` the next open lasts the initial
    expiry; after ``close_circuit`` the backoff carries on."""
    breaker = await brama.register(
        "api", max_attempts=1, expiry=1.0, expiry_strategy="progressive"
    )
    await trip_durations(breaker, brama_clock, 2)
    third = open_for(breaker.status())
    await breaker.close_circuit()
    await trip(breaker)
    after_close = open_for(breaker.status())
    await breaker.reset_circuit()
    await trip(breaker)
    after_reset = open_for(breaker.status())
    await brama_clock.advance(round(after_reset, 3))
    await trip(breaker)
    await brama_clock.advance(2.0)
    await breaker.call(succeed)
    await trip(breaker)
    after_recovery = open_for(breaker.status())

    assert third == pytest.approx(4.0)
    assert after_close == pytest.approx(8.0)
    assert after_reset == pytest.approx(1.0)
    assert after_recovery == pytest.approx(1.0)
    assert breaker.status().trips == 1


# Manual controls


async def test_open_circuit_for_a_given_time(brama, brama_clock):
    """``open_circuit(expiry=...)`` opens for that long, with the reason."""
    breaker = await brama.register("api", expiry=60.0)
    subscription = brama.subscribe()
    await breaker.open_circuit(expiry=timedelta(seconds=5), reason="deploy")
    opened = breaker.status()
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(succeed)
    await brama_clock.advance(4.5)
    before = breaker.status().state
    await brama_clock.advance(0.5)
    events = await drain(subscription)

    assert opened.state == State.OPEN
    assert opened.trips == 1
    assert open_for(opened) == pytest.approx(5.0, abs=1e-5)
    assert refused.value.remaining == pytest.approx(5.0)
    assert refused.value.last_failure is None
    assert before == State.OPEN
    assert breaker.status().state == State.HALF_OPEN
    assert types(events, *TRANSITIONS) == [
        "circuit_opened",
        "state_change",
        "circuit_half_opened",
        "state_change",
    ]
    assert events[0].reason == "deploy"


async def test_open_circuit_without_expiry_uses_the_strategy(brama):
    """Without ``expiry``, a manual open lasts the connection's expiry."""
    breaker = await brama.register("api", expiry=12.0)
    await brama.open_circuit("api")

    assert open_for(breaker.status()) == pytest.approx(12.0, abs=1e-5)


async def test_close_circuit_resets_the_failure_count(brama):
    """``close_circuit`` closes an open circuit and forgets its failures."""
    breaker = await brama.register("api", max_attempts=2)
    await trip(breaker, 2)
    subscription = brama.subscribe()
    await breaker.close_circuit(reason="fixed upstream")
    closed = breaker.status()
    await brama.failure("api")
    events = await drain(subscription)

    assert closed.state == State.CLOSED
    assert closed.failure_count == 0
    assert breaker.status().state == State.CLOSED
    assert types(events, *TRANSITIONS) == ["circuit_closed", "state_change"]
    assert events[0].reason == "fixed upstream"
    assert events[1].previous_state == State.OPEN
    assert events[1].state == State.CLOSED


async def test_close_circuit_on_a_closed_circuit_changes_no_state(brama):
    """Closing a closed circuit is announced, but no state change."""
    breaker = await brama.register("api")
    await breaker.failure()
    subscription = brama.subscribe()
    await breaker.close_circuit()
    events = await drain(subscription)

    assert types(events) == ["circuit_closed"]
    assert breaker.status().failure_count == 0


async def test_reset_circuit_forgets_everything(brama, brama_clock):
    """``reset_circuit`` closes and clears the failure count and trips."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker)
    await brama_clock.advance(1.0)
    await trip(breaker)
    subscription = brama.subscribe()
    await brama.reset_circuit("api", reason="manual")
    status = breaker.status()
    events = await drain(subscription)

    assert status.state == State.CLOSED
    assert status.failure_count == 0
    assert status.trips == 0
    assert status.half_open_at is None
    assert types(events, *TRANSITIONS) == ["circuit_reset", "state_change"]
    assert events[0].reason == "manual"


async def test_reset_expiry_half_opens_now(brama):
    """``reset_expiry`` sends an open circuit half-open at once and leaves a
    closed one alone."""
    breaker = await brama.register("api", max_attempts=1, expiry=60.0)
    await breaker.reset_expiry()
    closed = breaker.status().state
    await trip(breaker)
    subscription = brama.subscribe()
    await brama.reset_expiry("api")
    events = await drain(subscription)

    assert closed == State.CLOSED
    assert breaker.status().state == State.HALF_OPEN
    assert types(events, *TRANSITIONS) == ["circuit_half_opened", "state_change"]


async def test_set_expiry_reschedules_from_the_opening_time(brama, brama_clock):
    """A new expiry on an open circuit counts from when it opened."""
    breaker = await brama.register("api", max_attempts=1, expiry=10.0)
    await trip(breaker)
    await brama_clock.advance(3.0)
    await breaker.set_expiry(5.0)
    rescheduled = breaker.status()
    await brama_clock.advance(1.5)
    before = breaker.status().state
    await brama_clock.advance(0.5)

    assert rescheduled.expiry == 5.0
    assert open_for(rescheduled) == pytest.approx(5.0, abs=1e-5)
    assert before == State.OPEN
    assert breaker.status().state == State.HALF_OPEN


async def test_set_expiry_past_the_deadline_half_opens_at_once(brama, brama_clock):
    """A new expiry that has already run out sends the circuit half-open."""
    breaker = await brama.register("api", max_attempts=1, expiry=10.0)
    await trip(breaker)
    await brama_clock.advance(6.0)
    subscription = brama.subscribe()
    await brama.set_expiry("api", 5.0)
    events = await drain(subscription)

    assert breaker.status().state == State.HALF_OPEN
    assert "expiry_changed" in types(events)
    assert types(events, *TRANSITIONS) == ["circuit_half_opened", "state_change"]


async def test_set_expiry_on_a_closed_circuit_applies_to_the_next_open(brama):
    """The new expiry is the duration of the next open."""
    breaker = await brama.register("api", max_attempts=1, expiry=10.0)
    await breaker.set_expiry(timedelta(seconds=2))
    await trip(breaker)

    assert breaker.status().expiry == 2.0
    assert open_for(breaker.status()) == pytest.approx(2.0, abs=1e-5)


async def test_disable_expiry_keeps_the_circuit_open(brama, brama_clock):
    """With expiry disabled nothing half-opens it; ``set_expiry`` re-enables."""
    breaker = await brama.register("api", max_attempts=1, expiry=10.0)
    await trip(breaker)
    await breaker.disable_expiry()
    await brama_clock.advance(1e6)
    disabled = breaker.status()
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(succeed)
    await breaker.set_expiry(10.0)

    assert disabled.state == State.OPEN
    assert disabled.expiry_enabled is False
    assert disabled.half_open_at is None
    assert refused.value.remaining is None
    assert breaker.status().expiry_enabled is True
    assert breaker.status().state == State.HALF_OPEN


async def test_disabled_expiry_applies_to_later_opens(brama, brama_clock):
    """A circuit with expiry disabled stays open after a later trip too."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await brama.disable_expiry("api")
    await trip(breaker)
    await brama_clock.advance(100.0)

    assert breaker.status().state == State.OPEN
    assert breaker.status().half_open_at is None


async def test_circuit_half_opens_on_time_without_traffic(brama, brama_clock):
    """The expiry timer half-opens the circuit and emits the event on its own."""
    breaker = await brama.register("api", max_attempts=1, expiry=2.0)
    subscription = brama.subscribe(events=["circuit_half_opened"])
    await trip(breaker)
    await brama_clock.advance(2.0)
    events = await drain(subscription)

    assert types(events) == ["circuit_half_opened"]
    assert events[0].identifier == "api"
    assert events[0].status.state == State.HALF_OPEN


async def test_per_connection_configure_changes_only_what_is_given(brama):
    """Per-connection ``configure`` keeps every option not passed."""
    breaker = await brama.register(
        "api",
        max_attempts=4,
        expiry=9.0,
        expiry_strategy="progressive",
        backoff_factor=3.0,
    )
    await breaker.configure(max_attempts=2)
    status = breaker.status()
    await brama.configure("api", expiry=timedelta(seconds=4))

    assert status.max_attempts == 2
    assert status.expiry == 9.0
    assert status.expiry_strategy == "progressive"
    assert status.backoff_factor == 3.0
    assert breaker.status().expiry == 4.0
    assert breaker.status().max_attempts == 2


async def test_global_configure_changes_defaults_for_later_connections(brama):
    """A global ``configure`` leaves existing connections as they are."""
    await brama.register("old")
    await brama.configure(max_attempts=7, expiry=3.0)
    await brama.register("new")

    assert brama.status("old").max_attempts == 5
    assert brama.status("old").expiry == 60.0
    assert brama.status("new").max_attempts == 7
    assert brama.status("new").expiry == 3.0


# Errors


async def test_circuit_open_error_is_cheap_to_copy_and_format(brama):
    """A refusal can be copied, printed and represented, naming the circuit."""
    breaker = await brama.register("orders", scope="shop", max_attempts=1)
    await trip(breaker)
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(succeed)
    error = refused.value
    copied = copy.copy(error)

    assert isinstance(error, BramaError)
    assert "orders" in str(error)
    assert "shop" in str(error)
    assert "orders" in repr(error)
    assert copied.identifier == "orders"
    assert copied.scope == "shop"
    assert isinstance(error.last_failure, Boom)


async def test_refusal_while_trial_slots_are_taken(brama, brama_clock):
    """A half-open circuit with every slot taken refuses with no wait left."""
    breaker = await brama.register("api", max_attempts=1, expiry=1.0)
    await trip(breaker)
    await brama_clock.advance(1.0)
    release = anyio.Event()

    async def hold():
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(breaker.call, hold)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(CircuitOpenError) as refused:
            await breaker.call(succeed)
        release.set()

    assert refused.value.state == State.HALF_OPEN
    assert refused.value.remaining == 0.0


# Events


async def test_event_payloads(brama, brama_clock):
    """Events carry type, key, aware UTC timestamp, states, reason and a
    status taken after the change."""
    subscription = brama.subscribe()
    await brama.register("api", scope="s", max_attempts=1, expiry=1.0)
    await brama.failure("api", scope="s", reason="down")
    await brama_clock.advance(1.0)
    await brama.success("api", scope="s")
    events = await drain(subscription)
    by_type = {}
    for event in events:
        by_type.setdefault(event.type, event)

    assert types(events) == [
        "registered",
        "failure",
        "circuit_opened",
        "state_change",
        "circuit_half_opened",
        "state_change",
        "success",
        "circuit_closed",
        "state_change",
    ]
    assert all(e.identifier == "api" and e.scope == "s" for e in events)
    assert all(e.timestamp.utcoffset() == timedelta(0) for e in events)
    assert all(e.origin is None for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert by_type["registered"].state == State.CLOSED
    assert by_type["registered"].status.state == State.CLOSED
    assert by_type["failure"].reason == "down"
    assert by_type["circuit_opened"].status.state == State.OPEN
    assert by_type["circuit_opened"].state == State.OPEN
    assert [
        (e.previous_state, e.state) for e in events if e.type == "state_change"
    ] == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    assert events[-1].status.state == State.CLOSED
    assert events[-1].status.failure_count == 0


async def test_subscription_filters_all_must_match(brama):
    """``events``, ``connection``, ``scope`` and ``filter`` combine with AND."""
    by_events = brama.subscribe(events=[EventType.FAILURE, "registered"])
    by_connection = brama.subscribe(connection="a")
    by_scope = brama.subscribe(scope="x")
    combined = brama.subscribe(
        events={"failure"},
        connection="a",
        scope="x",
        filter=lambda e: e.reason == "keep",
    )
    await brama.register("a", scope="x")
    await brama.register("a", scope="y")
    await brama.register("b", scope="x")
    for identifier, scope in [("a", "x"), ("a", "y"), ("b", "x")]:
        await brama.failure(identifier, scope=scope, reason="keep")
        await brama.failure(identifier, scope=scope, reason="drop")
        await brama.success(identifier, scope=scope)

    def keys(events):
        return [(e.type.value, e.identifier, e.scope, e.reason) for e in events]

    assert types(await drain(by_events)) == ["registered"] * 3 + ["failure"] * 6
    assert {(e.identifier, e.scope) for e in await drain(by_connection)} == {
        ("a", "x"),
        ("a", "y"),
    }
    assert {(e.identifier, e.scope) for e in await drain(by_scope)} == {
        ("a", "x"),
        ("b", "x"),
    }
    assert keys(await drain(combined)) == [("failure", "a", "x", "keep")]


async def test_success_events_only_for_subscribers_asking(brama):
    """Successes reach subscribers that want them, and no one else."""
    breaker = await brama.register("api")
    wants = brama.subscribe(events=["success"])
    transitions = brama.subscribe(events=["circuit_opened"])
    for _ in range(3):
        await breaker.call(succeed)

    assert types(await drain(wants)) == ["success"] * 3
    assert await drain(transitions) == []


async def test_full_queue_drops_the_oldest_and_counts(brama):
    """A full subscription keeps the newest events and counts the dropped."""
    breaker = await brama.register("api", max_attempts=100)
    subscription = brama.subscribe(events=["failure"], max_queued=3)
    for index in range(10):
        await breaker.failure(reason=str(index))
    dropped = subscription.dropped
    events = await drain(subscription)

    assert dropped == 7
    assert [e.reason for e in events] == ["7", "8", "9"]


async def test_slow_subscriber_never_blocks_calls(brama):
    """A subscriber that never reads does not slow or block calls."""
    breaker = await brama.register("api")
    subscription = brama.subscribe(events=["success", "failure"], max_queued=1)
    with anyio.fail_after(5):
        for _ in range(2000):
            await breaker.call(succeed)
            await breaker.failure()

    assert subscription.dropped == 4000 - 1
    subscription.close()


async def test_subscriber_errors_never_reach_callers(brama):
    """A filter that raises only affects its subscriber."""

    def broken(event):
        raise RuntimeError("subscriber bug")

    subscription = brama.subscribe(filter=broken)
    breaker = await brama.register("api", max_attempts=1)
    await trip(breaker)
    result_state = breaker.status().state
    subscription.close()

    assert result_state == State.OPEN


async def test_subscriber_sees_the_committed_state(brama):
    """A subscriber reading state on an event sees the state after it."""
    breaker = await brama.register("api", max_attempts=1)
    seen = []

    async def watch(subscription):
        async for event in subscription:
            seen.append((event.type, breaker.status().state))
            subscription.close()

    async with (
        anyio.create_task_group() as tg,
        brama.subscribe(events=["circuit_opened"]) as subscription,
    ):
        tg.start_soon(watch, subscription)
        await anyio.wait_all_tasks_blocked()
        await trip(breaker)

    assert seen == [("circuit_opened", State.OPEN)]


async def test_subscription_close_ends_iteration_and_is_idempotent(brama):
    """After ``close`` the queued events are read and iteration ends."""
    subscription = brama.subscribe()
    await brama.register("api")
    subscription.close()
    subscription.close()
    events = [event async for event in subscription]
    await brama.register("other")
    later = [event async for event in subscription]

    assert subscription.closed is True
    assert types(events) == ["registered"]
    assert later == []


async def test_subscription_as_context_manager_closes_on_exit(brama):
    """Leaving ``async with subscribe()`` closes the subscription."""
    async with brama.subscribe() as subscription:
        open_inside = subscription.closed

    assert open_inside is False
    assert subscription.closed is True


async def test_events_are_logged(brama, caplog):
    """Transitions are logged through the ``brama_async`` logger."""
    caplog.set_level("DEBUG", logger="brama_async")
    breaker = await brama.register("api", max_attempts=1)
    await trip(breaker)

    assert any(r.name.startswith("brama_async") for r in caplog.records)
    assert any("api" in r.getMessage() for r in caplog.records)


# Cleanup


def swept_registry(clock, **settings):
    """A registry sweeping every 10 s for connections idle over 60 s."""
    settings.setdefault("cleanup_interval", 10.0)
    settings.setdefault("inactive_threshold", 60.0)

    return Brama(clock=clock, **settings)


async def tick(clock, seconds, step=10.0):
    """Advance ``clock`` by ``seconds`` in steps, letting each sweep run."""
    for _ in range(round(seconds / step)):
        await clock.advance(step)


async def test_cleanup_marks_stale_then_removes():
    """An idle connection is marked stale by the first sweep after it has
    been idle longer than the threshold, and removed by the next one."""
    clock = ManualClock()
    async with swept_registry(clock) as brama:
        await brama.register("idle", scope="s")
        await tick(clock, 60.0)
        before = brama.status("idle", scope="s").stale
        subscription = brama.subscribe()
        await clock.advance(10.0)
        stale = brama.status("idle", scope="s").stale
        await clock.advance(10.0)
        events = await drain(subscription)
        remaining = brama.connections()

    assert before is False
    assert stale is True
    assert types(events) == [
        "connection_stale",
        "cleanup",
        "connection_removed",
        "cleanup",
    ]
    assert (events[0].identifier, events[0].scope) == ("idle", "s")
    assert (events[2].identifier, events[2].scope) == ("idle", "s")
    assert (events[1].data["marked_stale"], events[1].data["removed"]) == (1, 0)
    assert (events[3].data["marked_stale"], events[3].data["removed"]) == (0, 1)
    assert events[3].data["reviewed"] >= 1
    assert events[3].data["duration"] >= 0
    assert remaining == []


async def test_next_sweep_after_the_threshold_marks_the_connection():
    """However sweeps were spaced, the first one after the threshold marks."""
    clock = ManualClock()
    async with swept_registry(clock, cleanup_interval=1e6) as brama:
        await brama.register("idle")
        await clock.advance(30.0)
        early = await run_cleanup(brama)
        await clock.advance(31.0)
        first = await run_cleanup(brama)
        second = await run_cleanup(brama)

    assert (early["marked_stale"], early["removed"]) == (0, 0)
    assert (first["marked_stale"], first["removed"]) == (1, 0)
    assert (second["marked_stale"], second["removed"]) == (0, 1)


async def test_run_cleanup_returns_the_sweep_summary():
    """``run_cleanup`` sweeps now and returns what the ``cleanup`` event says."""
    clock = ManualClock()
    async with swept_registry(clock, cleanup_interval=1e6) as brama:
        await brama.register("api")
        subscription = brama.subscribe(events=["cleanup"])
        summary = await run_cleanup(brama)
        events = await drain(subscription)

    assert set(summary) >= {"reviewed", "marked_stale", "removed", "duration"}
    assert (summary["marked_stale"], summary["removed"]) == (0, 0)
    assert types(events) == ["cleanup"]
    assert events[0].data["removed"] == 0


@pytest.mark.parametrize("activity", ["call", "success", "failure", "close_circuit"])
async def test_activity_clears_the_stale_mark(activity):
    """Any activity after the mark keeps the connection."""
    clock = ManualClock()
    async with swept_registry(clock) as brama:
        breaker = await brama.register("api")
        await tick(clock, 70.0)
        marked = breaker.status().stale
        if activity == "call":
            await breaker.call(succeed)
        else:
            await getattr(breaker, activity)()
        unmarked = breaker.status().stale
        await tick(clock, 20.0)
        kept = brama.status("api")

    assert marked is True
    assert unmarked is False
    assert kept.stale is False


async def test_cleanup_spares_open_circuits_and_calls_in_flight():
    """Open circuits and connections with calls running are never removed."""
    clock = ManualClock()
    async with swept_registry(clock) as brama:
        opened = await brama.register("open", expiry=1e6)
        await opened.open_circuit()
        busy = await brama.register("busy")
        await brama.register("idle")
        release = anyio.Event()

        async def hold():
            await release.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy.call, hold)
            await anyio.wait_all_tasks_blocked()
            await tick(clock, 200.0)
            kept = {s.identifier for s in brama.connections()}
            release.set()

    assert kept == {"open", "busy"}


async def test_new_connections_survive_the_first_sweeps():
    """Registration counts as activity."""
    clock = ManualClock()
    async with swept_registry(clock) as brama:
        await tick(clock, 1000.0)
        await brama.register("fresh")
        await tick(clock, 60.0)
        status = brama.status("fresh")

    assert status.stale is False


async def test_sweeps_run_on_their_own_every_interval():
    """Sweeps run by themselves, each ending with a ``cleanup`` event."""
    clock = ManualClock()
    async with swept_registry(clock, inactive_threshold=15.0) as brama:
        await brama.register("idle")
        subscription = brama.subscribe(events=["cleanup", "connection_removed"])
        await tick(clock, 50.0)
        events = await drain(subscription)
        remaining = brama.connections()

    assert types(events).count("cleanup") == 5
    assert "connection_removed" in types(events)
    assert remaining == []


async def test_cleanup_interval_is_configured_live():
    """A global ``configure(cleanup_interval=...)`` reschedules sweeps."""
    clock = ManualClock()
    async with swept_registry(clock, cleanup_interval=1000.0) as brama:
        subscription = brama.subscribe(events=["cleanup"])
        await tick(clock, 100.0)
        before = len(await drain(subscription))
        await brama.configure(cleanup_interval=5.0)
        subscription = brama.subscribe(events=["cleanup"])
        await tick(clock, 50.0, step=5.0)
        after = len(await drain(subscription))

    assert before == 0
    assert 10 <= after <= 11


async def test_inactive_threshold_is_configured_live():
    """A global ``configure(inactive_threshold=...)`` applies to the next sweep."""
    clock = ManualClock()
    async with swept_registry(clock, inactive_threshold=1000.0) as brama:
        await brama.register("api")
        await tick(clock, 100.0)
        before = brama.status("api").stale
        await brama.configure(inactive_threshold=50.0)
        await clock.advance(10.0)
        after = brama.status("api").stale

    assert before is False
    assert after is True


async def test_hundred_thousand_idle_connections_go_in_two_sweeps():
    """Two sweeps remove 100,000 idle connections without a task per
    connection, without stalling the loop, and leave no task behind."""
    clock = ManualClock()
    baseline = task_ids()
    lags = []
    async with swept_registry(clock) as brama:
        for index in range(100_000):
            await brama.register(f"c{index}")
        tasks_while_running = len(task_ids() - baseline)
        await tick(clock, 60.0)
        subscription = brama.subscribe(events=["cleanup"])
        stop = anyio.Event()

        async def heartbeat():
            last = time.perf_counter()
            while not stop.is_set():
                await anyio.lowlevel.checkpoint()
                now = time.perf_counter()
                lags.append(now - last)
                last = now

        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            await tick(clock, 20.0)
            stop.set()
        first, second = [e.data for e in await drain(subscription)]
        remaining = len(brama.connections())

    assert tasks_while_running < 10
    assert first["marked_stale"] == 100_000
    assert second["removed"] == 100_000
    assert remaining == 0
    assert max(lags) < 0.1
    assert task_ids() == baseline


# Testing helpers and fixtures


async def test_set_state_makes_real_transitions(brama):
    """``set_state`` goes through the real transitions and events."""
    await brama.register("api")
    subscription = brama.subscribe()
    await set_state(brama, "api", State.HALF_OPEN, reason="setup")
    half_open = brama.status("api").state
    await set_state(brama, "api", "open")
    opened = brama.status("api").state
    await set_state(brama, "api", "closed")
    events = await drain(subscription)

    assert half_open == State.HALF_OPEN
    assert opened == State.OPEN
    assert brama.status("api").state == State.CLOSED
    assert "circuit_half_opened" in types(events)
    assert types(events)[-2:] == ["circuit_closed", "state_change"]
    assert next(e.reason for e in events if e.type == "circuit_opened") == "setup"


async def test_add_failures_counts_and_trips(brama):
    """``add_failures`` adds exactly that many failures; zero adds none."""
    await brama.register("api", scope="s", max_attempts=3)
    await add_failures(brama, "api", 0, scope="s")
    none_added = brama.status("api", scope="s").failure_count
    await add_failures(brama, "api", 2, scope="s", reason="probe")
    two = brama.status("api", scope="s")
    await add_failures(brama, "api", 1, scope="s")

    assert none_added == 0
    assert two.failure_count == 2
    assert two.last_failure_reason == "probe"
    assert brama.status("api", scope="s").state == State.OPEN


@pytest.mark.parametrize("start", [State.OPEN, State.HALF_OPEN])
async def test_simulate_recovery_closes(brama, start):
    """``simulate_recovery`` brings an open or half-open circuit to closed."""
    await brama.register("api", max_attempts=1)
    await set_state(brama, "api", start)
    subscription = brama.subscribe(events=["circuit_closed"])
    await simulate_recovery(brama, "api")
    events = await drain(subscription)

    assert brama.status("api").state == State.CLOSED
    assert brama.status("api").trips == 0
    assert types(events) == ["circuit_closed"]


async def test_manual_clock_reads_and_advances():
    """The manual clock starts at zero and moves only when advanced."""
    clock = ManualClock()
    start = clock()
    await clock.advance(1.5)
    await clock.advance(timedelta(seconds=0.5))

    assert start == 0.0
    assert clock() == 2.0


async def test_fixtures_give_an_entered_registry(brama, brama_clock):
    """The ``brama`` fixture is entered and runs on ``brama_clock``."""
    breaker = await brama.register("api", max_attempts=1, expiry=5.0)
    await trip(breaker)
    await brama_clock.advance(5.0)

    assert isinstance(brama_clock, ManualClock)
    assert brama_clock() == 5.0
    assert breaker.status().state == State.HALF_OPEN


def test_fixture_registry_is_closed_after_the_test(pytester):
    """The plugin's registry is closed once its test is over."""
    pytester.makepyfile(
        """
        import pytest
        from brama_async import RegistryClosedError

        pytestmark = pytest.mark.anyio
        kept = []

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        async def test_use(brama):
            kept.append(await brama.register("api"))

        def test_closed_afterwards():
            with pytest.raises(RegistryClosedError):
                kept[0].status()
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-W", "error")

    result.assert_outcomes(passed=2)
