"""RedisStore against real redis-server processes, several registries per test.

Each ``Brama(store=RedisStore(...))`` is one "process" here; the scenarios
with real subprocesses are in test_redis_processes.py.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis
from redis_support import ChaosProxy, RedisClusterNodes, RedisServer, require_redis

from brama_async import (
    Brama,
    Breaker,
    CircuitOpenError,
    ConfigurationError,
    Event,
    RedisStore,
    RegistryClosedError,
)
from brama_async._redis_lua import connection_keys

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """A counted failure."""


async def boom(delay: float = 0.0) -> None:
    """Fail after ``delay`` seconds."""
    await anyio.sleep(delay)
    raise Boom("boom")


async def ok(delay: float = 0.0) -> str:
    """Succeed after ``delay`` seconds."""
    await anyio.sleep(delay)
    return "ok"


async def outcome(breaker: Breaker, fn: Any, *args: Any) -> str:
    """Run one call; name what happened."""
    try:
        await breaker.call(fn, *args)
    except Boom:
        return "boom"
    except CircuitOpenError:
        return "refused"

    return "ok"


async def until(predicate: Any, limit: float = 2.0) -> float:
    """Poll until ``predicate()`` is true (fail after ``limit`` s); return the wait."""
    started = time.monotonic()
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - polls state, not an event
            await anyio.sleep(0.002)

    return time.monotonic() - started


@pytest.fixture
def anyio_backend() -> str:
    """redis-py's asyncio client needs asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Collect garbage after each test, so a leaked socket fails its own test."""
    yield
    gc.collect()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    require_redis()
    srv = RedisServer().start()
    yield srv
    srv.stop()


@asynccontextmanager
async def registries(url: Any, count: int, **store: Any) -> AsyncIterator[list[Brama]]:
    """``count`` entered registries, each with its own RedisStore on ``url``."""
    store.setdefault("timeout", 0.25)
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(Brama(store=RedisStore(url, **store)))
            for _ in range(count)
        ]


async def register_all(
    brams: list[Brama], identifier: str = "svc", **options: Any
) -> list[Breaker]:
    """Register one connection in every registry."""
    return [await b.register(identifier, **options) for b in brams]


class Recorder:
    """Collects every event of one registry in a background task."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def types(self, origin_local: bool | None = None) -> list[str]:
        """Event type names, optionally only local or only remote ones."""
        return [
            e.type.value
            for e in self.events
            if origin_local is None or (e.origin is None) == origin_local
        ]

    async def run(
        self, brama: Brama, task_status: Any = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe, signal readiness, then record until cancelled."""
        async with brama.subscribe() as sub:
            task_status.started()
            async for event in sub:
                self.events.append(event)


async def test_store_validates_its_options() -> None:
    """Bad store options raise ConfigurationError naming the option."""
    for kwargs in (
        {"timeout": 0},
        {"timeout": float("nan")},
        {"lease_ttl": -1},
        {"key_ttl": True},
        {"on_unavailable": "maybe"},
        {"prefix": "a{b}"},
        {"prefix": ""},
    ):
        with pytest.raises(ConfigurationError):
            RedisStore("redis://127.0.0.1:1/0", **kwargs)

    with pytest.raises(ConfigurationError):
        RedisStore(None)


async def test_failures_split_across_registries_trip_one_circuit(
    server: RedisServer,
) -> None:
    """Failures of two registries add up; both see one open circuit, then recovery."""
    async with registries(server.url, 2) as brams:
        a, b = await register_all(brams, max_attempts=3, expiry=0.4)
        rec = Recorder()
        async with anyio.create_task_group() as tg:
            await tg.start(rec.run, brams[1])
            assert await outcome(a, boom) == "boom"
            assert await outcome(b, boom) == "boom"
            assert await outcome(a, boom) == "boom"
            await until(lambda: b.status().state == "open", 0.1)

            assert await outcome(b, ok) == "refused"
            assert a.status().opened_at is not None
            assert b.status().opened_at is not None
            assert (
                abs((a.status().opened_at - b.status().opened_at).total_seconds())
                < 0.05
            )  # type: ignore[operator]

            await anyio.sleep(0.45)
            assert await outcome(b, ok) == "ok"
            await until(lambda: a.status().state == "closed", 0.1)
            tg.cancel_scope.cancel()

    assert "circuit_opened" in rec.types(origin_local=False)
    assert rec.types(origin_local=False).count("circuit_opened") == 1
    assert all(e.origin.startswith("remote:") for e in rec.events if e.origin)


