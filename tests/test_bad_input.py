"""Bad arguments are refused at the call site and change nothing.

Every public entry point is given wrong types, booleans, empty and huge
strings, NaN, infinities, zero, negatives and huge numbers. Each is either
refused with ``ConfigurationError`` (a ``ValueError``) or ``TypeError`` whose
message names the argument, or accepted by design; a refusal leaves the
registry and its event stream untouched.
"""

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brama_async import Brama, ConfigurationError, State
from brama_async.testing import ManualClock, add_failures, set_state

pytestmark = pytest.mark.anyio

REFUSED = (ConfigurationError, TypeError)

NAN = float("nan")
INF = float("inf")
HUGE_INT = 10**400

BAD_SECONDS = [
    0,
    0.0,
    -1,
    -0.001,
    NAN,
    INF,
    -INF,
    True,
    False,
    "5",
    b"5",
    [5],
    {"seconds": 5},
    1e9 + 1,
    1e300,
    HUGE_INT,
    -HUGE_INT,
    timedelta(0),
    timedelta(seconds=-1),
    timedelta(days=10**6),
    complex(1, 0),
]
BAD_COUNTS = [0, -1, True, False, 1.0, 2.5, "3", NAN, INF, -INF, [1], -HUGE_INT]
BAD_FACTORS = [0, 0.5, -2.0, NAN, INF, -INF, True, "2", [2], HUGE_INT]
BAD_STRATEGIES = ["", "linear", "Fixed ", 1, True, ["fixed"]]
BAD_NAMES = ["", "x" * 1025, "y" * 100_000, 1, 1.5, True, b"api", ["a"], {"a": 1}]
BAD_EXCLUDE = [int, "ValueError", (int,), [ValueError, 3], 5, (KeyboardInterrupt,)]
BAD_CALLABLES = [5, "predicate", True, [len]]
BAD_METADATA = [[("a", 1)], "meta", 5, True]
BAD_REASONS = [5, b"why", ["why"], True]

CONNECTION_BAD = {
    "max_attempts": BAD_COUNTS,
    "half_open_max_calls": BAD_COUNTS,
    "expiry": [*BAD_SECONDS, None],
    "initial_expiry": BAD_SECONDS,
    "max_expiry": BAD_SECONDS,
    "backoff_factor": [*BAD_FACTORS, None],
    "expiry_strategy": [*BAD_STRATEGIES, None],
}
REGISTER_BAD = {
    **CONNECTION_BAD,
    "exclude": BAD_EXCLUDE,
    "is_failure": BAD_CALLABLES,
    "metadata": BAD_METADATA,
}
SETTINGS_BAD = {
    "cleanup_interval": [*BAD_SECONDS, None],
    "inactive_threshold": [*BAD_SECONDS, None],
}


def cases(table):
    return [
        pytest.param(option, value, id=f"{option}={value!r}"[:60])
        for option, values in table.items()
        for value in values
    ]


class Snapshot:
    """Everything observable about a registry, to compare around a refusal."""

    def __init__(self, brama):
        self.brama = brama
        self.connections = sorted(
            brama.connections(), key=lambda s: (s.scope or "", s.identifier)
        )

    @classmethod
    async def take(cls, brama):
        snapshot = cls(brama)
        snapshot.defaults = await defaults(brama)
        snapshot.subscription = brama.subscribe()
        return snapshot

    async def unchanged(self):
        """Whether no connection changed and no event was emitted since."""
        self.subscription.close()
        events = [event async for event in self.subscription]
        after = Snapshot(self.brama)

        return (
            events == []
            and after.connections == self.connections
            and await defaults(self.brama) == self.defaults
        )


async def defaults(brama):
    """The options a new connection gets now, read by registering a probe."""
    probe = await brama.register("probe-defaults", scope="probe")
    status = probe.status()
    await brama.unregister("probe-defaults", scope="probe")

    return (
        status.max_attempts,
        status.expiry,
        status.expiry_strategy,
        status.initial_expiry,
        status.max_expiry,
        status.backoff_factor,
        status.half_open_max_calls,
    )


async def populated(brama):
    """Give a registry a few connections in different states."""
    await brama.register("a", max_attempts=2)
    await brama.register("b", scope="s", expiry=5.0)
    await brama.failure("a")
    await brama.open_circuit("b", scope="s")

    return brama


def with_valid(option, value):
    """Options with a valid one first, then ``option=value``."""
    companion = ("expiry", 7.0) if option != "expiry" else ("max_attempts", 9)

    return dict([companion, (option, value)])


async def call_maybe_async(method, *args):
    """Call ``method`` and await the result if it is awaitable."""
    result = method(*args)
    if hasattr(result, "__await__"):
        await result


