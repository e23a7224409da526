"""The registry: named connections, each a circuit, and their background work."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import anyio.lowlevel
from typing_extensions import ParamSpec, Self

from . import _machine as machine
from ._breaker import Breaker, require_coroutine_function
from ._cleanup import ActivityIndex, SweepSummary, sweep
from ._errors import (
    AlreadyRegistered,
    CircuitOpenError,
    ConfigurationError,
    ConnectionNotFound,
    RegistryClosedError,
)
from ._events import Event, EventFilter, EventHub, Subscription
from ._expiry import ExpiryHeap
from ._machine import CLOSED, GONE, HALF_OPEN, OPEN, STATES, Circuit, Transition
from ._options import (
    EMPTY_METADATA,
    UNSET,
    ConnectionOptions,
    RegistrySettings,
    Unset,
    check_consistent,
    check_global_options,
    optional_seconds,
    show,
    split_settings,
)
from ._options import (
    MAX_NAME_LENGTH as NAME_LIMIT,
)
from ._options import (
    metadata as check_metadata,
)
from ._options import (
    name as check_name,
)
from ._options import (
    reason as check_reason,
)
from ._options import (
    scope as check_scope,
)
from ._options import (
    seconds as check_seconds,
)
from ._status import ConnectionStatus
from ._store import MemoryStore, Store
from ._types import EventType, State

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["Brama"]

logger = logging.getLogger("brama_async")

P = ParamSpec("P")
T = TypeVar("T")

EXPIRY_BATCH: Final = 32
"""Expiries applied between two looks at the time."""

EXPIRY_SLICE: Final = 0.001
"""Seconds spent applying expiries at most between two yields to the loop."""

_OPEN: Final = State.OPEN
_HALF_OPEN: Final = State.HALF_OPEN

MAX_SWEEPS_IN_RUN: Final = 100
"""Sweeps a manual clock runs in a row before it skips ahead."""

_NEW, _RUNNING, _CLOSED = "new", "running", "closed"

Seconds = float | timedelta


class Brama:
    """A registry of named connections, each protected by its own circuit.

    Use it as an async context manager: entering starts the registry's task
    group, which holds the one expiry timer and the cleanup sweeps; leaving
    stops them and closes every subscription. A registry can be entered once.

    The keyword arguments are the defaults for connections registered later
    and the registry's own settings; all are validated here, and a bad one
    raises :class:`~brama_async.ConfigurationError`. Times are seconds
    (``int``, ``float`` or ``timedelta``).

    Args:
        max_attempts: Consecutive failures that open a circuit.
        expiry: How long an open circuit stays open (fixed strategy).
        expiry_strategy: ``"fixed"`` or ``"progressive"``.
        initial_expiry: First progressive duration; default ``expiry``.
        max_expiry: Progressive cap; default ``10 * expiry``.
        backoff_factor: Progressive growth factor, at least 1.
        half_open_max_calls: Trial calls admitted at once while half-open.
        cleanup_interval: Seconds between two cleanup sweeps.
        inactive_threshold: Seconds without activity before a connection is
            a cleanup candidate.
        clock: A zero-argument callable returning monotonic seconds;
            default :func:`time.monotonic`.
        store: Where circuit state lives; default in memory.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        expiry: Seconds = 60.0,
        expiry_strategy: str = "fixed",
        initial_expiry: Seconds | None = None,
        max_expiry: Seconds | None = None,
        backoff_factor: float = 2.0,
        half_open_max_calls: int = 1,
        cleanup_interval: Seconds = 10.0,
        inactive_threshold: Seconds = 86_400.0,
        clock: Callable[[], float] | None = None,
        store: Store | None = None,
    ) -> None:
        checked = check_global_options(
            {
                "max_attempts": max_attempts,
                "expiry": expiry,
                "expiry_strategy": expiry_strategy,
                "initial_expiry": initial_expiry,
                "max_expiry": max_expiry,
                "backoff_factor": backoff_factor,
                "half_open_max_calls": half_open_max_calls,
                "cleanup_interval": cleanup_interval,
                "inactive_threshold": inactive_threshold,
            }
        )
        defaults, settings = split_settings(checked)
        self._defaults = ConnectionOptions(**defaults)  # type: ignore[arg-type]
        check_consistent(self._defaults)
        self._settings = RegistrySettings(**settings)  # type: ignore[arg-type]
        self._clock = _check_clock(clock)
        if store is not None and not isinstance(store, Store):
            raise ConfigurationError(
                f"store must be a brama_async Store (MemoryStore, RedisStore) "
                f"or None, got {show(store)}"
            )

        self._store: Store = store if store is not None else MemoryStore()
        self._shared = self._store.shared
        self._circuits: dict[tuple[str | None, str], Circuit] = {}
        self._hub = EventHub()
        self._hub.on_change = self._refresh_watchers
        self._watch_success = False
        self._expiries = ExpiryHeap()
        self._phase = _NEW
        self._manual_clock = callable(getattr(self._clock, "_attach", None))
        self._lock: anyio.Lock | None = None
        self._sweep_lock: anyio.Lock | None = None
        self._task_group: TaskGroup | None = None
        self._index = ActivityIndex(0.0)
        self._mono_anchor = 0.0
        self._wall_anchor = 0.0
        self._next_sweep_at = math.inf
        self._sleep_until = -math.inf
        self._wakeup: anyio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"<Brama {self._phase} connections={len(self._circuits)} "
            f"store={self._store!r}>"
        )

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._phase != _NEW:
            raise RegistryClosedError(
                "a Brama registry can be entered only once; create a new one"
            )

        self._lock = anyio.Lock()
        self._sweep_lock = anyio.Lock()
        now = self._clock()
        self._mono_anchor = now
        self._wall_anchor = time.time()
        self._index = ActivityIndex(now)
        self._next_sweep_at = now + self._settings.cleanup_interval

        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._phase = _RUNNING
        try:
            await self._store.start(self, task_group)
        except BaseException:
            self._phase = _CLOSED
            task_group.cancel_scope.cancel()
            # The store's error propagates as itself, not wrapped in a group.
            await task_group.__aexit__(None, None, None)
            raise

        if self._manual_clock:
            self._clock._attach(self)  # type: ignore[attr-defined]
        else:
            task_group.start_soon(self._run_timers, name="brama_async timers")

        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        """Stop the timers and sweeps, close subscriptions, retire handles.

        Calls still running in other tasks finish normally; their outcomes
        are no longer recorded.
        """
        task_group = self._task_group
        assert task_group is not None
        self._phase = _CLOSED
        try:
            with anyio.CancelScope(shield=True):
                await self._store.stop()
        finally:
            for circuit in self._circuits.values():
                _retire(circuit)
            self._circuits.clear()
            self._hub.close_all()
            if self._manual_clock:
                self._clock._detach(self)  # type: ignore[attr-defined]
            task_group.cancel_scope.cancel()

        # The block's own exception propagates as itself: the task group only
        # reports failures of the registry's tasks, never wraps the caller's.
        await task_group.__aexit__(None, None, None)
        return None

    @property
    def closed(self) -> bool:
        """Whether the registry has been closed."""
        return self._phase == _CLOSED

    def _check_running(self) -> None:
        if self._phase != _RUNNING:
            if self._phase == _NEW:
                raise RegistryClosedError(
                    "the registry is not running; use `async with Brama(...) as brama:`"
                )
            raise RegistryClosedError("the registry is closed")

    # -- registration ------------------------------------------------------

    async def register(
        self,
        identifier: str,
        *,
        scope: str | None = None,
        max_attempts: int | Unset = UNSET,
        expiry: Seconds | Unset = UNSET,
        expiry_strategy: str | Unset = UNSET,
        initial_expiry: Seconds | Unset | None = UNSET,
        max_expiry: Seconds | Unset | None = UNSET,
        backoff_factor: float | Unset = UNSET,
        half_open_max_calls: int | Unset = UNSET,
        exclude: type[Exception] | Iterable[type[Exception]] = (),
        is_failure: Callable[[Exception], bool] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Breaker:
        """Register a connection and return its :class:`Breaker`.

        Options not given take the registry's defaults as they are now; later
        global ``configure()`` calls do not change this connection.

        Args:
            identifier: A non-empty name, unique within its scope.
            scope: ``None`` or a non-empty name; the key is
                ``(scope, identifier)``.
            exclude: Exception types that are not failures: they propagate
                unchanged and count as successes.
            is_failure: A predicate deciding whether an exception (not
                excluded) is a failure. ``CancelledError`` and other
                ``BaseException`` subclasses never reach it.
            metadata: Any mapping, stored read-only and never changed.

        Raises:
            AlreadyRegistered: If the key is taken.
            ConfigurationError: If an argument is invalid; nothing changes.
        """
        given: dict[str, object] = {}
        if not (
            max_attempts is UNSET
            and expiry is UNSET
            and expiry_strategy is UNSET
            and initial_expiry is UNSET
            and max_expiry is UNSET
            and backoff_factor is UNSET
            and half_open_max_calls is UNSET
        ):
            given = {
                key: value
                for key, value in (
                    ("max_attempts", max_attempts),
                    ("expiry", expiry),
                    ("expiry_strategy", expiry_strategy),
                    ("initial_expiry", initial_expiry),
                    ("max_expiry", max_expiry),
                    ("backoff_factor", backoff_factor),
                    ("half_open_max_calls", half_open_max_calls),
                )
                if value is not UNSET
            }
        if exclude != ():
            given["exclude"] = exclude
        if is_failure is not None:
            given["is_failure"] = is_failure

        if (
            identifier.__class__ is not str
            or not 0 < len(identifier) <= NAME_LIMIT
            or not identifier.isascii()
        ):
            identifier = check_name("identifier", identifier)
        if scope is not None:
            scope = check_scope(scope)
        options = self._defaults.updated(given) if given else self._defaults
        frozen_metadata = (
            EMPTY_METADATA if metadata is None else check_metadata(metadata)
        )

        handle = self._add(identifier, scope, options, frozen_metadata)
        if self._shared:
            await self._attach(handle._circuit)

        return handle

    async def _attach(self, circuit: Circuit) -> None:
        """Give a new connection to the shared store; undo it if that fails."""
        try:
            await self._store.attach(circuit)
        except BaseException:
            if self._circuits.get(circuit.key) is circuit:
                del self._circuits[circuit.key]
            self._forget(circuit, unregistered=False)
            raise

    def _add(
        self,
        identifier: str,
        scope: str | None,
        options: ConnectionOptions,
        frozen_metadata: Mapping[str, Any],
    ) -> Breaker:
        """Add a validated connection (synchronous: atomic on the loop)."""
        if self._phase is not _RUNNING:
            self._check_running()

        key = (scope, identifier)
        if key in self._circuits:
            raise AlreadyRegistered(identifier, scope)

        now = self._clock()
        circuit = Circuit(identifier, scope, options, frozen_metadata, now)
        circuit.gated = self._shared
        self._circuits[key] = circuit
        self._index.place(circuit, now)
        if self._hub.wants(EventType.REGISTERED):
            self._emit(EventType.REGISTERED, circuit)

        return Breaker(self, circuit)

    def breaker(self, identifier: str, *, scope: str | None = None) -> Breaker:
        """Return a handle of a registered connection.

        Handles are small views of the connection: this returns a new one
        each time, equal (``==``) to every other handle of the connection.

        Raises:
            ConnectionNotFound: If no connection has that key.
        """
        return Breaker(self, self._lookup(identifier, scope))

    def circuit_breaker(
        self, identifier: str, *, scope: str | None = None, **options: Any
    ) -> Callable[
        [Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]
    ]:
        """Return a decorator for ``async def`` functions.

        The connection is registered with ``options`` on the first call of
        the decorated function (or taken as it is if the key already
        exists), and again after cleanup or ``unregister()`` removed it.
        Everything is validated and resolved now, not on first use: options
        not given take the registry's defaults as they are now.

        Raises:
            ConfigurationError: If an argument or option is invalid.
            TypeError: When applied to something that is not an ``async def``.
        """
        identifier = check_name("identifier", identifier)
        scope = check_scope(scope)
        given = dict(options)
        frozen_metadata = check_metadata(given.pop("metadata", None))
        # Resolved now, against the defaults of now: the first call can
        # never fail on options that were accepted here.
        resolved = self._defaults.updated(given) if given else self._defaults
        if self._phase == _CLOSED:
            self._check_running()

        def decorate(
            fn: Callable[P, Coroutine[Any, Any, T]],
        ) -> Callable[P, Coroutine[Any, Any, T]]:
            require_coroutine_function(fn)
            handle: Breaker | None = None

            @functools.wraps(fn)
            async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
                nonlocal handle
                if handle is None or handle._circuit.code == GONE:
                    handle = await self._obtain(
                        identifier, scope, resolved, frozen_metadata
                    )

                return await handle.call(fn, *args, **kwargs)

            return guarded

        return decorate

    async def _obtain(
        self,
        identifier: str,
        scope: str | None,
        options: ConnectionOptions,
        frozen_metadata: Mapping[str, Any],
    ) -> Breaker:
        self._check_running()
        circuit = self._circuits.get((scope, identifier))
        if circuit is not None:
            return Breaker(self, circuit)

        handle = self._add(identifier, scope, options, frozen_metadata)
        if self._shared:
            await self._attach(handle._circuit)

        return handle

    async def unregister(self, identifier: str, *, scope: str | None = None) -> bool:
        """Remove a connection; return ``False`` if it was not registered.

        Its handles stop working; calls still running through it finish
        normally and their outcomes are dropped.
        """
        identifier = check_name("identifier", identifier)
        scope = check_scope(scope)
        self._check_running()
        circuit = self._circuits.pop((scope, identifier), None)
        if circuit is None:
            return False

        status = (
            self._snapshot(circuit) if self._hub.wants(EventType.UNREGISTERED) else None
        )
        self._forget(circuit)
        self._emit(EventType.UNREGISTERED, circuit, status=status)

        return True

    def _forget(self, circuit: Circuit, *, unregistered: bool = True) -> None:
        self._expiries.forget(circuit)
        if self._shared:
            self._store.detach(circuit, delete=unregistered)
        _retire(circuit)

    # -- reading -------------------------------------------------------------

    def _lookup(self, identifier: object, scope: object) -> Circuit:
        identifier = check_name("identifier", identifier)
        scope = check_scope(scope)
        self._check_running()
        circuit = self._circuits.get((scope, identifier))
        if circuit is None:
            raise ConnectionNotFound(identifier, scope)

        return circuit

    def _alive(self, circuit: Circuit) -> None:
        if circuit.code == GONE:
            self._check_running()
            raise ConnectionNotFound(circuit.identifier, circuit.scope)

    def status(self, identifier: str, *, scope: str | None = None) -> ConnectionStatus:
        """Return a frozen snapshot of a connection.

        An open circuit whose expiry has passed is moved to half-open first
        (with its events), so the snapshot is never behind the clock.

        Raises:
            ConnectionNotFound: If no connection has that key.
        """
        return self._status_of(self._lookup(identifier, scope))

    def _status_of(self, circuit: Circuit) -> ConnectionStatus:
        self._alive(circuit)
        self._catch_up(circuit)

        return self._snapshot(circuit)

    def available(self, identifier: str, *, scope: str | None = None) -> bool:
        """Whether a call now would be admitted: closed, or half-open with a
        free trial slot (an open circuit past its expiry counts as half-open).

        It never changes state and never takes a trial slot.
        """
        return self._available(self._lookup(identifier, scope))

    def _available(self, circuit: Circuit) -> bool:
        self._alive(circuit)
        code = circuit.code
        if code == CLOSED:
            return True

        if code == OPEN:
            deadline = circuit.half_open_at
            return deadline is not None and self._clock() >= deadline

        return circuit.trials < circuit.options.half_open_max_calls

    def connections(self) -> list[ConnectionStatus]:
        """Snapshots of every registered connection, in registration order."""
        self._check_running()
        circuits = list(self._circuits.values())
        for circuit in circuits:
            self._catch_up(circuit)

        return [self._snapshot(circuit) for circuit in circuits]

    def __len__(self) -> int:
        """The number of registered connections."""
        return len(self._circuits)

    def _catch_up(self, circuit: Circuit) -> None:
        """Apply an expiry that fell due before its timer ran."""
        if circuit.code == OPEN:
            transition = machine.apply_expiry(circuit, self._clock())
            if transition is not None:
                self._announce(circuit, transition)

    def _wall(self, monotonic: float) -> datetime:
        return datetime.fromtimestamp(
            self._wall_anchor + (monotonic - self._mono_anchor), tz=timezone.utc
        )

    def _maybe_wall(self, monotonic: float | None) -> datetime | None:
        return None if monotonic is None else self._wall(monotonic)

    def _snapshot(self, circuit: Circuit) -> ConnectionStatus:
        options = circuit.options
        reason = circuit.last_failure_reason
        if reason is None and circuit.last_failure is not None:
            reason = repr(circuit.last_failure)

        return ConnectionStatus(
            identifier=circuit.identifier,
            scope=circuit.scope,
            state=circuit.state,
            failure_count=circuit.failure_count,
            max_attempts=options.max_attempts,
            expiry=options.expiry,
            expiry_strategy=options.expiry_strategy,
            initial_expiry=options.effective_initial_expiry,
            max_expiry=options.effective_max_expiry,
            backoff_factor=options.backoff_factor,
            half_open_max_calls=options.half_open_max_calls,
            expiry_enabled=circuit.expiry_enabled,
            trips=circuit.trips,
            opened_at=self._maybe_wall(circuit.opened_at),
            half_open_at=self._maybe_wall(circuit.half_open_at),
            last_failure_at=self._maybe_wall(circuit.last_failure_at),
            last_success_at=self._maybe_wall(circuit.last_success_at),
            last_activity_at=self._wall(circuit.last_activity_at),
            last_failure_reason=reason,
            in_flight=circuit.in_flight,
            trials_in_flight=circuit.trials if circuit.code == HALF_OPEN else 0,
            stale=circuit.stale_since is not None
            and circuit.last_activity_at < circuit.stale_since
            and circuit.started == circuit.reviewed_started,
            metadata=circuit.metadata,
        )

    # -- the call path (synchronous: atomic on the event loop) ---------------

    def _admit(self, circuit: Circuit) -> tuple[int, bool]:
        """Admit a call to a circuit that is not closed, or raise the refusal.

        Returns the generation and whether the call is a half-open trial.
        """
        admitted = self._try_admit(circuit)
        if isinstance(admitted, CircuitOpenError):
            raise admitted

        return admitted

    def _try_admit(self, circuit: Circuit) -> tuple[int, bool] | CircuitOpenError:
        """Like :meth:`_admit`, but return the refusal instead of raising it.

        The breaker raises it from its own frame: one traceback entry less
        on the refusal path.
        """
        code = circuit.code
        if code == OPEN:
            now = self._clock()
            deadline = circuit.half_open_at
            if deadline is None:
                return CircuitOpenError(
                    circuit.identifier, circuit.scope, _OPEN, None, circuit.last_failure
                )
            if now < deadline:
                return CircuitOpenError(
                    circuit.identifier,
                    circuit.scope,
                    _OPEN,
                    deadline - now,
                    circuit.last_failure,
                )

            transition = machine.apply_expiry(circuit, now)
            assert transition is not None
            self._announce(circuit, transition)
        elif code == GONE:
            self._alive(circuit)

        if circuit.code == HALF_OPEN:
            if circuit.trials >= circuit.options.half_open_max_calls:
                return CircuitOpenError(
                    circuit.identifier,
                    circuit.scope,
                    _HALF_OPEN,
                    0.0,
                    circuit.last_failure,
                )
            circuit.trials += 1
            return circuit.generation, True

        return circuit.generation, False

    def _is_failure(self, circuit: Circuit, error: Exception) -> bool:
        options = circuit.options
        if options.exclude and isinstance(error, options.exclude):
            return False

        predicate = options.is_failure
        if predicate is None:
            return True

        try:
            return bool(predicate(error))
        except Exception:
            logger.warning(
                "is_failure of %s raised on %r; counting it as a failure",
                _describe(circuit),
                error,
                exc_info=True,
            )
            return True

    def _settle_error(
        self, circuit: Circuit, generation: int, trial: bool, error: Exception
    ) -> None:
        if trial:
            machine.release_trial(circuit, generation)

        if not self._is_failure(circuit, error):
            self._settle_success(circuit, generation, False)
            return

        step = machine.record_failure(circuit, generation, self._clock(), error, None)
        if step is machine.IGNORED:
            return

        if self._hub.wants(EventType.FAILURE):
            self._emit(EventType.FAILURE, circuit, reason=repr(error))
        if isinstance(step, Transition):
            self._announce(circuit, step, reason=repr(error))

    def _settle_interrupted(
        self, circuit: Circuit, generation: int, trial: bool
    ) -> None:
        if trial:
            machine.release_trial(circuit, generation)
            if self._shared:
                self._store.settle_interrupted(circuit, trial)
        if circuit.code != GONE:
            circuit.touched_at = self._clock()

    def _settle_success(self, circuit: Circuit, generation: int, trial: bool) -> None:
        if trial:
            machine.release_trial(circuit, generation)

        step = machine.record_success(circuit, generation, self._clock())
        if step is machine.IGNORED:
            return

        if self._hub.wants(EventType.SUCCESS):
            self._emit(EventType.SUCCESS, circuit)
        if isinstance(step, Transition):
            self._announce(circuit, step)

    # -- announcing transitions -----------------------------------------------

    def _announce(
        self,
        circuit: Circuit,
        transition: Transition,
        reason: str | None = None,
        origin: str | None = None,
    ) -> None:
        """Schedule, log and emit what a committed transition did.

        ``origin`` names another process when a shared store applies a
        transition made there (``None``: made here).
        """
        if transition.previous == OPEN:
            self._expiries.forget(circuit)
        if transition.current == OPEN and circuit.half_open_at is not None:
            self._schedule(circuit)

        why = transition.reason if transition.reason is not None else reason
        _log_transition(self, circuit, transition, why)
        previous = STATES[transition.previous]
        hub = self._hub
        announced = hub.wants(transition.event)
        changed = transition.changes_state and hub.wants(EventType.STATE_CHANGE)
        # Both events of one transition carry the same snapshot.
        status = self._snapshot(circuit) if announced or changed else None
        if announced:
            self._emit(
                transition.event,
                circuit,
                previous=previous,
                reason=why,
                status=status,
                origin=origin,
            )
        if changed:
            self._emit(
                EventType.STATE_CHANGE,
                circuit,
                previous=previous,
                reason=why,
                status=status,
                origin=origin,
            )
        if transition.expiry_changed:
            self._emit(
                EventType.EXPIRY_CHANGED,
                circuit,
                reason=f"open duration now {circuit.open_duration:g}s",
                origin=origin,
            )

    def _schedule(self, circuit: Circuit) -> None:
        self._expiries.push(circuit)
        deadline = circuit.half_open_at
        assert deadline is not None
        if deadline < self._sleep_until and self._wakeup is not None:
            self._wakeup.set()

    def _emit(
        self,
        event_type: EventType,
        circuit: Circuit,
        *,
        previous: State | None = None,
        reason: str | None = None,
        status: ConnectionStatus | None = None,
        origin: str | None = None,
    ) -> None:
        if not self._hub.wants(event_type):
            return

        if status is None:
            status = self._snapshot(circuit)

        self._hub.publish(
            Event(
                type=event_type,
                identifier=circuit.identifier,
                scope=circuit.scope,
                timestamp=datetime.now(timezone.utc),
                state=status.state,
                previous_state=previous,
                reason=reason,
                status=status,
                origin=origin,
            )
        )

    def _refresh_watchers(self) -> None:
        self._watch_success = self._hub.wants(EventType.SUCCESS)

    # -- reports and manual controls ------------------------------------------

    async def success(self, identifier: str, *, scope: str | None = None) -> None:
        """Report a success by hand, as a call would.

        Closed: the failure count resets. Half-open: the circuit closes.
        Open: the count resets and the circuit stays open.
        """
        await self._report_success(self._lookup(identifier, scope))

    async def _report_success(self, circuit: Circuit) -> None:
        self._alive(circuit)
        self._catch_up(circuit)
        if self._shared:
            await self._store.settle_success(circuit, circuit.generation, False)
            return

        self._settle_success(circuit, circuit.generation, False)

    async def failure(
        self, identifier: str, *, scope: str | None = None, reason: str | None = None
    ) -> None:
        """Report a failure by hand, as a failing call would.

        Closed: counted, and the circuit opens at ``max_attempts``. Half-open:
        the circuit opens again. Open: recorded (time and reason) without
        moving ``opened_at``.
        """
        reason = check_reason(reason)
        await self._report_failure(self._lookup(identifier, scope), reason)

    async def _report_failure(self, circuit: Circuit, reason: str | None) -> None:
        reason = check_reason(reason)
        self._alive(circuit)
        self._catch_up(circuit)
        if self._shared:
            await self._store.record_failure(
                circuit, circuit.generation, False, None, reason
            )
            return

        step = machine.record_failure(
            circuit, circuit.generation, self._clock(), None, reason
        )
        self._emit(EventType.FAILURE, circuit, reason=reason)
        if isinstance(step, Transition):
            self._announce(circuit, step, reason="failure reported by hand")

    async def open_circuit(
        self,
        identifier: str,
        *,
        scope: str | None = None,
        expiry: Seconds | None = None,
        reason: str | None = None,
    ) -> None:
        """Force a circuit open now, for ``expiry`` seconds if given, else for
        the duration its strategy gives next. Counts as a trip."""
        expiry = optional_seconds("expiry", expiry)
        reason = check_reason(reason)
        await self._open_circuit(self._lookup(identifier, scope), expiry, reason)

    async def _open_circuit(
        self, circuit: Circuit, expiry: Seconds | None, reason: str | None
    ) -> None:
        duration = optional_seconds("expiry", expiry)
        reason = check_reason(reason)
        self._alive(circuit)
        now = self._clock()
        circuit.touched_at = now
        transition = machine.force_open(
            circuit, now, duration, reason or "opened by hand"
        )
        self._announce(circuit, transition)
        if self._shared:
            await self._store.publish(circuit, "opened", transition.reason)

    async def close_circuit(
        self, identifier: str, *, scope: str | None = None, reason: str | None = None
    ) -> None:
        """Force a circuit closed; the failure count resets, the progressive
        backoff does not (see :meth:`reset_circuit`)."""
        reason = check_reason(reason)
        await self._close_circuit(self._lookup(identifier, scope), reason)

    async def _close_circuit(self, circuit: Circuit, reason: str | None) -> None:
        reason = check_reason(reason)
        self._alive(circuit)
        circuit.touched_at = self._clock()
        self._announce(
            circuit, machine.force_close(circuit, reason or "closed by hand")
        )
        if self._shared:
            await self._store.publish(circuit, "closed", reason)

    async def reset_circuit(
        self, identifier: str, *, scope: str | None = None, reason: str | None = None
    ) -> None:
        """Close a circuit and reset its counters and progressive backoff."""
        reason = check_reason(reason)
        await self._reset_circuit(self._lookup(identifier, scope), reason)

    async def _reset_circuit(self, circuit: Circuit, reason: str | None) -> None:
        reason = check_reason(reason)
        self._alive(circuit)
        circuit.touched_at = self._clock()
        self._announce(circuit, machine.reset(circuit, reason or "reset by hand"))
        if self._shared:
            await self._store.publish(circuit, "reset", reason)

    async def reset_expiry(self, identifier: str, *, scope: str | None = None) -> None:
        """Send an open circuit half-open now; other states are left alone."""
        await self._reset_expiry(self._lookup(identifier, scope))

    async def _reset_expiry(self, circuit: Circuit) -> None:
        self._alive(circuit)
        circuit.touched_at = self._clock()
        transition = machine.reset_expiry(circuit)
        if transition is not None:
            self._announce(circuit, transition)
            if self._shared:
                await self._store.publish(circuit, "half_opened", None)

    async def set_expiry(
        self, identifier: str, seconds: Seconds, *, scope: str | None = None
    ) -> None:
        """Set a connection's expiry and re-enable expiry if it was disabled.

        An open circuit is rescheduled from its ``opened_at``: if the new
        deadline has passed it goes half-open at once. With the progressive
        strategy the new value applies to the current open period, and the
        strategy's schedule to later ones.
        """
        check_seconds("seconds", seconds)
        await self._set_expiry(self._lookup(identifier, scope), seconds)

    async def _set_expiry(self, circuit: Circuit, seconds: Seconds) -> None:
        duration = check_seconds("seconds", seconds)
        self._alive(circuit)
        options = circuit.options.updated({"expiry": duration})
        now = self._clock()

        circuit.options = options
        circuit.touched_at = now
        transition = machine.set_expiry(circuit, now, duration)
        self._expiries.forget(circuit)
        if circuit.code == OPEN and circuit.half_open_at is not None:
            self._schedule(circuit)

        self._emit(
            EventType.EXPIRY_CHANGED, circuit, reason=f"expiry set to {duration:g}s"
        )
        if transition is not None:
            self._announce(circuit, transition)
        if self._shared:
            await self._store.publish(circuit, "expiry", None)

    async def disable_expiry(
        self, identifier: str, *, scope: str | None = None
    ) -> None:
        """Keep the circuit open (once open) until a manual control acts.

        ``CircuitOpenError.remaining`` is ``None`` meanwhile; ``set_expiry()``
        re-enables expiry.
        """
        await self._disable_expiry(self._lookup(identifier, scope))

    async def _disable_expiry(self, circuit: Circuit) -> None:
        self._alive(circuit)
        circuit.touched_at = self._clock()
        self._expiries.forget(circuit)
        machine.disable_expiry(circuit)
        self._emit(EventType.EXPIRY_CHANGED, circuit, reason="expiry disabled")
        if self._shared:
            await self._store.publish(circuit, "expiry", None)

    # -- configuration ---------------------------------------------------------

    async def configure(
        self, identifier: str | None = None, *, scope: str | None = None, **options: Any
    ) -> None:
        """Change options.

        Without an identifier: the defaults for connections registered later
        and the registry settings (``cleanup_interval`` and
        ``inactive_threshold`` take effect at once). With one: only the given
        options of that connection change (``metadata`` included). Either
        way, one invalid option means nothing changes.
        """
        if identifier is None:
            if scope is not None:
                raise ConfigurationError(
                    f"scope={scope!r} needs an identifier: a global configure() "
                    "takes no scope"
                )
            self._configure_registry(options)
            return

        await self._configure_circuit(self._lookup(identifier, scope), options)

    def _configure_registry(self, options: Mapping[str, object]) -> None:
        checked = check_global_options(options)
        defaults, settings = split_settings(checked)
        new_defaults = replace(self._defaults, **defaults)  # type: ignore[arg-type]
        check_consistent(new_defaults)
        new_settings = replace(self._settings, **settings)  # type: ignore[arg-type]
        if self._phase == _CLOSED:
            self._check_running()

        interval_changed = (
            new_settings.cleanup_interval != self._settings.cleanup_interval
        )
        self._defaults = new_defaults
        self._settings = new_settings
        if interval_changed and self._phase == _RUNNING:
            self._next_sweep_at = self._clock() + new_settings.cleanup_interval
            if self._wakeup is not None:
                self._wakeup.set()

    async def _configure_circuit(
        self, circuit: Circuit, options: Mapping[str, object]
    ) -> None:
        changes = dict(options)
        metadata = changes.pop("metadata", UNSET)
        new_metadata = (
            circuit.metadata if metadata is UNSET else check_metadata(metadata)
        )
        new_options = circuit.options.updated(changes)
        self._alive(circuit)

        circuit.options = new_options
        circuit.metadata = new_metadata
        circuit.touched_at = self._clock()

    @property
    def defaults(self) -> ConnectionOptions:
        """The options new connections get when they give none."""
        return self._defaults

    @property
    def settings(self) -> RegistrySettings:
        """The registry's live settings."""
        return self._settings

    # -- events ------------------------------------------------------------------

    def subscribe(
        self,
        *,
        events: Iterable[EventType | str] | None = None,
        connection: str | None = None,
        scope: str | None = None,
        filter: EventFilter | None = None,
        max_queued: int = 1000,
    ) -> Subscription:
        """Subscribe to events matching every filter given.

        Args:
            events: Event types to receive (``EventType`` or their names);
                ``None`` for all.
            connection: Only events of connections with this identifier.
            scope: Only events of connections in this scope.
            filter: A predicate on each event; if it raises, that event is
                skipped for this subscription and the error counted.
            max_queued: Queue size; when full, the oldest event is dropped
                and counted in ``Subscription.dropped``.
        """
        if self._phase == _CLOSED:
            self._check_running()

        return self._hub.subscribe(events, connection, scope, filter, max_queued)

    # -- background work -----------------------------------------------------

    async def _run_timers(self) -> None:
        """Apply due expiries and run sweeps on time, forever (real clocks)."""
        while True:
            await self._run_due()
            deadline = min(
                self._expiries.next_deadline() or math.inf, self._next_sweep_at
            )
            self._wakeup = wakeup = anyio.Event()
            self._sleep_until = deadline
            with anyio.move_on_after(max(0.0, deadline - self._clock())):
                await wakeup.wait()
            self._sleep_until = -math.inf
            self._wakeup = None

    async def _run_due(self) -> None:
        """Apply every expiry that fell due, then sweep if a sweep is due.

        Many expiries falling due together are applied in small batches,
        with a yield to the event loop whenever a batch took a millisecond.
        """
        now = self._clock()
        slice_started = time.perf_counter()
        while True:
            due = self._expiries.pop_due(now, EXPIRY_BATCH)
            for circuit in due:
                transition = machine.apply_expiry(circuit, now)
                if transition is not None:
                    self._announce(circuit, transition)

            if len(due) < EXPIRY_BATCH:
                break

            if time.perf_counter() - slice_started >= EXPIRY_SLICE:
                await anyio.lowlevel.checkpoint()
                slice_started = time.perf_counter()
                now = self._clock()

        if self._phase == _RUNNING and now >= self._next_sweep_at:
            await self.sweep()

    def _next_due(self, horizon: float) -> float:
        """When something is next due, for a manual clock moving to ``horizon``.

        A long run of sweeps with no expiry in between is shortened to its
        last two sweeps: with nothing happening between them, the others
        could only repeat what those two do.
        """
        if self._phase != _RUNNING:
            return math.inf

        expiry = self._expiries.next_deadline()
        if expiry is None:
            expiry = math.inf

        interval = self._settings.cleanup_interval
        sweeps_in_run = (min(expiry, horizon) - self._next_sweep_at) // interval
        if sweeps_in_run > MAX_SWEEPS_IN_RUN:
            self._next_sweep_at += (sweeps_in_run - 1) * interval

        return min(expiry, self._next_sweep_at)

    async def _clock_advanced(self) -> None:
        """Called by a manual clock after it moved."""
        if self._phase == _RUNNING:
            await self._run_due()

    async def sweep(self) -> SweepSummary:
        """Run one cleanup sweep now and return its summary.

        The sweep reviews only connections idle for longer than
        ``inactive_threshold``: an idle one is marked stale, and removed by a
        later sweep if still idle. Open circuits and connections with calls
        in flight are spared. Ends with one ``cleanup`` event.
        """
        self._check_running()
        assert self._sweep_lock is not None
        async with self._sweep_lock:
            summary = await sweep(
                self._index,
                self._clock,
                self._settings.inactive_threshold,
                self._mark_stale,
                self._remove_idle,
            )
            self._next_sweep_at = self._clock() + self._settings.cleanup_interval

        summary["connections"] = len(self._circuits)
        logger.debug(
            "cleanup sweep: reviewed %d, marked stale %d, removed %d in %.3fs",
            summary["reviewed"],
            summary["marked_stale"],
            summary["removed"],
            summary["duration"],
        )
        if self._hub.wants(EventType.CLEANUP):
            self._hub.publish(
                Event(
                    type=EventType.CLEANUP,
                    identifier=None,
                    scope=None,
                    timestamp=datetime.now(timezone.utc),
                    state=None,
                    data=dict(summary),
                )
            )

        return summary

    def _mark_stale(self, circuit: Circuit) -> None:
        self._emit(EventType.CONNECTION_STALE, circuit, reason="inactive")

    def _remove_idle(self, circuit: Circuit) -> None:
        if self._circuits.get(circuit.key) is circuit:
            del self._circuits[circuit.key]
        status = (
            self._snapshot(circuit)
            if self._hub.wants(EventType.CONNECTION_REMOVED)
            else None
        )
        self._forget(circuit, unregistered=False)
        self._emit(
            EventType.CONNECTION_REMOVED, circuit, reason="inactive", status=status
        )


def _retire(circuit: Circuit) -> None:
    circuit.code = GONE
    circuit.generation += 1
    circuit.trials = 0
    circuit.half_open_at = None


def _check_clock(clock: object) -> Callable[[], float]:
    if clock is None:
        return time.monotonic

    if not callable(clock):
        raise ConfigurationError(
            f"clock must be a zero-argument callable returning monotonic seconds, "
            f"got {show(clock)}"
        )

    try:
        sample = clock()
    except Exception as error:
        raise ConfigurationError(
            f"clock must be a zero-argument callable returning monotonic seconds; "
            f"calling {show(clock)} raised {show(error)}"
        ) from error

    if not isinstance(sample, (int, float)) or isinstance(sample, bool):
        raise ConfigurationError(
            f"clock must return a number of seconds, "
            f"{show(clock)} returned {show(sample)}"
        )

    if not math.isfinite(sample):
        raise ConfigurationError(
            f"clock must return a finite number, got {show(sample)}"
        )

    return clock


def _describe(circuit: Circuit) -> str:
    if circuit.scope is None:
        return repr(circuit.identifier)

    return f"{circuit.identifier!r} (scope {circuit.scope!r})"


def _log_transition(
    registry: Brama, circuit: Circuit, transition: Transition, reason: str | None
) -> None:
    if transition.current == OPEN:
        if not logger.isEnabledFor(logging.WARNING):
            return

        if circuit.half_open_at is None:
            until = "until reset by hand"
        else:
            until = f"half-open at {registry._wall(circuit.half_open_at).isoformat()}"
        logger.warning(
            "circuit %s opened (%s); %s",
            _describe(circuit),
            reason,
            until,
            extra={
                "brama_identifier": circuit.identifier,
                "brama_scope": circuit.scope,
                "brama_state": "open",
                "brama_reason": reason,
            },
        )
        return

    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "circuit %s %s (%s)",
            _describe(circuit),
            _VERBS[transition.event],
            reason,
            extra={
                "brama_identifier": circuit.identifier,
                "brama_scope": circuit.scope,
                "brama_state": STATES[transition.current].value,
                "brama_reason": reason,
            },
        )


_VERBS: Final = {
    EventType.CIRCUIT_HALF_OPENED: "half-opened",
    EventType.CIRCUIT_CLOSED: "closed",
    EventType.CIRCUIT_RESET: "reset",
    EventType.CIRCUIT_OPENED: "opened",
}