async def test_closed_success_sends_no_command(server: RedisServer) -> None:
    """Successes on a closed circuit with nothing to report send nothing to Redis."""
    async with registries(server.url, 2, health_interval=60) as brams:
        a, b = await register_all(brams)
        server.cli("config", "resetstat")
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for breaker in (a, b):
                for _ in range(20):
                    tg.start_soon(breaker.call, ok, 0.2)

        took = time.monotonic() - started
        stats = server.cli("info", "commandstats")

    assert took < 0.35
    assert "cmdstat_evalsha" not in stats
    assert "cmdstat_eval:" not in stats


async def test_missing_state_is_a_fresh_closed_circuit(server: RedisServer) -> None:
    """Two connections never collide; deleted shared state reads as fresh closed."""
    async with registries(server.url, 1) as (brama,):
        one = await brama.register("a:b", max_attempts=1, expiry=0.3)
        two = await brama.register("b", scope="a", max_attempts=1, expiry=0.3)
        assert await outcome(one, boom) == "boom"

        assert one.status().state == "open"
        assert two.status().state == "closed"

        server.cli("del", *connection_keys("brama", "a", "b"))
        assert await outcome(two, ok) == "ok"
        assert await outcome(two, boom) == "boom"
        assert two.status().state == "open"

        server.cli("del", *connection_keys("brama", None, "a:b"))
        await anyio.sleep(0.35)
        assert await outcome(one, ok) == "ok"
        assert one.status().state == "closed"


async def test_every_key_has_a_ttl_and_half_open_still_happens(
    server: RedisServer,
) -> None:
    """Keys always carry a TTL, even with reports cancelled; expiry still half-opens."""
    async with registries(server.url, 2) as brams:
        a, b = await register_all(brams, max_attempts=500, expiry=0.3)
        rec = Recorder()
        async with anyio.create_task_group() as tg:
            await tg.start(rec.run, brams[1])
            async with anyio.create_task_group() as calls:
                for i in range(200):
                    calls.start_soon(outcome, a, boom, i * 0.0003)
                await anyio.sleep(0.03)
                calls.cancel_scope.cancel()

            keys = server.cli("keys", "brama:*").split()
            assert keys
            for key in keys:
                assert int(server.cli("pttl", key)) > 0

            await brams[0].open_circuit("svc", reason="test")
            await until(lambda: b.status().state == "open", 0.2)
            for key in server.cli("keys", "brama:*").split():
                assert int(server.cli("pttl", key)) > 0

            await until(lambda: "circuit_half_opened" in rec.types(), 1.0)
            tg.cancel_scope.cancel()


async def test_removed_connections_leave_no_keys(server: RedisServer) -> None:
    """Unregistering 10,000 connections with stored state deletes all their keys."""
    seed = Redis.from_url(server.url)
    pipe = seed.pipeline(transaction=False)
    for i in range(10_000):
        state, leases = connection_keys("brama", None, f"c{i}")
        pipe.hset(
            state,
            mapping={
                "v": 1,
                "st": "closed",
                "fc": 1,
                "tr": 0,
                "oa": 0,
                "du": 60000,
                "g": 0,
                "lf": -1,
                "lr": "",
                "ep": 1,
                "sq": 1,
                "w": "seed",
            },
        )
        pipe.pexpire(state, 600_000)
        pipe.zadd(leases, {"t": 1})
        pipe.pexpire(leases, 600_000)
    await pipe.execute()
    await seed.aclose()

    async with registries(server.url, 1, timeout=2.0) as (brama,):
        for chunk in range(0, 10_000, 50):
            async with anyio.create_task_group() as tg:
                for i in range(chunk, chunk + 50):
                    tg.start_soon(brama.register, f"c{i}")

        assert brama.status("c9999").failure_count == 1
        assert int(server.cli("dbsize")) == 20_000

        for i in range(10_000):
            await brama.unregister(f"c{i}")

        await until(lambda: int(server.cli("dbsize")) == 0, 5.0)


