"""The circuit state machine: pure, synchronous, given the time.

Every function here takes a :class:`Circuit` record and the current monotonic
time, changes the record, and says what happened. None of them awaits, does
I/O or logs: the registry calls them and then emits events, logs and
schedules timers from the :class:`Transition` they return. Because nothing in
here awaits, each call is atomic on the event loop.

Generations: every change of state starts a new generation. A call remembers
the generation it was admitted in, and its outcome only counts if the circuit
is still in that generation; a late outcome from an earlier period is
dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NamedTuple

from ._expiry import open_duration
from ._types import EventType, ExpiryStrategy, State

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._options import ConnectionOptions

__all__ = [
    "CLOSED",
    "GONE",
    "HALF_OPEN",
    "IGNORED",
    "OPEN",
    "RECORDED",
    "STATES",
    "Circuit",
    "Transition",
]

CLOSED: Final = 0
OPEN: Final = 1
HALF_OPEN: Final = 2
GONE: Final = 3
"""Codes of :attr:`Circuit.code`. ``GONE``: unregistered, removed or closed."""

STATES: Final = (State.CLOSED, State.OPEN, State.HALF_OPEN, State.CLOSED)


class Transition(NamedTuple):
    """What one state-machine step did, for the registry to announce."""

    event: EventType
    previous: int
    current: int
    reason: str | None
    expiry_changed: bool = False

    @property
    def changes_state(self) -> bool:
        """Whether the state differs before and after."""
        return self.previous != self.current


class _Outcome:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


IGNORED: Final = _Outcome("IGNORED")
"""A report that was dropped (late, from an earlier generation)."""

RECORDED: Final = _Outcome("RECORDED")
"""A report that was recorded without changing the state."""

Step = Transition | _Outcome


class Circuit:
    """The mutable record of one connection. Private to the library."""

    __slots__ = (
        "code",
        "expiry_enabled",
        "failure_count",
        "finished",
        "gated",
        "generation",
        "half_open_at",
        "identifier",
        "key",
        "last_failure",
        "last_failure_at",
        "last_failure_reason",
        "last_success_at",
        "metadata",
        "open_duration",
        "opened_at",
        "options",
        "registered_at",
        "reviewed_started",
        "scheduled",
        "scope",
        "stale_since",
        "started",
        "store_data",
        "touched_at",
        "trials",
        "trips",
    )

    def __init__(
        self,
        identifier: str,
        scope: str | None,
        options: ConnectionOptions,
        metadata: Mapping[str, Any],
        now: float,
    ) -> None:
        self.identifier = identifier
        self.scope = scope
        self.key = (scope, identifier)
        self.options = options
        self.metadata = metadata
        self.code = CLOSED
        self.generation = 0
        self.failure_count = 0
        self.trips = 0
        self.trials = 0
        self.started = 0
        self.finished = 0
        self.reviewed_started = 0
        self.expiry_enabled = True
        self.opened_at: float | None = None
        self.open_duration = (
            options.expiry
            if options.expiry_strategy is ExpiryStrategy.FIXED
            else open_duration(options, 1)
        )
        self.half_open_at: float | None = None
        self.registered_at = now
        self.touched_at = now
        self.last_success_at: float | None = None
        self.last_failure_at: float | None = None
        self.last_failure: BaseException | None = None
        self.last_failure_reason: str | None = None
        self.stale_since: float | None = None
        self.scheduled = False
        # True while calls on a closed circuit must go through the store
        # (a shared store unable to reach its server, say); a shared store
        # clears it whenever closed calls need nothing from it.
        self.gated = False
        self.store_data: object = None

    @property
    def state(self) -> State:
        """The public state (a gone circuit reads as closed)."""
        return STATES[self.code]

    @property
    def in_flight(self) -> int:
        """Calls admitted and not finished yet."""
        return self.started - self.finished

    @property
    def last_activity_at(self) -> float:
        """The latest of registration, calls, reports and manual controls."""
        latest = self.touched_at
        if self.last_success_at is not None and self.last_success_at > latest:
            latest = self.last_success_at
        if self.last_failure_at is not None and self.last_failure_at > latest:
            latest = self.last_failure_at

        return latest

    def remaining(self, now: float) -> float | None:
        """Seconds until half-open; ``None`` while expiry is disabled."""
        if self.code == HALF_OPEN:
            return 0.0

        if self.half_open_at is None:
            return None

        return max(0.0, self.half_open_at - now)


def _open(circuit: Circuit, now: float, duration: float) -> None:
    circuit.code = OPEN
    circuit.generation += 1
    circuit.trials = 0
    circuit.opened_at = now
    circuit.open_duration = duration
    if circuit.expiry_enabled:
        circuit.half_open_at = now + duration
    else:
        circuit.half_open_at = None


def _close(circuit: Circuit) -> None:
    circuit.code = CLOSED
    circuit.generation += 1
    circuit.trials = 0
    circuit.failure_count = 0
    circuit.half_open_at = None
    # Disabling expiry holds one open period; once closed, a later trip
    # heals on time again.
    circuit.expiry_enabled = True


def _trip(circuit: Circuit, now: float, reason: str | None) -> Transition:
    previous = circuit.code
    old_duration = circuit.open_duration
    circuit.trips += 1
    _open(circuit, now, open_duration(circuit.options, circuit.trips))

    return Transition(
        EventType.CIRCUIT_OPENED,
        previous,
        OPEN,
        reason,
        expiry_changed=circuit.open_duration != old_duration,
    )


def record_failure(
    circuit: Circuit,
    generation: int,
    now: float,
    error: BaseException | None,
    reason: str | None,
) -> Step:
    """Count one failure of a call admitted in ``generation``.

    Closed: the count grows, and reaching ``max_attempts`` opens the circuit.
    Half-open: the circuit opens again with a new ``opened_at``. Open: the
    failure is recorded (time, reason) but moves nothing; ``opened_at`` is
    never pushed forward by stray failures.
    """
    if generation != circuit.generation:
        return IGNORED

    circuit.last_failure_at = now
    circuit.last_failure_reason = reason
    if error is not None:
        circuit.last_failure = error

    if circuit.code == CLOSED:
        circuit.failure_count += 1
        if circuit.failure_count >= circuit.options.max_attempts:
            return _trip(circuit, now, reason)

        return RECORDED

    if circuit.code == HALF_OPEN:
        circuit.failure_count += 1
        return _trip(circuit, now, reason)

    return RECORDED


def record_success(circuit: Circuit, generation: int, now: float) -> Step:
    """Count one success of a call admitted in ``generation``.

    Closed: the failure count resets. Half-open: the circuit closes, and the
    progressive backoff starts again from ``initial_expiry``. Open (a report
    by hand): the count resets, the state stays open.
    """
    if generation != circuit.generation:
        return IGNORED

    circuit.last_success_at = now
    if circuit.code != HALF_OPEN:
        circuit.failure_count = 0
        return RECORDED

    return _recover(circuit, EventType.CIRCUIT_CLOSED, "trial call succeeded")


def _recover(circuit: Circuit, event: EventType, reason: str | None) -> Transition:
    previous = circuit.code
    old_duration = circuit.open_duration
    _close(circuit)
    circuit.trips = 0
    circuit.open_duration = open_duration(circuit.options, 1)

    return Transition(
        event,
        previous,
        CLOSED,
        reason,
        expiry_changed=circuit.open_duration != old_duration,
    )


def apply_expiry(circuit: Circuit, now: float) -> Transition | None:
    """Move an open circuit whose deadline has passed to half-open."""
    if circuit.code != OPEN or circuit.half_open_at is None:
        return None

    if now < circuit.half_open_at:
        return None

    return _half_open(circuit, "expiry elapsed")


def _half_open(circuit: Circuit, reason: str) -> Transition:
    circuit.code = HALF_OPEN
    circuit.generation += 1
    circuit.trials = 0
    circuit.half_open_at = None

    return Transition(EventType.CIRCUIT_HALF_OPENED, OPEN, HALF_OPEN, reason)


def release_trial(circuit: Circuit, generation: int) -> None:
    """Free a half-open trial slot taken in ``generation`` (no-op if stale)."""
    if generation == circuit.generation and circuit.code == HALF_OPEN:
        circuit.trials -= 1


def force_open(
    circuit: Circuit, now: float, duration: float | None, reason: str
) -> Transition:
    """Open by hand, for ``duration`` or the strategy's next duration.

    A manual open counts as a trip: the progressive backoff grows with it.
    """
    if duration is None:
        return _trip(circuit, now, reason)

    previous = circuit.code
    circuit.trips += 1
    old_duration = circuit.open_duration
    _open(circuit, now, duration)

    return Transition(
        EventType.CIRCUIT_OPENED,
        previous,
        OPEN,
        reason,
        expiry_changed=duration != old_duration,
    )


def force_close(circuit: Circuit, reason: str) -> Transition:
    """Close by hand; the failure count resets, the backoff carries on."""
    previous = circuit.code
    _close(circuit)

    return Transition(EventType.CIRCUIT_CLOSED, previous, CLOSED, reason)


def reset(circuit: Circuit, reason: str) -> Transition:
    """Close by hand and forget the history: counts and backoff reset."""
    return _recover(circuit, EventType.CIRCUIT_RESET, reason)


def reset_expiry(circuit: Circuit) -> Transition | None:
    """Send an open circuit half-open now; other states are left alone."""
    if circuit.code != OPEN:
        return None

    return _half_open(circuit, "expiry reset by hand")


def set_expiry(circuit: Circuit, now: float, seconds: float) -> Transition | None:
    """Apply a new expiry (options already updated) and re-enable expiry.

    An open circuit is rescheduled from its ``opened_at``; if the new deadline
    has already passed it goes half-open at once (the returned transition).
    """
    circuit.expiry_enabled = True
    if circuit.code != OPEN:
        circuit.open_duration = open_duration(circuit.options, max(circuit.trips, 1))
        return None

    assert circuit.opened_at is not None
    circuit.open_duration = seconds
    circuit.half_open_at = circuit.opened_at + seconds

    return apply_expiry(circuit, now)


def disable_expiry(circuit: Circuit) -> None:
    """Keep the circuit open until a manual control acts."""
    circuit.expiry_enabled = False
    circuit.half_open_at = None
