"""The Redis side of ``RedisStore``: client, scripts, pub/sub and reconnection.

Only this module (and ``_redis``) imports redis, and only when a
``RedisStore`` is entered.  Every Redis call is bounded by the store's
timeout; a call that fails, times out or loses its reply is never replayed:
the link goes *down*, the caller takes the degraded path, and a background
task reconnects with backoff and jitter, resubscribes and asks the store to
reconcile.  While down, calls do not wait at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._redis_lua import SCRIPTS, events_channel

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

if TYPE_CHECKING:
    pass

__all__ = ["Link", "Reply"]

logger = logging.getLogger("brama_async")

Reply = dict[str, Any]
"""A decoded script reply (see ``_redis_lua.view``)."""

MessageHandler = Callable[[Reply], None]

ReconnectHandler = Callable[[], Awaitable[None]]

MAX_PENDING_DELETES = 1_000_000

_BACKOFF_FIRST = 0.05

_BACKOFF_CAP = 0.5


class Link:
    """One process's connection to Redis for one ``RedisStore``.

    ``script()`` runs a named script and returns its decoded reply, or
    ``None`` when Redis could not answer in time (the caller then decides on
    local state).  ``supervise()`` is the background task: it keeps the
    pub/sub subscription, hands every message from another process to
    ``on_message``, checks liveness every ``health_interval`` seconds, and
    after an outage reconnects and awaits ``on_reconnect``.
    """

    def __init__(
        self,
        target: Any,
        *,
        prefix: str,
        timeout: float,
        cluster: bool,
        health_interval: float,
        max_connections: int = 32,
        degraded_mode: str = "circuits run on local state",
    ) -> None:
        self.target = target
        self.prefix = prefix
        self.degraded_mode = degraded_mode
        self.timeout = timeout
        self.cluster = cluster
        self.health_interval = health_interval
        self.max_connections = max_connections
        self.channel = events_channel(prefix)
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.up = False
        self.synced = False
        self.outages = 0
        self.degraded_logged = False
        self.client: Any = None
        self.owns_client = False
        self.on_message: MessageHandler | None = None
        self.on_reconnect: ReconnectHandler | None = None
        self.on_availability: Callable[[], None] | None = None
        self._pubsub: Any = None
        self._shas: dict[str, str] = {}
        self._deletes: deque[list[str]] = deque(maxlen=MAX_PENDING_DELETES)
        self._deletes_ready = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._group: TaskGroup | None = None
        self._done = anyio.Event()
        self._inflight: set[asyncio.Future[Any]] = set()
        self._wake = anyio.Event()
        self._closing = False
        self._errors: tuple[type[BaseException], ...] = (OSError,)
        self._noscript: type[BaseException] = OSError

    def open_client(self) -> None:
        """Create the client (no I/O yet); commands are never retried by redis-py."""
        from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import NoScriptError, RedisError

        self._errors = (RedisError, OSError, TimeoutError)
        self._noscript = NoScriptError
        no_retry = Retry(NoBackoff(), 0)
        if isinstance(self.target, str):
            kwargs: dict[str, Any] = {
                "socket_timeout": self.timeout,
                "socket_connect_timeout": self.timeout,
                "retry": no_retry,
            }
            if self.cluster:
                self.client = RedisCluster.from_url(self.target, **kwargs)
            else:
                pool = BlockingConnectionPool.from_url(
                    self.target,
                    max_connections=self.max_connections,
                    timeout=self.timeout,
                    **kwargs,
                )
                self.client = Redis(connection_pool=pool)
            self.owns_client = True
        else:
            self.client = self.target
            self.cluster = isinstance(self.target, RedisCluster)

        if self.cluster and not hasattr(self.client, "pubsub"):
            raise RuntimeError(
                "RedisStore on Redis Cluster needs redis-py 8 or later "
                "(asyncio cluster pub/sub)"
            )

    async def script(
        self,
        name: str,
        keys: Sequence[str],
        args: Sequence[object],
        *,
        live: bool = True,
    ) -> Reply | None:
        """Run script ``name``; ``None`` if Redis is down, slow or lost the reply.

        A ``NOSCRIPT`` answer (script cache flushed, server restarted) means the
        script did not run, so it is loaded and run once more.  Any other error
        or a timeout marks the link down without a retry: the script may have
        run, and running it again could count twice.  Cancellation of the
        caller propagates; redis-py drops the connection that was interrupted.
        """
        if not self.up or (live and not self.synced):
            return None

        outages = self.outages
        try:
            raw = await self._bounded(self._evalsha(name, keys, args), self.timeout)
        except self._errors as exc:
            self.mark_down(exc)
            return None

        if self.outages != outages:
            # The link went down while this script was on its way: decisions
            # made locally since then must not be overwritten by its reply.
            # The caller takes the degraded path; reconciliation merges.
            return None

        if isinstance(raw, bytes):
            raw = raw.decode()

        reply: Reply = json.loads(raw)
        return reply

    async def _bounded(self, coro: Coroutine[Any, Any, Any], limit: float) -> Any:
        """Await ``coro`` in its own asyncio task, at most ``limit`` seconds.

        redis-py cleans up a command it was interrupted in with awaits of its
        own; running it in a separate task means the caller's cancellation
        (an anyio cancel scope cancels every await until it exits) reaches it
        once, asyncio-style, and its cleanup completes: no socket is left
        half-used.  Raises ``TimeoutError`` past the limit (the task is
        cancelled and finishes on its own); cancellation of the caller
        cancels the task and propagates.
        """
        task = asyncio.ensure_future(coro)
        self._inflight.add(task)
        task.add_done_callback(_forget_task(self._inflight))
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except BaseException:
            task.cancel()
            raise

        if not done:
            task.cancel()
            raise TimeoutError

        return task.result()

    async def _evalsha(
        self, name: str, keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        sha = self._shas.get(name)
        if sha is not None:
            try:
                return await self.client.evalsha(sha, len(keys), *keys, *args)
            except self._noscript:
                pass

        sha = await self.client.script_load(SCRIPTS[name])
        if isinstance(sha, bytes):
            sha = sha.decode()

        self._shas[name] = sha
        return await self.client.evalsha(sha, len(keys), *keys, *args)

    def delete_later(self, keys: list[str]) -> None:
        """Queue the keys of a removed connection for deletion (never waits).

        One background task deletes them in pipelined batches while the link
        is up.  The queue is bounded: past ``MAX_PENDING_DELETES`` the oldest
        entries are dropped, and their keys simply expire by their TTL.
        """
        self._deletes.append(keys)
        self._deletes_ready.set()

    async def run_deletes(self) -> None:
        """Delete queued keys forever, in batches of 100, while the link is up."""
        while True:
            await self._deletes_ready.wait()
            self._deletes_ready = anyio.Event()
            while self._deletes and self.up:
                batch = [
                    self._deletes.popleft() for _ in range(min(100, len(self._deletes)))
                ]
                try:
                    pipe = self.client.pipeline(transaction=False)
                    for keys in batch:
                        pipe.delete(*keys)
                    await self._bounded(pipe.execute(), self.timeout * 4)
                except self._errors as exc:
                    self._deletes.extendleft(reversed(batch))
                    self.mark_down(exc)

    def _resume_deletes(self) -> None:
        if self._deletes:
            self._deletes_ready.set()

    def mark_down(self, exc: BaseException | None) -> None:
        """Note that Redis is unavailable; log once and wake the supervisor."""
        self.synced = False
        if self.up:
            self.up = False
            self.outages += 1
            self._wake.set()
            if self.on_availability is not None:
                self.on_availability()

        if not self.degraded_logged and not self._closing:
            self.degraded_logged = True
            logger.warning(
                "Redis store unavailable (%s); %s until it is back",
                _describe(exc),
                self.degraded_mode,
                extra={"brama_async.store": "redis", "brama_async.prefix": self.prefix},
            )

    async def run(self, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the link's background work (supervisor, deletions, releases).

        Returns once ``aclose()`` cancelled it, or when cancelled from outside;
        nothing of the link outlives it.
        """
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with anyio.create_task_group() as group:
                    await group.start(self.supervise)
                    group.start_soon(self.run_deletes)
                    self._group = group
                    task_status.started()
        finally:
            self._group = None
            self._done.set()

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``fn()`` in the link's task group; dropped once the link closes."""
        if self._group is not None and not self._closing:
            self._group.start_soon(fn)

    async def supervise(self, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the link up until cancelled; see the class docstring.

        The first connection attempt happens before ``task_status.started()``
        so the registry starts on a known footing: up, or down and logged
        once.  Cancellation (the registry closing) ends it; the connections
        are closed by ``aclose()``.
        """
        self.synced = await self._connect()
        task_status.started()
        delay = _BACKOFF_FIRST
        while True:
            if not self.up:
                await anyio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(_BACKOFF_CAP, delay * 2)
                if not await self._connect():
                    continue

                delay = _BACKOFF_FIRST
                if self.on_reconnect is not None:
                    await self.on_reconnect()

                self.synced = self.up
                if self.up and self.degraded_logged:
                    self.degraded_logged = False
                    logger.info(
                        "Redis store available again; circuits reconciled",
                        extra={
                            "brama_async.store": "redis",
                            "brama_async.prefix": self.prefix,
                        },
                    )

                continue

            await self._listen()

    async def _connect(self) -> bool:
        await self._close_pubsub()
        try:
            await self._bounded(self.client.ping(), self.timeout * 4)
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            self._pubsub = pubsub
            await self._bounded(pubsub.subscribe(self.channel), self.timeout * 4)
        except self._errors as exc:
            self.mark_down(exc)
            return False

        self._wake = anyio.Event()
        self.up = True
        if self.on_availability is not None:
            self.on_availability()
        self._resume_deletes()
        return True

    async def _listen(self) -> None:
        pubsub = self._pubsub
        last_seen = anyio.current_time()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on, self._wake, scope)
                while True:
                    try:
                        wait = min(0.5, self.health_interval)
                        message = await self._bounded(
                            pubsub.get_message(
                                ignore_subscribe_messages=True, timeout=wait
                            ),
                            wait + self.timeout,
                        )
                    except self._errors as exc:
                        self.mark_down(exc)
                        break

                    now = anyio.current_time()
                    if message is not None:
                        last_seen = now
                        self._dispatch(message)
                        continue

                    if now - last_seen >= self.health_interval:
                        last_seen = now
                        if not await self._ping():
                            break

                scope.cancel()

    async def _ping(self) -> bool:
        try:
            await self._bounded(self.client.ping(), self.timeout)
        except self._errors as exc:
            self.mark_down(exc)
            return False

        return True

    def _dispatch(self, message: Any) -> None:
        if message.get("type") != "message":
            return

        data = message.get("data")
        if isinstance(data, bytes):
            data = data.decode()

        try:
            reply: Reply = json.loads(data)
        except (TypeError, ValueError):
            return

        if reply.get("o") == self.origin or self.on_message is None:
            return

        self.on_message(reply)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is None:
            return

        with contextlib.suppress(*self._errors):
            await self._bounded(pubsub.aclose(), self.timeout)

    async def aclose(self) -> None:
        """Stop the background work, then close pub/sub and the client.

        Bounded and shielded: it completes even when the registry is being
        cancelled.  Commands still running are cancelled and awaited first,
        so none of them can take a fresh connection after the pool closed.
        The client is closed only if this link created it.
        """
        self._closing = True
        self.up = False
        self.synced = False
        if self._scope is not None:
            self._scope.cancel()

        with anyio.CancelScope(shield=True):
            if self._scope is not None:
                with anyio.move_on_after(1.0):
                    await self._done.wait()

            await self._drain()
            await self._close_pubsub()
            if self.owns_client and self.client is not None:
                limit = max(self.timeout, 0.5)
                with contextlib.suppress(*self._errors):
                    await self._bounded(self.client.aclose(), limit)
                    if not self.cluster:
                        pool = self.client.connection_pool
                        await self._bounded(pool.disconnect(), limit)

            await self._drain()

    async def _drain(self) -> None:
        pending = set(self._inflight)
        for task in pending:
            task.cancel()

        if pending:
            await asyncio.wait(pending, timeout=1.0)


def _forget_task(
    tasks: set[asyncio.Future[Any]],
) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return done


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "not reachable"

    if isinstance(exc, TimeoutError):
        return "timed out"

    return f"{type(exc).__name__}: {exc}"
