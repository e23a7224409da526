"""Everything the benchmark measures side by side: floors, references, peers, us.

A contender wraps one way of guarding an ``async def`` call. The harness only
talks to the small interface of :class:`Contender`; adding a library (or a new
store of our own) is one subclass plus one line in :data:`CONTENDERS`.

Kinds:

* ``floor``: no breaker at all (bare ``await f()``, or raise-and-catch a fresh
  exception as the cheapest possible refusal).
* ``reference``: a minimal breaker written here, the cost any design must pay.
* ``peer``: another circuit-breaker library, used the way its documentation
  shows, unless its ``documented`` flag says otherwise.
* ``ours``: ``brama_async`` through its public API, in each call style.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from bench import _work
from bench._backend import Backend

Guarded = Callable[[], Awaitable[Any]]

# The timed breaker scenarios every breaker-like contender takes part in.
BREAKER_SCENARIOS = frozenset(
    {"closed", "open", "failure", "concurrent", "half_open", "register"}
)
# Variants of one library (another call style) skip the per-registry scenarios.
STYLE_SCENARIOS = frozenset({"closed", "open", "failure", "concurrent"})


class Contender:
    """One way of guarding a call; subclasses override what differs.

    ``make`` builds one breaker (a "handle"); ``bind`` returns a zero-argument
    callable that runs ``fn`` through it without adding a coroutine layer where
    the library allows that. Inline styles (``async with``) override the
    ``time_*`` loops so the loop body is exactly what a user would write.
    """

    key: ClassVar[str] = "?"
    kind: ClassVar[str] = "peer"
    dist: ClassVar[str | None] = None
    api: ClassVar[str] = ""
    note: ClassVar[str] = ""
    asyncio_only: ClassVar[bool] = False
    documented: ClassVar[bool] = True
    scenarios: ClassVar[frozenset[str]] = BREAKER_SCENARIOS
    style: ClassVar[str] = "call"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # -- availability and lifetime -------------------------------------------

    def unavailable(self) -> str | None:
        """Return why this contender cannot run here, or None when it can."""
        if self.asyncio_only and not self.backend.is_asyncio:
            return "asyncio-only library: skipped on trio"

        if self.dist is not None:
            try:
                importlib.import_module(self.module_name())
            except Exception as exc:
                return f"{self.dist} is not importable ({type(exc).__name__}: {exc})"

        return None

    def module_name(self) -> str:
        """The import name of the library (defaults to the distribution name)."""
        return (self.dist or "").replace("-", "_")

    def version(self) -> str:
        """Installed version of the library, or an empty string."""
        if self.dist is None:
            return ""

        try:
            return metadata.version(self.dist)
        except metadata.PackageNotFoundError:
            return ""

    async def start(self) -> None:
        """Prepare shared state (e.g. enter a registry) before any scenario."""

    async def stop(self) -> None:
        """Release what :meth:`start` set up."""

    # -- one breaker -----------------------------------------------------------

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types the library raises when it refuses a call."""
        raise NotImplementedError

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """Build one breaker named ``name`` that opens after ``threshold``
        consecutive failures and stays open ``reset`` seconds."""
        raise NotImplementedError

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """Return a zero-argument callable running ``fn`` through ``handle``."""
        raise NotImplementedError

    async def drop(self, handle: Any) -> None:
        """Forget ``handle`` (remove it from any registry it was put in)."""

    async def trip(self, handle: Any, threshold: int) -> None:
        """Drive ``handle`` open by failing ``threshold`` awaited calls.

        Some libraries raise their open error from the call that trips them;
        that is accepted here (the semantic checks report it).
        """
        guarded = self.bind(handle, _work.fail)
        for _ in range(threshold):
            with contextlib.suppress(_work.WorkFailure, *self.open_errors()):
                await guarded()

    async def to_half_open(self, handle: Any, reset: float) -> None:
        """Bring a tripped ``handle`` to the point where its next call is a trial."""
        await anyio.sleep(reset * 1.5 + 0.01)

    # -- timed loops -----------------------------------------------------------

    def timed_callable(self, handle: Any, fn: Guarded) -> Guarded:
        """The callable the timed loops call (``bind`` unless overridden)."""
        return self.bind(handle, fn)

    async def time_ok(self, handle: Any, fn: Guarded, n: int) -> int:
        """Nanoseconds for ``n`` successful calls of ``fn`` through ``handle``."""
        guarded = self.timed_callable(handle, fn)
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            await guarded()
        await self._drain()
        return clock() - start

    async def time_raising(
        self,
        handle: Any,
        fn: Guarded,
        n: int,
        errors: tuple[type[BaseException], ...],
    ) -> int:
        """Nanoseconds for ``n`` calls through ``handle`` that raise ``errors``."""
        guarded = self.timed_callable(handle, fn)
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            try:  # noqa: SIM105 (suppress() would add a context manager per call)
                await guarded()
            except errors:
                pass
        await self._drain()
        return clock() - start

    async def time_concurrent(self, handle: Any, fn: Guarded, tasks: int) -> int:
        """Nanoseconds to run ``tasks`` concurrent guarded calls to completion."""
        guarded = self.timed_callable(handle, fn)
        clock = time.perf_counter_ns
        start = clock()
        results = await self.backend.spawn_all(guarded, tasks)
        elapsed = clock() - start

        if len(results) != tasks or any(r != 1 for r in results):
            raise RuntimeError("concurrent calls returned wrong results")

        return elapsed

    async def _drain(self) -> None:
        """Let callbacks scheduled by the calls run inside the timed region.

        Some libraries finish their bookkeeping in ``call_soon`` callbacks; a
        loop that never suspends would otherwise push that work out of the timer.
        """
        for _ in range(3):
            await self.backend.sleep0()

    # -- many breakers ---------------------------------------------------------

    async def make_many(self, n: int) -> Any:
        """Build ``n`` named breakers the library's usual way; return what keeps
        them alive."""
        kept = {}
        for i in range(n):
            name = f"svc-{i}"
            kept[name] = await self.make(name, 5, 30.0)

        return kept

    async def drop_many(self, kept: Any) -> None:
        """Release what :meth:`make_many` returned."""