async def test_script_flush_and_restart_reload_scripts(server: RedisServer) -> None:
    """After SCRIPT FLUSH 100 failures count exactly 100."""
    async with registries(server.url, 1) as (brama,):
        (a,) = await register_all([brama], max_attempts=1000)
        server.cli("script", "flush")
        for i in range(100):
            if i == 60:
                server.cli("script", "flush")
            await outcome(a, boom)

        assert a.status().failure_count == 100
        assert (
            server.cli("hget", connection_keys("brama", None, "svc")[0], "fc").strip()
            == "100"
        )


@pytest.mark.parametrize("decode", [False, True])
async def test_passed_clients_in_both_decode_modes(
    server: RedisServer, decode: bool
) -> None:
    """A client given by the user works the same with decode_responses on or off."""
    clients = [Redis.from_url(server.url, decode_responses=decode) for _ in range(2)]
    try:
        async with (
            registries(clients[0], 1) as (p1,),
            registries(clients[1], 1) as (p2,),
        ):
            a, b = await register_all([p1, p2], max_attempts=2, expiry=0.3)
            await outcome(a, boom)
            await outcome(b, boom)
            await until(lambda: a.status().state == "open", 0.2)

            assert a.status().failure_count == b.status().failure_count == 2
            assert await outcome(a, ok) == "refused"
    finally:
        for client in clients:
            await client.aclose()


async def test_lost_reply_takes_the_degraded_path_and_counts_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure whose reply is lost is not replayed; it counts once after recovery."""
    proxy = ChaosProxy(server.port).start()
    try:
        async with registries(proxy.url, 1, timeout=0.2) as (brama,):
            (a,) = await register_all([brama], max_attempts=10)
            await outcome(a, boom)
            proxy.set_mode("drop_replies")
            started = time.monotonic()
            assert await outcome(a, boom) == "boom"

            assert time.monotonic() - started < 0.4
            assert a.status().failure_count == 2
            assert (
                server.cli(
                    "hget", connection_keys("brama", None, "svc")[0], "fc"
                ).strip()
                == "2"
            )

            proxy.set_mode("pass")
            proxy.cut()
            await until(lambda: brama._store.available, 3.0)  # type: ignore[attr-defined]
            await outcome(a, boom)

            assert a.status().failure_count == 3
    finally:
        proxy.stop()


async def test_redis_killed_and_restarted(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls go on while Redis is down; after a restart the processes reconcile."""
    caplog.set_level(logging.INFO, logger="brama_async")
    async with registries(server.url, 2) as brams:
        a, b = await register_all(brams, max_attempts=3, expiry=5)
        seen: list[str] = []
        for _ in range(2):
            seen.append(await outcome(a, ok))

        server.kill()
        for _ in range(4):
            started = time.monotonic()
            seen.append(await outcome(a, boom))
            assert time.monotonic() - started < 0.4

        assert seen == ["ok", "ok", "boom", "boom", "boom", "refused"]
        assert a.status().state == "open"
        assert b.status().state == "closed"

        server.start()
        await until(lambda: b.status().state == "open", 3.0)
        assert a.status().state == "open"
        opened = [x.status().opened_at for x in (a, b)]
        assert abs((opened[0] - opened[1]).total_seconds()) < 0.1  # type: ignore[operator]

    degraded = [r for r in caplog.records if "unavailable" in r.getMessage()]
    recovered = [r for r in caplog.records if "available again" in r.getMessage()]
    assert len(degraded) == 2
    assert len(recovered) == 2


async def test_loop_never_stalls_while_redis_is_stopped(server: RedisServer) -> None:
    """SIGSTOP on Redis: 200 calls each bounded by the timeout; no loop stall."""
    async with registries(server.url, 1, timeout=0.1) as (brama,):
        (a,) = await register_all([brama], max_attempts=1000)
        lag = 0.0

        async def heartbeat() -> None:
            nonlocal lag
            while True:
                before = time.monotonic()
                await anyio.sleep(0.005)
                lag = max(lag, time.monotonic() - before - 0.005)

        server.pause()
        try:
            slowest = 0.0
            async with anyio.create_task_group() as tg:
                tg.start_soon(heartbeat)
                for _ in range(200):
                    started = time.monotonic()
                    await outcome(a, boom)
                    slowest = max(slowest, time.monotonic() - started)
                tg.cancel_scope.cancel()
        finally:
            server.resume()

        assert a.status().failure_count == 200

    assert slowest < 0.1 + 0.05
    assert lag < 0.02


