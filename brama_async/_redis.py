"""``RedisStore``: circuits shared by every process that uses one Redis.

Each process keeps its own records (the registry's circuits) as a mirror of
the shared state in Redis, so the closed-state success path never leaves the
process.  What must be decided once for all processes runs as one Lua script
(see ``_redis_lua``): counting a failure and tripping, taking and returning
half-open trial leases, the outcome of a trial, and the state a manual
control sets.  Every change is published; each process applies the messages
of the others to its mirror and emits the matching events with
``Event.origin`` set to ``"remote:<process>"``.

Times never cross hosts: scripts decide with the Redis server's clock and
reply with ages and remaining durations, which each process turns into its
own monotonic clock readings.

When Redis is unavailable the link goes down (one WARNING), calls decide on
local state (or fail open / fail closed), and a background task reconnects
with backoff and jitter, then reconciles: an open circuit wins, the latest
``opened_at`` wins, failure counts merge by maximum (one INFO when done).
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from . import _machine as machine
from ._errors import CircuitOpenError, ConfigurationError
from ._machine import CLOSED, GONE, HALF_OPEN, OPEN, STATES, Circuit, Transition
from ._redis_link import Link, Reply
from ._redis_lua import connection_keys, connection_tag
from ._store import Store
from ._types import EventType, ExpiryStrategy, State

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._registry import Brama

__all__ = ["RedisStore", "StoreUnavailableError"]

Policy = Literal["local", "fail_open", "fail_closed"]

_POLICIES: Final = ("local", "fail_open", "fail_closed")

_CODES: Final = {"closed": CLOSED, "open": OPEN, "half_open": HALF_OPEN}

_EVENTS: Final = {
    "reset": EventType.CIRCUIT_RESET,
    "closed": EventType.CIRCUIT_CLOSED,
    "opened": EventType.CIRCUIT_OPENED,
    "half_opened": EventType.CIRCUIT_HALF_OPENED,
}


class StoreUnavailableError(CircuitOpenError):
    """A call refused because Redis is unavailable and the policy is fail-closed.

    A :class:`~brama_async.CircuitOpenError`, so existing handlers catch it;
    ``state`` is ``open`` (the shared state is unknown) and ``remaining`` is
    ``None``.
    """

    def __str__(self) -> str:
        return (
            f"call to {self.identifier!r} refused: the Redis store is unavailable "
            "and on_unavailable='fail_closed'"
        )


_DEGRADED_MODES: Final = {
    "local": "circuits run on local state",
    "fail_open": "calls are let through (fail open)",
    "fail_closed": "calls are refused (fail closed)",
}


class _Shared:
    """What the store keeps per circuit: keys, last applied version, leases."""

    __slots__ = ("dirty", "generation", "keys", "leases", "tag", "version")

    def __init__(self, keys: list[str], tag: str) -> None:
        self.keys = keys
        self.tag = tag
        self.version: tuple[int, int] = (-1, -1)
        self.generation = -1
        self.dirty = False
        self.leases: dict[object, list[str]] = {}


class RedisStore(Store):
    """Share every connection's circuit through Redis.

    All processes whose registries use the same Redis and ``prefix`` share,
    per connection (scope and identifier): the failure count, one state, one
    ``opened_at``, the progressive backoff (``trips``) and the half-open
    trial slots, which are cluster-wide leases.

    Args:
        url_or_client: A ``redis://``/``rediss://``/``unix://`` URL (the
            store creates and closes its own client, with redis-py's command
            retries off), or a ``redis.asyncio.Redis`` / ``RedisCluster``
            client you own and close (configure it with
            ``retry=Retry(NoBackoff(), 0)`` so that a command whose reply was
            lost is never sent twice).  There is no default address.
        prefix: Namespace of every key and of the pub/sub channel; must not
            contain ``{`` or ``}``.
        on_unavailable: What calls do while Redis cannot be reached:
            ``"local"`` (default) decide on this process's own state,
            ``"fail_open"`` admit every call, ``"fail_closed"`` refuse every
            call with :class:`~brama_async.CircuitOpenError`.
        timeout: Upper bound in seconds of any Redis round trip on the call
            path; past it the call takes the degraded path.
        lease_ttl: Seconds a half-open trial lease lives.  A trial still
            running after it, or whose process died, no longer holds a slot,
            and its late result changes nothing.
        key_ttl: Seconds an idle connection's keys survive (an open circuit's
            keys also survive its open duration).  Each write refreshes it.
        cluster: With a URL, connect with ``RedisCluster`` (Redis Cluster).
        health_interval: Seconds of pub/sub silence after which the store
            pings Redis to notice a dead link.
        max_connections: With a URL, the size of the store's connection pool
            (one connection is the pub/sub subscription); a command waits for
            a free connection within ``timeout``.

    Raises:
        ConfigurationError: On an invalid argument.
        RuntimeError: At ``Brama`` entry when not running on asyncio (redis-py's
            asyncio client does not run on trio).
    """

    shared = True

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str = "brama",
        on_unavailable: Policy = "local",
        timeout: float | timedelta = 0.25,
        lease_ttl: float | timedelta = 10.0,
        key_ttl: float | timedelta = 86_400.0,
        cluster: bool = False,
        health_interval: float | timedelta = 2.0,
        max_connections: int = 32,
    ) -> None:
        if isinstance(url_or_client, str):
            if not url_or_client.strip():
                raise ConfigurationError("url_or_client must be a non-empty Redis URL")
        elif not hasattr(url_or_client, "evalsha"):
            raise ConfigurationError(
                "url_or_client must be a Redis URL or a redis.asyncio client, "
                f"got {url_or_client!r}"
            )

        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"prefix must be a non-empty str without '{{' or '}}', got {prefix!r}"
            )

        if on_unavailable not in _POLICIES:
            raise ConfigurationError(
                f"on_unavailable must be one of {', '.join(_POLICIES)}, "
                f"got {on_unavailable!r}"
            )

        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or not 2 <= max_connections <= 10_000
        ):
            raise ConfigurationError(
                "max_connections must be an int from 2 to 10000, "
                f"got {max_connections!r}"
            )

        if not isinstance(cluster, bool):
            raise ConfigurationError(f"cluster must be a bool, got {cluster!r}")

        self.prefix = prefix
        self.on_unavailable: Policy = on_unavailable
        self._local_policy = on_unavailable == "local"
        self.timeout = _seconds("timeout", timeout, 60.0)
        self.lease_ttl = _seconds("lease_ttl", lease_ttl, 86_400.0)
        self.key_ttl = _seconds("key_ttl", key_ttl, 1e8)
        self.health_interval = _seconds("health_interval", health_interval, 3600.0)
        self._link = Link(
            url_or_client,
            prefix=prefix,
            timeout=self.timeout,
            cluster=cluster,
            health_interval=self.health_interval,
            max_connections=max_connections,
            degraded_mode=_DEGRADED_MODES[on_unavailable],
        )
        self._registry: Brama | None = None
        self._by_tag: dict[str, Circuit] = {}
        self._tokens = 0
        self._started = False

    def __repr__(self) -> str:
        return (
            f"RedisStore(prefix={self.prefix!r}, "
            f"on_unavailable={self.on_unavailable!r})"
        )

    @property
    def available(self) -> bool:
        """Whether Redis is reachable and this process has reconciled with it."""
        return self._link.synced

    @property
    def origin(self) -> str:
        """This process's name in other processes' ``Event.origin``."""
        return self._link.origin

    # -- lifecycle -----------------------------------------------------------

    async def start(self, registry: Brama, task_group: TaskGroup) -> None:
        """Connect (bounded by the timeout), subscribe and start the supervisor.

        Redis being down is not an error: it is logged once and the registry
        runs on local state until the background task reconnects.

        Raises:
            RuntimeError: If the running event loop is not asyncio's, or the
                store is already in use by another registry.
        """
        try:
            asyncio.get_running_loop()
            if asyncio.current_task() is None:
                raise RuntimeError
        except RuntimeError:
            raise RuntimeError(
                "RedisStore needs asyncio (redis-py's asyncio client); it cannot "
                "run on trio. Use MemoryStore on trio."
            ) from None

        if self._started:
            raise RuntimeError("a RedisStore serves one Brama registry; create another")

        self._started = True
        self._registry = registry
        link = self._link
        link.open_client()
        link.on_message = self._on_message
        link.on_reconnect = self._reconcile_all
        link.on_availability = self._gate_all
        await task_group.start(link.run, name="brama_async redis link")

    async def stop(self) -> None:
        """Close pub/sub and the client this store created (bounded, shielded).

        In-flight Redis calls are cancelled with the registry's task group;
        nothing is written on the way out.
        """
        await self._link.aclose()

    # -- hooks called by the registry and the breaker ------------------------

    async def attach(self, circuit: Circuit) -> None:
        """Give a new registration the shared state, if Redis has one."""
        keys = connection_keys(self.prefix, circuit.scope, circuit.identifier)
        data = _Shared(keys, connection_tag(circuit.scope, circuit.identifier))
        circuit.store_data = data
        self._by_tag[data.tag] = circuit
        self._gate(circuit)
        reply = await self._script(
            circuit, "sync", *self._local_view(circuit), "restore", live=False
        )
        if reply is None:
            return

        self._apply(circuit, reply)

    def _gate(self, circuit: Circuit) -> None:
        """Tell the circuit whether closed calls must ask the store.

        They must only while Redis is unavailable under a fail-open or
        fail-closed policy; otherwise a closed call is admitted exactly as
        with the in-memory store, without entering the store at all.
        """
        circuit.gated = not (self._link.up or self._local_policy)

    def _gate_all(self) -> None:
        registry = self._registry
        if registry is None or self._local_policy:
            return

        for circuit in registry._circuits.values():
            self._gate(circuit)

    def detach(self, circuit: Circuit, *, delete: bool) -> None:
        """Forget a removed connection; delete its keys (in the background)
        only when it was unregistered, not when this process's cleanup sweep
        removed it: other processes may still rely on that state, and the
        keys expire on their own."""
        data = circuit.store_data
        if not isinstance(data, _Shared):
            return

        if self._by_tag.get(data.tag) is circuit:
            del self._by_tag[data.tag]

        if delete:
            self._link.delete_later(data.keys)

    async def admit(self, circuit: Circuit) -> tuple[int, bool]:
        """Admit a call or raise ``CircuitOpenError``; the shared twin of ``_admit``.

        Closed circuits are admitted at once, without I/O.  A half-open trial
        also needs one of the cluster-wide leases (one script); a cancelled
        admission gives back the local slot and drops the lease it may have
        been granted.
        """
        link = self._link
        if not link.up and self.on_unavailable != "local":
            return self._admit_degraded(circuit)

        registry = self._registry
        assert registry is not None
        if circuit.code == CLOSED:
            return circuit.generation, False

        generation, trial = registry._admit(circuit)
        if not trial or not link.up:
            return generation, trial

        self._tokens += 1
        token = f"{link.origin}:{self._tokens}"
        try:
            reply = await self._script(
                circuit, "acquire", token, circuit.options.half_open_max_calls
            )
        except BaseException:
            machine.release_trial(circuit, generation)
            self._release_token(circuit, token)
            raise

        if reply is None:
            return generation, trial

        machine.release_trial(circuit, generation)
        self._apply(circuit, reply)
        status = reply["s"]
        if status == "granted" and circuit.code == HALF_OPEN:
            circuit.trials += 1
            self._data(circuit).leases.setdefault(_task_key(), []).append(token)
            return circuit.generation, True

        if status == "granted":
            self._release_token(circuit, token)

        if circuit.code == CLOSED:
            return circuit.generation, False

        remaining: float | None = 0.0
        if circuit.code == OPEN:
            remaining = circuit.remaining(registry._clock())

        raise CircuitOpenError(
            circuit.identifier,
            circuit.scope,
            circuit.state,
            remaining,
            circuit.last_failure,
        )

    def _admit_degraded(self, circuit: Circuit) -> tuple[int, bool]:
        registry = self._registry
        assert registry is not None
        registry._alive(circuit)
        if self.on_unavailable == "fail_open":
            return circuit.generation, False

        raise StoreUnavailableError(
            circuit.identifier, circuit.scope, State.OPEN, None, circuit.last_failure
        )

    async def settle_error(
        self, circuit: Circuit, generation: int, trial: bool, error: Exception
    ) -> None:
        """Record a call's exception: a failure runs one script, else a success."""
        registry = self._registry
        assert registry is not None
        if not registry._is_failure(circuit, error):
            await self.settle_success(circuit, generation, trial)
            return

        await self.record_failure(circuit, generation, trial, error, None)

    async def record_failure(
        self,
        circuit: Circuit,
        generation: int,
        trial: bool,
        error: Exception | None,
        reason: str | None,
    ) -> None:
        """Count one failure cluster-wide (one script), or locally when degraded.

        A stale outcome (admitted before the last transition) changes nothing
        and sends nothing, except that a trial's lease is returned.
        """
        registry = self._registry
        assert registry is not None
        token = self._pop_token(circuit) if trial else None
        why = reason if reason is not None else (repr(error) if error else None)
        if generation != circuit.generation or circuit.code == GONE:
            self._local_failure(circuit, generation, trial, error, reason)
            if token is not None:
                self._release_token(circuit, token)
            return

        if trial and token is None:
            self._local_failure(circuit, generation, trial, error, reason)
            return

        kind = "trial_fail" if token is not None else "fail"
        reply = await self._outcome(
            circuit, generation, trial, token, kind, token or "", why or ""
        )
        if reply is None or circuit.code == GONE:
            self._local_failure(circuit, generation, trial, error, reason)
            return

        if trial:
            machine.release_trial(circuit, generation)

        now = registry._clock()
        circuit.last_failure_at = now
        circuit.last_failure_reason = reason
        if error is not None:
            circuit.last_failure = error

        if reply["s"] == "stale":
            self._apply(circuit, reply)
            return

        if registry._hub.wants(EventType.FAILURE):
            registry._emit(EventType.FAILURE, circuit, reason=why)

        self._apply(circuit, reply, reason=why)

    def _local_failure(
        self,
        circuit: Circuit,
        generation: int,
        trial: bool,
        error: Exception | None,
        reason: str | None,
    ) -> None:
        """Count a failure on local state only (degraded path or stale outcome)."""
        registry = self._registry
        assert registry is not None
        if trial:
            machine.release_trial(circuit, generation)

        step = machine.record_failure(
            circuit, generation, registry._clock(), error, reason
        )
        if step is machine.IGNORED:
            return

        self._data(circuit).dirty = True
        why = reason if reason is not None else repr(error)
        if registry._hub.wants(EventType.FAILURE):
            registry._emit(EventType.FAILURE, circuit, reason=why)
        if isinstance(step, Transition):
            registry._announce(circuit, step, reason=why)

    async def settle_success(
        self, circuit: Circuit, generation: int, trial: bool
    ) -> None:
        """Record a success: resets the shared count or closes after a trial."""
        registry = self._registry
        assert registry is not None
        token = self._pop_token(circuit) if trial else None
        stale = generation != circuit.generation or circuit.code == GONE
        local_only = (trial and token is None) or (
            not trial and (circuit.code != CLOSED or circuit.failure_count == 0)
        )
        if stale or local_only:
            before = circuit.code
            registry._settle_success(circuit, generation, trial)
            if token is not None:
                self._release_token(circuit, token)
            if before == HALF_OPEN and circuit.code == CLOSED:
                if trial:
                    self._data(circuit).dirty = True
                else:
                    await self.publish(circuit, "closed", None)
            return

        kind = "trial_ok" if token is not None else "ok"
        reply = await self._outcome(
            circuit, generation, trial, token, kind, token or "", ""
        )
        if reply is None or circuit.code == GONE:
            registry._settle_success(circuit, generation, trial)
            if isinstance(circuit.store_data, _Shared):
                circuit.store_data.dirty = True
            return

        if trial:
            machine.release_trial(circuit, generation)

        circuit.last_success_at = registry._clock()
        if reply["s"] != "stale" and registry._hub.wants(EventType.SUCCESS):
            registry._emit(EventType.SUCCESS, circuit)

        self._apply(circuit, reply)

    def settle_interrupted(self, circuit: Circuit, trial: bool) -> None:
        """A cancelled or interrupted trial returns its lease at once (background)."""
        if trial:
            token = self._pop_token(circuit)
            if token is not None:
                self._release_token(circuit, token)

    async def publish(self, circuit: Circuit, event: str, reason: str | None) -> None:
        """Write the state a manual control just set, and announce it (one script).

        ``event`` is ``opened``, ``closed``, ``reset``, ``half_opened`` or
        ``expiry``.  When Redis cannot be reached, the change stays local and
        is reconciled later.
        """
        if circuit.code == GONE:
            return

        registry = self._registry
        assert registry is not None
        state, failures, trips, age, duration = self._local_view(circuit)
        reply = await self._script(
            circuit, "put", event, state, failures, trips, age, duration, reason or ""
        )
        data = self._data(circuit)
        if reply is None:
            data.dirty = True
            return

        data.version = (int(reply["ep"]), int(reply["sq"]))
        data.generation = int(reply["g"])

    # -- applying shared state -------------------------------------------------

    def _on_message(self, message: Reply) -> None:
        registry = self._registry
        if registry is None or registry.closed:
            return

        circuit = self._by_tag.get(str(message.get("k", "")))
        if circuit is not None:
            self._apply(circuit, message)

    def _apply(self, circuit: Circuit, view: Reply, reason: str | None = None) -> None:
        """Make the local record agree with a shared view; emit what changed.

        Views older than the last one applied (by epoch and sequence number)
        are dropped; a view of missing state resets the circuit to a fresh
        closed one.  An open period already known (same shared generation)
        keeps its local deadline, so replies never reschedule it by the
        round trip's jitter.
        """
        registry = self._registry
        assert registry is not None
        data = circuit.store_data
        if not isinstance(data, _Shared) or circuit.code == GONE:
            return

        version = (int(view["ep"]), int(view["sq"]))
        if not view.get("m") and version < data.version:
            return

        data.version = version
        origin = self._origin_of(view)
        now = registry._clock()
        shared_generation = int(view["g"])
        same_period = shared_generation == data.generation
        data.generation = shared_generation
        code = _CODES.get(str(view["st"]), CLOSED)
        duration_ms = int(view["du"])
        elapsed = code == OPEN and duration_ms >= 0 and int(view["rem"]) == 0
        if elapsed and circuit.code == HALF_OPEN and same_period:
            code = HALF_OPEN

        circuit.failure_count = int(view["fc"])
        circuit.trips = int(view["tr"])
        failure_age = int(view["lf"])
        if failure_age >= 0:
            circuit.last_failure_at = now - failure_age / 1000
            circuit.last_failure_reason = str(view["lr"]) or None

        new_period = code == OPEN and (circuit.code != OPEN or not same_period)
        if new_period:
            circuit.opened_at = now - int(view["age"]) / 1000
            circuit.expiry_enabled = duration_ms >= 0
            if duration_ms >= 0:
                circuit.open_duration = duration_ms / 1000
                circuit.half_open_at = circuit.opened_at + circuit.open_duration
            else:
                circuit.half_open_at = None

            if circuit.code == OPEN:
                registry._expiries.forget(circuit)
                circuit.generation += 1
                if circuit.half_open_at is not None:
                    registry._schedule(circuit)
                return

        if code == circuit.code:
            return

        event = _EVENTS.get(str(view["s"]))
        if event is None or _state_of(event) != STATES[code]:
            event = _DEFAULT_EVENTS[code]

        previous = circuit.code
        circuit.code = code
        circuit.generation += 1
        circuit.trials = 0
        if code != OPEN:
            circuit.half_open_at = None
        if code == CLOSED:
            circuit.failure_count = 0

        if reason is None:
            reason = circuit.last_failure_reason if code == OPEN else None
        if origin is not None:
            reason = f"changed by {origin}" if reason is None else reason

        registry._announce(
            circuit, Transition(event, previous, code, reason), origin=origin
        )

    def _origin_of(self, view: Reply) -> str | None:
        writer = str(view.get("tw") or "")
        if not writer or writer == self._link.origin:
            return None

        return f"remote:{writer}"

    async def _reconcile_all(self) -> None:
        registry = self._registry
        if registry is None:
            return

        for circuit in list(registry._circuits.values()):
            if circuit.code == GONE or not self._link.up:
                continue

            data = self._data(circuit)
            mode = "push" if data.dirty else "restore"
            reply = await self._script(
                circuit, "sync", *self._local_view(circuit), mode, live=False
            )
            if reply is None:
                return

            data.dirty = False
            self._apply(circuit, reply)

    # -- helpers -----------------------------------------------------------------

    def _data(self, circuit: Circuit) -> _Shared:
        data = circuit.store_data
        assert isinstance(data, _Shared)
        return data

    def _local_view(self, circuit: Circuit) -> tuple[str, int, int, int, int]:
        registry = self._registry
        assert registry is not None
        state = circuit.state.value
        age = -1
        if circuit.code in (OPEN, HALF_OPEN) and circuit.opened_at is not None:
            age = max(0, round((registry._clock() - circuit.opened_at) * 1000))

        duration = round(circuit.open_duration * 1000) if circuit.expiry_enabled else -1
        return state, circuit.failure_count, circuit.trips, age, duration

    async def _script(
        self, circuit: Circuit, name: str, *extra: object, live: bool = True
    ) -> Reply | None:
        """Run a script for ``circuit``; ``None`` takes the degraded path.

        ``live`` scripts (the call path) wait until this process has
        reconciled after an outage, so a stale mirror never acts on Redis.
        """
        options = circuit.options
        data = self._data(circuit)
        strategy = options.expiry_strategy
        args: list[object] = [
            self._link.channel,
            self._link.origin,
            data.tag,
            _ms(self.key_ttl),
            options.max_attempts,
            "progressive" if strategy is ExpiryStrategy.PROGRESSIVE else "fixed",
            _ms(options.expiry),
            _ms(options.effective_initial_expiry),
            _ms(options.effective_max_expiry),
            repr(float(options.backoff_factor)),
            _ms(self.lease_ttl),
            *extra,
        ]
        return await self._link.script(name, data.keys, args, live=live)

    async def _outcome(
        self,
        circuit: Circuit,
        generation: int,
        trial: bool,
        token: str | None,
        *extra: object,
    ) -> Reply | None:
        """Run an outcome script; if the caller is cancelled meanwhile, free
        the local trial slot and the lease, and re-read the shared state in
        the background (the script may or may not have run)."""
        try:
            return await self._script(circuit, "outcome", *extra)
        except BaseException:
            if trial:
                machine.release_trial(circuit, generation)
            if token is not None:
                self._release_token(circuit, token)
            self._refresh_later(circuit)
            raise

    def _refresh_later(self, circuit: Circuit) -> None:
        """Re-read a connection's shared state in the background."""
        if not isinstance(circuit.store_data, _Shared):
            return

        async def refresh() -> None:
            view = self._local_view(circuit)
            reply = await self._script(circuit, "sync", *view, "restore", live=False)
            if reply is not None and circuit.code != GONE:
                self._apply(circuit, reply)

        self._link.spawn(refresh)

    def _pop_token(self, circuit: Circuit) -> str | None:
        data = circuit.store_data
        if not isinstance(data, _Shared):
            return None

        key = _task_key()
        stack = data.leases.get(key)
        if not stack:
            return None

        token = stack.pop()
        if not stack:
            del data.leases[key]

        return token

    def _release_token(self, circuit: Circuit, token: str) -> None:
        if not isinstance(circuit.store_data, _Shared):
            return

        async def release() -> None:
            await self._script(circuit, "outcome", "release", token, "")

        self._link.spawn(release)


_DEFAULT_EVENTS: Final = {
    CLOSED: EventType.CIRCUIT_CLOSED,
    OPEN: EventType.CIRCUIT_OPENED,
    HALF_OPEN: EventType.CIRCUIT_HALF_OPENED,
}


def _state_of(event: EventType) -> State:
    if event is EventType.CIRCUIT_OPENED:
        return State.OPEN

    if event is EventType.CIRCUIT_HALF_OPENED:
        return State.HALF_OPEN

    return State.CLOSED


def _task_key() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _seconds(option: str, value: object, limit: float) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()

    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= limit
    ):
        raise ConfigurationError(
            f"{option} must be a number of seconds (int, float or timedelta) "
            f"with 0 < {option} <= {limit:g}, got {value!r}"
        )

    return float(value)