def refused_naming(info, *names):
    """Whether the refusal's message names one of ``names``."""
    text = str(info.value)

    return any(name in text for name in names)


# Brama(...)


@pytest.mark.parametrize(("option", "value"), cases({**CONNECTION_BAD, **SETTINGS_BAD}))
def test_brama_refuses_bad_options(option, value):
    """``Brama(...)`` validates every option when constructed."""
    with pytest.raises(REFUSED) as info:
        Brama(**{option: value})

    assert refused_naming(info, option)


@pytest.mark.parametrize("clock", [5, "monotonic", True, [1.0]])
def test_brama_refuses_a_clock_that_is_not_callable(clock):
    """``clock`` must be a zero-argument callable."""
    with pytest.raises(REFUSED) as info:
        Brama(clock=clock)

    assert refused_naming(info, "clock")


@pytest.mark.parametrize("store", [5, "memory", object(), True])
def test_brama_refuses_a_store_of_the_wrong_type(store):
    """``store`` must be a store instance."""
    with pytest.raises(REFUSED) as info:
        Brama(store=store)

    assert refused_naming(info, "store")


def test_brama_refuses_unknown_options():
    """Misspelt options are not silently ignored."""
    with pytest.raises(TypeError):
        Brama(max_attempt=3)


def test_brama_accepts_boundary_values_and_timedelta():
    """The edges of every range and ``timedelta`` durations are accepted."""
    Brama(
        max_attempts=1,
        half_open_max_calls=1,
        expiry=timedelta(milliseconds=1),
        initial_expiry=1e-6,
        max_expiry=1e9,
        backoff_factor=1,
        cleanup_interval=timedelta(hours=1),
        inactive_threshold=1e9,
        expiry_strategy="progressive",
    )


def seconds_value(value):
    """The seconds ``value`` stands for if it is a valid duration, else None."""
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
    else:
        return None

    if math.isfinite(number) and 0 < number <= 1e9:
        return number

    return None


JUNK = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.timedeltas(),
    st.just(HUGE_INT),
    st.lists(st.integers(), max_size=2),
)


@given(value=JUNK)
@settings(max_examples=150, deadline=None)
def test_brama_durations_accept_exactly_the_valid_range(value):
    """A duration is accepted if and only if it is a number or timedelta of
    more than 0 and at most 1e9 seconds, and then it is stored as seconds."""
    expected = seconds_value(value)
    try:
        Brama(expiry=value)
    except REFUSED as exc:
        accepted = False
        message = str(exc)
    else:
        accepted = True
        message = ""

    assert accepted == (expected is not None)
    assert accepted or "expiry" in message


@given(value=JUNK)
@settings(max_examples=150, deadline=None)
def test_brama_counts_accept_only_positive_ints(value):
    """``max_attempts`` accepts ints from 1 up and nothing else (no bool)."""
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    try:
        Brama(max_attempts=value)
    except REFUSED as exc:
        accepted = False
        message = str(exc)
    else:
        accepted = True
        message = ""

    if valid and value > 10**6:
        return
    assert accepted == valid
    assert accepted or "max_attempts" in message


# register(...)