# ---------------------------------------------------------------------------
# floors
# ---------------------------------------------------------------------------


class BareFloor(Contender):
    """No breaker: ``await f()`` (``f`` raising, for the failure scenario)."""

    key = "bare"
    kind = "floor"
    api = "await f()"
    note = "no breaker at all"
    scenarios = frozenset({"closed", "failure", "concurrent", "register"})

    class _Record:
        __slots__ = ("failures", "name")

        def __init__(self, name: str) -> None:
            self.name = name
            self.failures = 0

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """The floor never refuses; nothing is an open error."""
        return ()

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """No breaker: the handle is unused."""
        return None

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """Return ``fn`` itself."""
        return fn

    async def make_many(self, n: int) -> Any:
        """The container floor: a dict of two-field slotted records."""
        record = self._Record
        return {f"svc-{i}": record(f"svc-{i}") for i in range(n)}


class RaiseFloor(BareFloor):
    """The refusal floor: await a coroutine that raises a fresh exception."""

    key = "raise"
    api = "try: await g() except E  (g raises a fresh E)"
    note = "cheapest possible refusal"
    scenarios = frozenset({"open"})

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """The floor's refusal error."""
        return (_work.FloorRefusal,)

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """Ignore ``fn``: every call raises a fresh refusal."""
        return _work.refuse

    async def trip(self, handle: Any, threshold: int) -> None:
        """Nothing to trip: the floor always refuses."""


# ---------------------------------------------------------------------------
# reference: a minimal hand-written breaker
# ---------------------------------------------------------------------------


class MinimalOpenError(Exception):
    """Raised by :class:`MinimalBreaker` when it refuses a call."""


_CLOSED, _OPEN, _HALF_OPEN = 0, 1, 2


