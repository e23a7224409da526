"""The breaker handle and its three call styles."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from typing_extensions import ParamSpec

from ._errors import CircuitOpenError
from ._machine import GONE, HALF_OPEN, OPEN
from ._types import State

if TYPE_CHECKING:
    from datetime import timedelta

    from ._machine import Circuit
    from ._registry import Brama
    from ._status import ConnectionStatus

__all__ = ["Breaker", "require_coroutine_function"]

P = ParamSpec("P")
T = TypeVar("T")

# The calls admitted by ``async with breaker:`` in the current task, innermost
# first, as linked tuples (circuit, generation, is_trial, outer entries).
_Entry = tuple["Circuit", int, bool, Any]
_OPEN_STATE = State.OPEN

_entries: ContextVar[_Entry | None] = ContextVar("brama_async_entries", default=None)


def require_coroutine_function(fn: object) -> None:
    """Refuse anything but an ``async def`` function, with a clear TypeError."""
    if inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"cannot protect {fn!r}: it is an async generator function; "
            "a breaker protects coroutine functions (async def returning a value)"
        )

    if not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"cannot protect {fn!r}: a breaker decorates coroutine functions "
            "(async def); for other callables use `await breaker.call(...)` "
            "or `async with breaker:`"
        )


class Breaker:
    """The handle of one registered connection.

    Three ways to protect code, sharing one set of counters and half-open
    trial slots:

    * ``await breaker.call(fn, *args, **kwargs)``
    * ``async with breaker: ...``
    * ``@breaker`` on an ``async def``

    A refused call raises :class:`~brama_async.CircuitOpenError` without
    running anything. Every other exception propagates unchanged: counted
    ones (``Exception`` subclasses not excluded) as failures, excluded ones as
    successes. Cancellation and other ``BaseException`` subclasses are never
    counted; if the call was a half-open trial, its slot is freed and nothing
    is decided.

    Handles are obtained from :meth:`Brama.register` or :meth:`Brama.breaker`.
    Once the connection is unregistered or removed, or the registry closed,
    using the handle raises ``ConnectionNotFound`` or ``RegistryClosedError``.
    """

    __slots__ = ("__weakref__", "_circuit", "_clock", "_registry")

    def __init__(self, registry: Brama, circuit: Circuit) -> None:
        self._registry = registry
        self._circuit = circuit
        # Copied from the registry: one attribute load less on every call.
        self._clock = registry._clock

    def __repr__(self) -> str:
        circuit = self._circuit
        state = "gone" if circuit.code == GONE else circuit.state.value
        return (
            f"<Breaker identifier={circuit.identifier!r} scope={circuit.scope!r} "
            f"state={state}>"
        )

    def __eq__(self, other: object) -> bool:
        """Handles are equal when they are handles of the same connection."""
        if not isinstance(other, Breaker):
            return NotImplemented

        return other._circuit is self._circuit

    def __hash__(self) -> int:
        return id(self._circuit)

    @property
    def identifier(self) -> str:
        """The connection's identifier."""
        return self._circuit.identifier

    @property
    def scope(self) -> str | None:
        """The connection's scope, or ``None``."""
        return self._circuit.scope

    async def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``await fn(*args, **kwargs)`` through the breaker.

        Returns what ``fn`` returns and raises what it raises. Raises
        :class:`~brama_async.CircuitOpenError`, without calling ``fn``, when
        the circuit is open or every half-open trial slot is taken.

        Cancelled while ``fn`` runs: the cancellation propagates, nothing is
        counted, and a half-open trial slot held by this call is freed.
        """
        circuit = self._circuit
        code = circuit.code
        if code or circuit.gated:
            if self._registry._shared:
                generation, trial = await self._registry._store.admit(circuit)
            else:
                if code == OPEN:
                    # The refusal, inline: the most frequent call while open.
                    deadline = circuit.half_open_at
                    now = self._clock()
                    if deadline is None or now < deadline:
                        raise CircuitOpenError(
                            circuit.identifier,
                            circuit.scope,
                            _OPEN_STATE,
                            None if deadline is None else deadline - now,
                            circuit.last_failure,
                        )

                admitted = self._registry._try_admit(circuit)
                if admitted.__class__ is CircuitOpenError:
                    raise admitted
                generation, trial = admitted  # type: ignore[misc]
        else:
            generation = circuit.generation
            trial = False

        circuit.started += 1
        awaitable: object = _NOT_CALLED
        try:
            awaitable = fn(*args, **kwargs)
            result = await awaitable
        except Exception as error:
            circuit.finished += 1
            if error.__class__ is TypeError and _misused(fn, awaitable):
                # A programming error at this call site, not an outage:
                # nothing is counted, and a trial slot is freed.
                self._registry._settle_interrupted(circuit, generation, trial)
                _raise_misuse(fn, awaitable, error)
            await self._settle_error(circuit, generation, trial, error)
            raise
        except BaseException:
            circuit.finished += 1
            self._registry._settle_interrupted(circuit, generation, trial)
            raise

        circuit.finished += 1
        if (
            trial
            or circuit.failure_count
            or generation != circuit.generation
            or self._registry._watch_success
        ):
            await self._settle_success(circuit, generation, trial)

        return result

    async def __aenter__(self) -> Breaker:
        """Admit the block, or raise ``CircuitOpenError`` without running it."""
        circuit = self._circuit
        if circuit.code or circuit.gated:
            if self._registry._shared:
                generation, trial = await self._registry._store.admit(circuit)
            else:
                admitted = self._registry._try_admit(circuit)
                if admitted.__class__ is CircuitOpenError:
                    raise admitted
                generation, trial = admitted  # type: ignore[misc]
        else:
            generation = circuit.generation
            trial = False

        circuit.started += 1
        _entries.set((circuit, generation, trial, _entries.get()))

        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the block's outcome; never suppresses its exception."""
        circuit = self._circuit
        generation, trial = _pop_entry(circuit)
        circuit.finished += 1
        if exc is None:
            if (
                trial
                or circuit.failure_count
                or generation != circuit.generation
                or self._registry._watch_success
            ):
                await self._settle_success(circuit, generation, trial)
        elif isinstance(exc, Exception):
            await self._settle_error(circuit, generation, trial, exc)
        else:
            self._registry._settle_interrupted(circuit, generation, trial)

    # The paths off the closed-state fast path, shared by the call styles.
    # A shared store is awaited here only, never on a plain closed success.

    async def _settle_error(
        self, circuit: Circuit, generation: int, trial: bool, error: Exception
    ) -> None:
        registry = self._registry
        if registry._shared:
            await registry._store.settle_error(circuit, generation, trial, error)
        else:
            registry._settle_error(circuit, generation, trial, error)

    async def _settle_success(
        self, circuit: Circuit, generation: int, trial: bool
    ) -> None:
        registry = self._registry
        if registry._shared:
            await registry._store.settle_success(circuit, generation, trial)
        else:
            registry._settle_success(circuit, generation, trial)

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate an ``async def`` so every call goes through the breaker.

        The wrapper keeps the function's name, docstring, signature and
        ``__wrapped__``, and is itself a coroutine function.

        Raises:
            TypeError: At decoration, if ``fn`` is not a coroutine function
                (a plain ``def`` or an async generator function).
        """
        require_coroutine_function(fn)
        call = self.call

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await call(fn, *args, **kwargs)

        return guarded

    def status(self) -> ConnectionStatus:
        """A snapshot of the connection (see :meth:`Brama.status`)."""
        return self._registry._status_of(self._circuit)

    def available(self) -> bool:
        """Whether a call now would be admitted (see :meth:`Brama.available`)."""
        return self._registry._available(self._circuit)

    async def success(self) -> None:
        """Report a success by hand (see :meth:`Brama.success`)."""
        await self._registry._report_success(self._circuit)

    async def failure(self, *, reason: str | None = None) -> None:
        """Report a failure by hand (see :meth:`Brama.failure`)."""
        await self._registry._report_failure(self._circuit, reason)

    async def open_circuit(
        self, *, expiry: float | timedelta | None = None, reason: str | None = None
    ) -> None:
        """Force the circuit open (see :meth:`Brama.open_circuit`)."""
        await self._registry._open_circuit(self._circuit, expiry, reason)

    async def close_circuit(self, *, reason: str | None = None) -> None:
        """Force the circuit closed (see :meth:`Brama.close_circuit`)."""
        await self._registry._close_circuit(self._circuit, reason)

    async def reset_circuit(self, *, reason: str | None = None) -> None:
        """Close and reset counters and backoff (see :meth:`Brama.reset_circuit`)."""
        await self._registry._reset_circuit(self._circuit, reason)

    async def reset_expiry(self) -> None:
        """Send an open circuit half-open now (see :meth:`Brama.reset_expiry`)."""
        await self._registry._reset_expiry(self._circuit)

    async def set_expiry(self, seconds: float | timedelta) -> None:
        """Set a new expiry (see :meth:`Brama.set_expiry`)."""
        await self._registry._set_expiry(self._circuit, seconds)

    async def disable_expiry(self) -> None:
        """Keep the circuit open until a manual control acts.

        See :meth:`Brama.disable_expiry`.
        """
        await self._registry._disable_expiry(self._circuit)

    async def configure(self, **options: Any) -> None:
        """Change only the given options (see :meth:`Brama.configure`)."""
        await self._registry._configure_circuit(self._circuit, options)


def _pop_entry(circuit: Circuit) -> tuple[int, bool]:
    """Remove this task's innermost entry of ``circuit``; return its admission."""
    entry = _entries.get()
    if entry is not None and entry[0] is circuit:
        _entries.set(entry[3])
        return entry[1], entry[2]

    # Exits out of order (hand-driven __aexit__ calls): search and unlink.
    skipped: list[_Entry] = []
    while entry is not None and entry[0] is not circuit:
        skipped.append(entry)
        entry = entry[3]

    if entry is None:
        # Entered in another task or context (an exit stack handed over,
        # for example): match the exit to the current period, so that a
        # half-open trial slot is freed rather than held for ever.
        trial = circuit.code == HALF_OPEN and circuit.trials > 0
        return circuit.generation, trial

    rest = entry[3]
    for kept in reversed(skipped):
        rest = (kept[0], kept[1], kept[2], rest)
    _entries.set(rest)

    return entry[1], entry[2]


_NOT_CALLED: Any = object()


def _misused(fn: object, awaitable: object) -> bool:
    """Whether a ``TypeError`` came from ``call()``'s arguments, not ``fn``."""
    if not callable(fn):
        return True

    if awaitable is _NOT_CALLED:
        # Calling an ``async def`` runs none of its body: a TypeError there
        # can only mean arguments that do not fit its signature.
        return inspect.iscoroutinefunction(fn)

    return not inspect.isawaitable(awaitable)


def _raise_misuse(fn: object, awaitable: object, error: TypeError) -> NoReturn:
    if not callable(fn):
        raise TypeError(f"breaker.call() needs a callable, got {_short(fn)}") from None

    if awaitable is _NOT_CALLED:
        raise error

    raise TypeError(
        f"breaker.call() needs a function returning an awaitable (an async "
        f"def); {_short(fn)} returned {_short(awaitable)}"
    ) from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