@pytest.mark.parametrize(("option", "value"), cases(REGISTER_BAD))
async def test_register_refuses_bad_options_and_changes_nothing(option, value):
    """``register`` refuses bad options; no connection, no event."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.register("new", **{option: value})

        assert refused_naming(info, option)
        assert await snapshot.unchanged()


@pytest.mark.parametrize("identifier", BAD_NAMES)
async def test_register_refuses_bad_identifiers(identifier):
    """Identifiers are non-empty strings of at most 1024 characters."""
    async with Brama() as brama:
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.register(identifier)

        assert refused_naming(info, "identifier")
        assert await snapshot.unchanged()


@pytest.mark.parametrize("scope", BAD_NAMES)
async def test_register_refuses_bad_scopes(scope):
    """Scopes are ``None`` or non-empty strings of at most 1024 characters."""
    async with Brama() as brama:
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.register("api", scope=scope)

        assert refused_naming(info, "scope")
        assert await snapshot.unchanged()


async def test_register_accepts_names_at_the_length_limit():
    """1024 characters is the longest name accepted."""
    async with Brama() as brama:
        await brama.register("i" * 1024, scope="s" * 1024)

        assert brama.status("i" * 1024, scope="s" * 1024).state == State.CLOSED


async def test_register_refuses_contradicting_progressive_bounds():
    """A cap below the initial expiry is refused, naming both."""
    async with Brama() as brama:
        with pytest.raises(ConfigurationError) as info:
            await brama.register(
                "api",
                expiry_strategy="progressive",
                initial_expiry=10.0,
                max_expiry=5.0,
            )

        assert refused_naming(info, "max_expiry")
        assert brama.connections() == []


async def test_register_refuses_unknown_options():
    """A misspelt option is refused."""
    async with Brama() as brama:
        with pytest.raises(REFUSED):
            await brama.register("api", max_attempt=3)

        assert brama.connections() == []


OPTION_NAMES = sorted(CONNECTION_BAD)


def must_accept(option, value):
    """Whether ``option=value`` is plainly valid on its own."""
    if option in ("initial_expiry", "max_expiry") and value is None:
        return True

    if option in ("expiry", "initial_expiry"):
        return seconds_value(value) is not None

    if option == "max_expiry":
        return seconds_value(value) is not None and value >= 600

    if option in ("max_attempts", "half_open_max_calls"):
        return type(value) is int and 1 <= value <= 10**6

    if option == "backoff_factor":
        number = seconds_value(value) if not isinstance(value, timedelta) else None
        return number is not None and 1 <= number <= 100

    return value in ("fixed", "progressive")


@given(option=st.sampled_from(OPTION_NAMES), value=JUNK)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_register_accepts_or_refuses_cleanly(option, value):
    """Any value for any option is either accepted and stored as given, or
    refused by name with nothing registered; plainly valid values are never
    refused."""
    async with Brama() as brama:
        try:
            breaker = await brama.register("api", **{option: value})
        except REFUSED as exc:
            message = str(exc)
            registered = brama.connections()
        else:
            message = None
            stored = getattr(breaker.status(), option)

    if message is not None:
        assert not must_accept(option, value)
        assert option in message or "max_expiry" in message
        assert registered == []
    elif option in ("initial_expiry", "max_expiry") and value is None:
        assert stored > 0
    elif option in ("expiry", "initial_expiry", "max_expiry"):
        assert stored == seconds_value(value)
    elif option in ("max_attempts", "half_open_max_calls"):
        assert type(value) is int
        assert value >= 1
        assert stored == value
    elif option == "backoff_factor":
        assert not isinstance(value, (bool, timedelta))
        assert math.isfinite(stored)
        assert stored >= 1
        assert stored == value
    else:
        assert stored in ("fixed", "progressive")


# circuit_breaker(...)


@pytest.mark.parametrize(("option", "value"), cases(REGISTER_BAD))
async def test_circuit_breaker_validates_before_first_use(option, value):
    """``circuit_breaker`` refuses bad options when called or applied, never
    later on the first call."""

    async def fn():
        return 1

    async with Brama() as brama:
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            brama.circuit_breaker("api", **{option: value})(fn)

        assert refused_naming(info, option)
        assert await snapshot.unchanged()


@pytest.mark.parametrize("identifier", BAD_NAMES)
async def test_circuit_breaker_validates_the_identifier(identifier):
    """The decorator factory refuses bad identifiers at once."""

    async def fn():
        return 1

    async with Brama() as brama:
        with pytest.raises(REFUSED) as info:
            brama.circuit_breaker(identifier)(fn)

        assert refused_naming(info, "identifier")


# configure(...)


@pytest.mark.parametrize(("option", "value"), cases({**CONNECTION_BAD, **SETTINGS_BAD}))
async def test_global_configure_refuses_and_changes_nothing(option, value):
    """A bad global option changes no default, setting or connection."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.configure(**with_valid(option, value))

        assert refused_naming(info, option)
        assert await snapshot.unchanged()


CONFIGURE_BAD = {k: v for k, v in REGISTER_BAD.items() if k != "metadata"}


@pytest.mark.parametrize(("option", "value"), cases(CONFIGURE_BAD))
async def test_connection_configure_refuses_and_changes_nothing(option, value):
    """A bad per-connection option changes nothing on that connection."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.configure("a", **with_valid(option, value))
        with pytest.raises(REFUSED):
            await brama.breaker("b", scope="s").configure(**{option: value})

        assert refused_naming(info, option)
        assert await snapshot.unchanged()


@pytest.mark.parametrize("option", ["cleanup_interval", "inactive_threshold"])
async def test_connection_configure_refuses_registry_settings(option):
    """Registry settings cannot be given to one connection."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.configure("a", **{option: 5.0})

        assert refused_naming(info, option)
        assert await snapshot.unchanged()


async def test_configure_refuses_unknown_options():
    """A misspelt option in ``configure`` is refused."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED):
            await brama.configure(max_attempt=3)
        with pytest.raises(REFUSED):
            await brama.configure("a", max_attempt=3)

        assert await snapshot.unchanged()


# Manual controls


@pytest.mark.parametrize("seconds", [*BAD_SECONDS, None])
async def test_set_expiry_refuses_bad_durations(seconds):
    """``set_expiry`` takes a valid duration, not ``None`` or zero."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.set_expiry("b", seconds, scope="s")
        with pytest.raises(REFUSED):
            await brama.breaker("a").set_expiry(seconds)

        assert refused_naming(info, "seconds", "expiry")
        assert await snapshot.unchanged()