async def test_store_down_at_start_logs_once_and_works_locally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starting with Redis unreachable logs one warning; circuits run locally."""
    require_redis()
    from redis_support import free_port

    caplog.set_level(logging.INFO, logger="brama_async")
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with registries(url, 1, timeout=0.1) as (brama,):
        (a,) = await register_all([brama], max_attempts=2, expiry=0.2)
        results = [await outcome(a, boom) for _ in range(3)]

        assert results == ["boom", "boom", "refused"]

    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


@pytest.mark.parametrize("policy", ["fail_open", "fail_closed"])
async def test_unavailable_policies(server: RedisServer, policy: str) -> None:
    """fail_closed refuses unknown state; fail_open admits every call."""
    proxy = ChaosProxy(server.port).start()
    try:
        async with registries(proxy.url, 1, on_unavailable=policy) as (brama,):
            (a,) = await register_all([brama], max_attempts=1, expiry=10)
            await until(lambda: brama._store.available, 2.0)  # type: ignore[attr-defined]
            assert await outcome(a, ok) == "ok"
            proxy.set_mode("refuse")
            proxy.cut()
            assert await outcome(a, boom) in ("boom", "refused")
            await until(lambda: not brama._store.available, 1.0)  # type: ignore[attr-defined]
            results = [await outcome(a, ok) for _ in range(3)]

            expected = "ok" if policy == "fail_open" else "refused"
            assert results == [expected] * 3
    finally:
        proxy.stop()


async def test_leaving_the_block_closes_everything(server: RedisServer) -> None:
    """1,000 connections, 500 open, subscribers, calls in flight: exits fast, clean."""
    started_exit = 0.0
    async with registries(server.url, 2, timeout=2.0) as brams:
        handles = [
            await brams[0].register(f"c{i}", max_attempts=1, expiry=30)
            for i in range(1000)
        ]
        for handle in handles[:500]:
            await outcome(handle, boom)

        sub = brams[1].subscribe()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        for handle in handles[500:510]:
            tg.start_soon(outcome, handle, ok, 30)
        await anyio.sleep(0.05)
        started_exit = time.monotonic()
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)

    assert time.monotonic() - started_exit < 1.0
    assert sub.closed
    lines = [
        ln for ln in server.cli("client", "list").splitlines() if "cmd=client" not in ln
    ]
    assert lines == []
    with pytest.raises(RegistryClosedError):
        await handles[0].call(ok)


def test_refused_on_trio() -> None:
    """On trio, entering a registry with a RedisStore raises a clear RuntimeError."""
    import trio

    async def main() -> None:
        async with Brama(store=RedisStore("redis://127.0.0.1:1/0")):
            pass

    with pytest.raises(RuntimeError, match="needs asyncio"):
        trio.run(main)


async def test_cluster_shares_a_circuit() -> None:
    """On a 3-node Redis Cluster, registries share circuits of keys in every slot."""
    require_redis()
    nodes = RedisClusterNodes().start()
    try:
        async with registries(nodes.url, 2, cluster=True, timeout=1.0) as brams:
            for i in range(5):
                a, b = await register_all(brams, f"svc-{i}", max_attempts=2, expiry=0.3)
                await outcome(a, boom)
                await outcome(b, boom)
                await until(lambda a=a: a.status().state == "open", 0.5)

                assert await outcome(a, ok) == "refused"
                assert b.status().state == "open"

            assert all(b._store.available for b in brams)  # type: ignore[attr-defined]
    finally:
        nodes.stop()


async def test_progressive_backoff_is_shared(server: RedisServer) -> None:
    """Trips count across registries: a failed trial in one doubles the next open."""
    async with registries(server.url, 2) as brams:
        a, b = await register_all(
            brams,
            max_attempts=1,
            expiry_strategy="progressive",
            initial_expiry=0.2,
            max_expiry=10,
        )
        await outcome(a, boom)
        await until(lambda: b.status().state == "open", 0.1)
        await anyio.sleep(0.25)
        assert await outcome(b, boom) == "boom"
        await until(lambda: a.status().trips == 2, 0.1)

        status = a.status()
        assert status.state == "open"
        assert status.half_open_at is not None
        assert status.opened_at is not None
        open_for = (status.half_open_at - status.opened_at).total_seconds()
        assert abs(open_for - 0.4) < 0.02

        await anyio.sleep(0.45)
        assert await outcome(a, ok) == "ok"
        await until(lambda: b.status().state == "closed", 0.1)
        assert b.status().trips == 0


async def test_manual_controls_reach_every_registry(server: RedisServer) -> None:
    """open, set_expiry, disable_expiry, reset_expiry and close are shared."""
    async with registries(server.url, 2) as brams:
        a, b = await register_all(brams, expiry=30)
        await a.open_circuit(expiry=5, reason="maintenance")
        await until(lambda: b.status().state == "open", 0.1)
        assert (
            4.5 < (b.status().half_open_at - b.status().opened_at).total_seconds() <= 5
        )  # type: ignore[operator]

        await a.disable_expiry()
        await until(lambda: b.status().half_open_at is None, 0.1)
        with pytest.raises(CircuitOpenError) as refused:
            await b.call(ok)
        assert refused.value.remaining is None

        await a.reset_expiry()
        await until(lambda: b.status().state == "half_open", 0.1)
        await a.close_circuit()
        await until(lambda: b.status().state == "closed", 0.1)
        assert await outcome(b, ok) == "ok"


async def test_manual_success_while_half_open_is_shared(server: RedisServer) -> None:
    """A success reported by hand on a half-open circuit closes it everywhere."""
    async with registries(server.url, 2) as brams:
        a, b = await register_all(brams, max_attempts=1, expiry=0.2)
        await outcome(a, boom)
        await anyio.sleep(0.25)
        await until(lambda: a.status().state == "half_open", 0.1)
        await a.success()
        await until(lambda: b.status().state == "closed", 0.1)


async def test_half_open_survives_a_redis_restart(server: RedisServer) -> None:
    """An empty Redis after a restart does not close a half-open circuit."""
    async with registries(server.url, 2) as brams:
        a, b = await register_all(brams, max_attempts=1, expiry=0.2)
        await outcome(a, boom)
        await anyio.sleep(0.25)
        await until(lambda: b.status().state == "half_open", 0.2)
        server.restart()
        key = connection_keys("brama", None, "svc")[0]
        await until(lambda: server.cli("exists", key).strip() == "1", 3.0)
        await until(lambda: all(br._store.available for br in brams), 3.0)  # type: ignore[attr-defined]

        assert [x.status().state for x in (a, b)] == ["half_open", "half_open"]
        assert await outcome(b, ok) == "ok"
        await until(lambda: a.status().state == "closed", 0.2)


async def test_trial_cancelled_while_its_outcome_is_on_its_way(
    server: RedisServer,
) -> None:
    """A caller's cancel scope expiring while the trial's outcome script waits
    on a slow Redis frees the local trial slot and the lease: the circuit is
    not stuck half-open, and a later trial closes it."""
    async with registries(server.url, 1, timeout=0.25, lease_ttl=1.0) as (brama,):
        breaker = await brama.register("svc", max_attempts=1, expiry=0.3)
        assert await outcome(breaker, boom) == "boom"
        await anyio.sleep(0.35)

        async def fails_then_redis_stalls() -> None:
            await anyio.sleep(0.05)
            server.cli("client", "pause", "150", "ALL")
            raise Boom

        with anyio.move_on_after(0.1):
            await breaker.call(fails_then_redis_stalls)
        trials_after_cancel = breaker.status().trials_in_flight

        waited = await until(lambda: breaker.available(), 3.0)
        await anyio.sleep(0.3)
        final = await outcome(breaker, ok)

    assert trials_after_cancel == 0
    assert waited < 3.0
    assert final == "ok"


async def test_cleanup_in_one_process_keeps_the_shared_circuit(
    server: RedisServer,
) -> None:
    """A process whose sweep removes an idle connection leaves its shared
    state alone: another process's open circuit stays open for everyone."""
    async with registries(server.url, 2, timeout=0.5) as (idle, busy):
        await idle.register("pay", max_attempts=1, expiry=30.0)
        paying = await busy.register("pay", max_attempts=1, expiry=30.0)
        assert await outcome(paying, boom) == "boom"

        removed = idle._circuits[(None, "pay")]
        idle._remove_idle(removed)
        await anyio.sleep(0.2)

        async with registries(server.url, 1, timeout=0.5) as (late,):
            newcomer = await late.register("pay", max_attempts=1, expiry=30.0)
            state = newcomer.status().state

    assert len(idle) == 0
    assert state == "open"