class MinimalBreaker:
    """The least a correct consecutive-failure breaker has to do.

    Closed: one state test before the call, one ``try``, one test after it.
    Open: one clock read, then a fresh exception. Half-open: one trial at a time.
    """

    __slots__ = (
        "failures",
        "name",
        "reopen_at",
        "reset",
        "state",
        "threshold",
        "trials",
    )

    def __init__(self, name: str, threshold: int, reset: float) -> None:
        self.name = name
        self.threshold = threshold
        self.reset = reset
        self.failures = 0
        self.state = _CLOSED
        self.reopen_at = 0.0
        self.trials = 0

    def admit(self) -> None:
        """Admit a call in a non-closed state or raise :class:`MinimalOpenError`."""
        if self.state == _OPEN:
            if time.monotonic() < self.reopen_at:
                raise MinimalOpenError(self.name)
            self.state = _HALF_OPEN
            self.trials = 0

        if self.trials >= 1:
            raise MinimalOpenError(self.name)

        self.trials += 1

    def record_failure(self) -> None:
        """Count a failure; open at the threshold or when a trial fails."""
        self.failures += 1
        if self.state == _HALF_OPEN or self.failures >= self.threshold:
            self.state = _OPEN
            self.reopen_at = time.monotonic() + self.reset

    def record_success(self) -> None:
        """Close and reset the count."""
        self.state = _CLOSED
        self.failures = 0
        self.trials = 0

    async def call(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> Any:
        """Run ``fn`` through the breaker."""
        if self.state:
            self.admit()

        try:
            result = await fn(*args, **kw)
        except Exception:
            self.record_failure()
            raise

        if self.failures or self.state:
            self.record_success()

        return result

    async def __aenter__(self) -> MinimalBreaker:
        if self.state:
            self.admit()

        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            if self.failures or self.state:
                self.record_success()
        elif issubclass(exc_type, Exception):
            self.record_failure()

    def __call__(
        self, fn: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """Decorate ``fn`` with the breaker logic inlined (one wrapper layer)."""
        breaker = self

        @functools.wraps(fn)
        async def guarded(*args: Any, **kw: Any) -> Any:
            if breaker.state:
                breaker.admit()

            try:
                result = await fn(*args, **kw)
            except Exception:
                breaker.record_failure()
                raise

            if breaker.failures or breaker.state:
                breaker.record_success()

            return result

        return guarded


class Minimal(Contender):
    """The minimal breaker, ``await breaker.call(f)``."""

    key = "minimal"
    kind = "reference"
    api = "await breaker.call(f)"
    note = "hand-written minimal breaker (no events, no registry)"

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """The minimal breaker's refusal error."""
        return (MinimalOpenError,)

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """A fresh :class:`MinimalBreaker`."""
        return MinimalBreaker(name, threshold, reset)

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """``partial(breaker.call, fn)``: no extra coroutine layer."""
        return functools.partial(handle.call, fn)


class Decorating:
    """For contenders whose handle is a decorator: ``bind`` decorates ``fn``."""

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """Decorate ``fn`` with the breaker."""
        decorated: Guarded = handle(fn)
        return decorated


class InlineWith:
    """Timed loops written the way a user writes ``async with breaker:``.

    Mixed into a contender whose breaker is an async context manager: the
    loop body is inline, so the harness adds no coroutine layer.
    """

    if TYPE_CHECKING:

        async def _drain(self) -> None: ...

    def context_manager(self, handle: Any) -> Any:
        """The object used in ``async with`` (the handle unless overridden)."""
        return handle

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """A wrapper coroutine (used outside the timed loops only)."""
        breaker = self.context_manager(handle)

        async def guarded() -> Any:
            async with breaker:
                return await fn()

        return guarded

    async def time_ok(self, handle: Any, fn: Guarded, n: int) -> int:
        """Inline ``async with breaker: await f()``."""
        breaker = self.context_manager(handle)
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            async with breaker:
                await fn()
        await self._drain()
        return clock() - start

    async def time_raising(
        self,
        handle: Any,
        fn: Guarded,
        n: int,
        errors: tuple[type[BaseException], ...],
    ) -> int:
        """Inline ``async with breaker`` around a call that raises ``errors``."""
        breaker = self.context_manager(handle)
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            try:
                async with breaker:
                    await fn()
            except errors:
                pass
        await self._drain()
        return clock() - start


class MinimalWith(InlineWith, Minimal):
    """The minimal breaker as an async context manager."""

    key = "minimal-with"
    api = "async with breaker: await f()"
    style = "with"
    scenarios = STYLE_SCENARIOS


class MinimalDecorator(Decorating, Minimal):
    """The minimal breaker as a decorator."""

    key = "minimal-deco"
    api = "@breaker async def f"
    style = "deco"
    scenarios = STYLE_SCENARIOS


# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------


class Pybreaker(Contender):
    """pybreaker: its only async API, ``call_async`` (needs tornado)."""

    key = "pybreaker"
    dist = "pybreaker"
    api = "await breaker.call_async(f)"
    note = "async support goes through tornado coroutines"
    asyncio_only = True

    def unavailable(self) -> str | None:
        """Also unavailable when tornado is missing (no async support then)."""
        problem = super().unavailable()
        if problem is not None:
            return problem

        import pybreaker

        if not pybreaker.HAS_TORNADO_SUPPORT:
            return "tornado is not installed: pybreaker.call_async cannot run"

        return None

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """pybreaker's refusal error."""
        import pybreaker

        return (pybreaker.CircuitBreakerError,)

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """``CircuitBreaker(fail_max=..., reset_timeout=..., name=...)``."""
        import pybreaker

        return pybreaker.CircuitBreaker(
            fail_max=threshold, reset_timeout=reset, name=name
        )

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """``partial(breaker.call_async, fn)``."""
        return functools.partial(handle.call_async, fn)


class Aiobreaker(Decorating, Contender):
    """aiobreaker: a breaker instance used as a decorator."""

    key = "aiobreaker"
    dist = "aiobreaker"
    api = "@breaker async def f"
    note = "asyncio fork of pybreaker"

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """aiobreaker's refusal error."""
        import aiobreaker  # type: ignore[import-untyped]

        return (aiobreaker.CircuitBreakerError,)

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """``CircuitBreaker(fail_max=..., timeout_duration=timedelta(...))``."""
        import aiobreaker

        return aiobreaker.CircuitBreaker(
            fail_max=threshold, timeout_duration=timedelta(seconds=reset), name=name
        )


class _CircuitDecorator(Decorating, Contender):
    """The ``@circuit(...)`` API shared by circuitbreaker and its asyncio port."""

    module = ""

    def _module(self) -> Any:
        return importlib.import_module(self.module)

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """The library's refusal error."""
        return (self._module().CircuitBreakerError,)

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """``circuit(failure_threshold=..., recovery_timeout=..., name=...)``."""
        return self._module().circuit(
            failure_threshold=threshold, recovery_timeout=reset, name=name
        )


class Circuitbreaker(_CircuitDecorator):
    """circuitbreaker: ``@circuit(...)`` on an ``async def``."""

    key = "circuitbreaker"
    dist = "circuitbreaker"
    module = "circuitbreaker"
    api = "@circuit(failure_threshold=..., name=...) async def f"
    note = "decorating registers the breaker in a global monitor"

    async def drop(self, handle: Any) -> None:
        """Remove the breaker from the global monitor."""
        monitor = self._module().CircuitBreakerMonitor
        monitor.circuit_breakers.pop(handle.name, None)

    async def make_many(self, n: int) -> Any:
        """Named breakers, each registered in the global monitor."""
        module = self._module()
        breaker = module.CircuitBreaker
        register = module.CircuitBreakerMonitor.register
        for i in range(n):
            register(breaker(failure_threshold=5, recovery_timeout=30, name=f"svc-{i}"))

        return module.CircuitBreakerMonitor.circuit_breakers

    async def drop_many(self, kept: Any) -> None:
        """Empty the global monitor."""
        kept.clear()


class Aiocircuitbreaker(_CircuitDecorator):
    """aiocircuitbreaker: ``@circuit(...)`` on an ``async def``."""

    key = "aiocircuitbreaker"
    dist = "aiocircuitbreaker"
    module = "aiocircuitbreaker"
    api = "@circuit(failure_threshold=..., name=...) async def f"
    note = "asyncio port of circuitbreaker"


class Purgatory(Contender):
    """purgatory: ``@factory(name)`` on an ``async def`` (its documented style)."""

    key = "purgatory"
    dist = "purgatory"
    api = "@factory(name) async def f"
    note = "looks the breaker up in its unit of work on every call"

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """purgatory raises its open-state object, an exception."""
        from purgatory.domain.model import OpenedState

        return (OpenedState,)

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """A factory with these defaults, and the circuit name."""
        from purgatory import AsyncCircuitBreakerFactory

        factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=reset
        )
        return _PurgatoryHandle(factory, name)

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """Decorate ``fn`` with ``factory(name)``."""
        decorated: Guarded = handle.factory(handle.name)(fn)
        return decorated

    async def make_many(self, n: int) -> Any:
        """One factory; ``await factory.get_breaker(name)`` registers each name."""
        from purgatory import AsyncCircuitBreakerFactory

        factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
        get_breaker = factory.get_breaker
        for i in range(n):
            await get_breaker(f"svc-{i}")

        return factory


class _PurgatoryHandle:
    __slots__ = ("breaker", "factory", "name")

    def __init__(self, factory: Any, name: str) -> None:
        self.factory = factory
        self.name = name
        self.breaker: Any = None


class PurgatoryHeld(InlineWith, Purgatory):
    """purgatory with its breaker object looked up once and held.

    Valid only for its in-memory store; this is purgatory's lower bound.
    """

    key = "purgatory-held"
    api = "brk = await factory.get_breaker(name) once; async with brk: await f()"
    note = "lower bound: breaker looked up once, not as documented"
    documented = False
    style = "with"
    scenarios = STYLE_SCENARIOS

    async def _held(self, handle: _PurgatoryHandle) -> Any:
        if handle.breaker is None:
            handle.breaker = await handle.factory.get_breaker(handle.name)

        return handle.breaker

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """A factory plus the breaker object, looked up once now."""
        handle = await super().make(name, threshold, reset)
        await self._held(handle)
        return handle

    def context_manager(self, handle: Any) -> Any:
        """The breaker object looked up once and held."""
        return handle.breaker


class Pyresilience(Contender):
    """pyresilience: ``@resilient(circuit_breaker=CircuitBreakerConfig(...))``.

    Each decorated function owns its breaker, so one handle decorates a single
    dispatcher whose target is switched by :meth:`bind`; timed closed-state
    loops decorate ``f`` directly so no extra layer is measured.
    """

    key = "pyresilience"
    dist = "pyresilience"
    api = "@resilient(circuit_breaker=CircuitBreakerConfig(...)) async def f"
    note = "one breaker per decorated function"

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """pyresilience's refusal error."""
        import pyresilience

        return (pyresilience.CircuitOpenError,)

    def _decorator(self, threshold: int, reset: float) -> Callable[[Guarded], Guarded]:
        import pyresilience

        config = pyresilience.CircuitBreakerConfig(
            failure_threshold=threshold, recovery_timeout=float(reset)
        )
        decorator: Callable[[Guarded], Guarded] = pyresilience.resilient(
            circuit_breaker=config
        )
        return decorator

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """A decorated dispatcher sharing one breaker across :meth:`bind` calls."""
        handle = _Dispatch(self._decorator(threshold, reset))
        return handle

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """Point the dispatcher at ``fn``; return the decorated dispatcher."""
        handle.target = fn
        entry: Guarded = handle.entry
        return entry

    async def trip(self, handle: Any, threshold: int) -> None:
        """Trip through the shared dispatcher and remember it is tripped."""
        handle.tripped = True
        await super().trip(handle, threshold)

    def timed_callable(self, handle: Any, fn: Guarded) -> Guarded:
        """``fn`` decorated directly (the documented shape); refusals go
        through the tripped dispatcher."""
        if handle.tripped:
            return self.bind(handle, fn)

        direct: Guarded = handle.decorator(fn)
        return direct

    async def make_many(self, n: int) -> Any:
        """``n`` decorated functions, each with its own breaker."""
        decorate = self._decorator(5, 30.0)
        return {f"svc-{i}": decorate(_work.succeed) for i in range(n)}


class _Dispatch:
    __slots__ = ("decorator", "entry", "target", "tripped")

    def __init__(self, decorator: Callable[[Guarded], Guarded]) -> None:
        self.decorator = decorator
        self.target: Guarded = _work.succeed
        self.tripped = False

        async def dispatch() -> Any:
            return await self.target()

        self.entry = decorator(dispatch)


# ---------------------------------------------------------------------------
# brama_async
# ---------------------------------------------------------------------------


class Brama(Contender):
    """brama_async: ``breaker = await brama.register(name)``; ``breaker.call(f)``.

    ``registry()`` builds a fresh registry with the given settings; a contender
    for another store only overrides :meth:`registry_options`.
    """

    key = "brama_async"
    kind = "ours"
    dist = "brama-async"
    api = "await breaker.call(f)"
    note = "handle from await brama.register(name)"
    scenarios = BREAKER_SCENARIOS | {"open_many", "expiry", "sweep"}

    _stack: contextlib.AsyncExitStack
    _brama: Any
    _names: itertools.count[int]

    def module_name(self) -> str:
        """The import package is ``brama_async``."""
        return "brama_async"

    def registry_options(self) -> dict[str, Any]:
        """Extra ``Brama(...)`` options for this contender (e.g. a store)."""
        return {}

    @contextlib.asynccontextmanager
    async def registry(self, **settings: Any) -> AsyncIterator[Any]:
        """Enter a fresh ``Brama`` with ``settings`` and yield it."""
        import brama_async

        options = {**self.registry_options(), **settings}
        async with brama_async.Brama(**options) as brama:
            yield brama

    async def start(self) -> None:
        """Enter one long-lived registry for the per-breaker scenarios."""
        self._names = itertools.count()
        self._stack = contextlib.AsyncExitStack()
        self._brama = await self._stack.enter_async_context(
            self.registry(cleanup_interval=86_400.0, inactive_threshold=86_400.0)
        )

    async def stop(self) -> None:
        """Leave the long-lived registry."""
        await self._stack.aclose()

    def open_errors(self) -> tuple[type[BaseException], ...]:
        """``CircuitOpenError``."""
        import brama_async

        return (brama_async.CircuitOpenError,)

    async def make(self, name: str, threshold: int, reset: float) -> Any:
        """``await brama.register(name, max_attempts=..., expiry=...)``."""
        unique = f"{name}-{next(self._names)}"
        return await self._brama.register(unique, max_attempts=threshold, expiry=reset)

    def bind(self, handle: Any, fn: Guarded) -> Guarded:
        """``partial(breaker.call, fn)``."""
        return functools.partial(handle.call, fn)

    async def drop(self, handle: Any) -> None:
        """Unregister the connection."""
        await self._brama.unregister(handle.identifier, scope=handle.scope)

    async def to_half_open(self, handle: Any, reset: float) -> None:
        """``await breaker.reset_expiry()``: half-open now, no waiting."""
        await handle.reset_expiry()

    async def make_many(self, n: int) -> Any:
        """A fresh registry with ``n`` registered connections."""
        stack = contextlib.AsyncExitStack()
        brama = await stack.enter_async_context(
            self.registry(cleanup_interval=86_400.0)
        )
        register = brama.register
        for i in range(n):
            await register(f"svc-{i}")

        return stack

    async def drop_many(self, kept: Any) -> None:
        """Leave the registry."""
        await kept.aclose()


class BramaWith(InlineWith, Brama):
    """brama_async as an async context manager."""

    key = "brama_async-with"
    api = "async with breaker: await f()"
    note = "same handle"
    style = "with"
    scenarios = STYLE_SCENARIOS


class BramaDecorator(Decorating, Brama):
    """brama_async's handle used as a decorator."""

    key = "brama_async-deco"
    api = "@breaker async def f"
    note = "same handle"
    style = "deco"
    scenarios = STYLE_SCENARIOS


CONTENDERS: dict[str, type[Contender]] = {
    c.key: c
    for c in (
        BareFloor,
        RaiseFloor,
        Minimal,
        MinimalWith,
        MinimalDecorator,
        Pybreaker,
        Aiobreaker,
        Circuitbreaker,
        Aiocircuitbreaker,
        Purgatory,
        PurgatoryHeld,
        Pyresilience,
        Brama,
        BramaWith,
        BramaDecorator,
    )
}

# Contenders every run keeps, because the ratios are taken against them.
FLOORS = ("bare", "raise", "minimal", "minimal-with", "minimal-deco")

# The minimal breaker in each call style, for "x minimal" ratios.
MINIMAL_BY_STYLE = {"call": "minimal", "with": "minimal-with", "deco": "minimal-deco"}