@pytest.mark.parametrize("expiry", BAD_SECONDS)
async def test_open_circuit_refuses_bad_durations(expiry):
    """``open_circuit(expiry=...)`` validates the duration; nothing opens."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await brama.open_circuit("a", expiry=expiry)
        with pytest.raises(REFUSED):
            await brama.breaker("a").open_circuit(expiry=expiry)

        assert refused_naming(info, "expiry")
        assert await snapshot.unchanged()


@pytest.mark.parametrize("reason", BAD_REASONS)
@pytest.mark.parametrize(
    "control", ["failure", "open_circuit", "close_circuit", "reset_circuit"]
)
async def test_manual_controls_refuse_bad_reasons(control, reason):
    """A reason is a string or ``None``."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await getattr(brama, control)("a", reason=reason)

        assert refused_naming(info, "reason")
        assert await snapshot.unchanged()


@pytest.mark.parametrize("identifier", BAD_NAMES)
@pytest.mark.parametrize(
    "method",
    [
        "status",
        "available",
        "breaker",
        "unregister",
        "success",
        "failure",
        "open_circuit",
        "close_circuit",
        "reset_circuit",
        "reset_expiry",
        "disable_expiry",
    ],
)
async def test_lookups_refuse_bad_identifiers(method, identifier):
    """Every method taking an identifier validates it and changes nothing."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await call_maybe_async(getattr(brama, method), identifier)

        assert refused_naming(info, "identifier")
        assert await snapshot.unchanged()


@pytest.mark.parametrize("scope", BAD_NAMES)
async def test_lookups_refuse_bad_scopes(scope):
    """Every method taking a scope validates it."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            brama.status("a", scope=scope)
        with pytest.raises(REFUSED):
            brama.breaker("a", scope=scope)
        with pytest.raises(REFUSED):
            await brama.failure("a", scope=scope)

        assert refused_naming(info, "scope")
        assert await snapshot.unchanged()


# subscribe(...)

SUBSCRIBE_BAD = {
    "events": [["nope"], [5], 5, [None], ["failure", "bogus"]],
    "connection": ["", 5, "x" * 1025, ["a"]],
    "scope": ["", 5, "x" * 1025, b"s"],
    "filter": BAD_CALLABLES,
    "max_queued": [0, -1, True, 1.5, None, NAN, "10", HUGE_INT],
}


@pytest.mark.parametrize(("option", "value"), cases(SUBSCRIBE_BAD))
async def test_subscribe_refuses_bad_options(option, value):
    """``subscribe`` validates every filter and the queue bound."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            brama.subscribe(**{option: value})

        assert refused_naming(info, option)
        assert await snapshot.unchanged()


async def test_subscribe_accepts_event_types_and_their_names():
    """Event filters take ``EventType`` members or their string values."""
    async with Brama() as brama:
        subscription = brama.subscribe(events=("failure", "circuit_opened"))
        await brama.register("api", max_attempts=1)
        await brama.failure("api")
        subscription.close()
        events = [e.type for e in [e async for e in subscription]]

    assert events == ["failure", "circuit_opened"]


# Testing helpers


def test_manual_clock_takes_no_arguments():
    """``ManualClock()`` has no parameters."""
    with pytest.raises(TypeError):
        ManualClock(5.0)


@pytest.mark.parametrize("seconds", [-1, -0.001, NAN, INF, -INF, "1", True, None])
async def test_manual_clock_refuses_bad_advances(seconds):
    """The clock never goes backwards or to infinity."""
    clock = ManualClock()
    async with Brama(clock=clock):
        with pytest.raises(REFUSED):
            await clock.advance(seconds)

        assert clock() == 0.0


@pytest.mark.parametrize("count", [-1, True, 1.5, "2", None, NAN])
async def test_add_failures_refuses_bad_counts(count):
    """``add_failures`` takes an int of 0 or more."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await add_failures(brama, "a", count)

        assert refused_naming(info, "count")
        assert await snapshot.unchanged()


@pytest.mark.parametrize("state", ["bogus", "", 5, None, True, "OPEN "])
async def test_set_state_refuses_unknown_states(state):
    """``set_state`` takes a ``State`` or its string value."""
    async with Brama() as brama:
        await populated(brama)
        snapshot = await Snapshot.take(brama)

        with pytest.raises(REFUSED) as info:
            await set_state(brama, "a", state)

        assert refused_naming(info, "state")
        assert await snapshot.unchanged()
