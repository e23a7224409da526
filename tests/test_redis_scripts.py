"""The Redis store's key layout, scripts and link, against real redis-server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.crc import key_slot
from redis_support import ChaosProxy, RedisClusterNodes, RedisServer, require_redis

from brama_async._redis_link import Link
from brama_async._redis_lua import SCHEMA_VERSION, connection_keys, connection_tag

pytestmark = pytest.mark.anyio

# channel, origin, tag, key TTL, max_attempts, strategy, expiry, initial,
# max expiry, factor, lease TTL (milliseconds where times)
BASE: list[object] = [
    "brama:events",
    "test",
    "t",
    60_000,
    3,
    "fixed",
    1000,
    1000,
    10_000,
    2.0,
    400,
]


@pytest.fixture
def anyio_backend() -> str:
    """redis-py's asyncio client needs asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """One redis-server for the module."""
    require_redis()
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture
async def link(server: RedisServer) -> AsyncIterator[Link]:
    """A connected link to a flushed server."""
    server.cli("flushall")
    lk = Link(server.url, prefix="brama", timeout=0.5, cluster=False, health_interval=5)
    lk.open_client()
    assert await connect(lk)
    yield lk
    await lk.aclose()


async def connect(lk: Link) -> bool:
    """Connect a bare link and mark it reconciled (no store behind it)."""
    lk.synced = await lk._connect()
    return lk.synced


def args(*extra: object, max_attempts: int = 3, lease_ms: int = 400) -> list[object]:
    """The base script arguments with a few overrides, then the op's own."""
    base = list(BASE)
    base[4] = max_attempts
    base[10] = lease_ms
    return [*base, *extra]


KEYS = connection_keys("brama", "billing", "payment_api")


@given(
    st.tuples(st.one_of(st.none(), st.text(min_size=1)), st.text(min_size=1)),
    st.tuples(st.one_of(st.none(), st.text(min_size=1)), st.text(min_size=1)),
)
def test_keys_never_collide(
    a: tuple[str | None, str], b: tuple[str | None, str]
) -> None:
    """Distinct (scope, identifier) pairs get distinct keys, one slot each."""
    keys_a = connection_keys("p", *a)
    keys_b = connection_keys("p", *b)

    assert (keys_a == keys_b) == (a == b)
    assert key_slot(keys_a[0].encode()) == key_slot(keys_a[1].encode())
    assert "{" not in connection_tag(*a).replace("%7B", "")
    assert "}" not in connection_tag(*a)


def test_scope_pairs_from_the_contract_do_not_collide() -> None:
    """("a", "b") and (None, "a:b") name different keys."""
    assert connection_keys("p", "a", "b") != connection_keys("p", None, "a:b")
    assert connection_keys("p", "a|b", "c") != connection_keys("p", "a", "b|c")


async def test_failures_trip_once_and_every_key_has_a_ttl(
    link: Link, server: RedisServer
) -> None:
    """Three failures open the circuit; every key written carries a TTL."""
    replies = [
        await link.script("outcome", KEYS, args("fail", "", "boom")) for _ in range(3)
    ]

    assert [r["s"] for r in replies if r] == ["failure", "failure", "opened"]
    assert replies[2] is not None
    assert replies[2]["st"] == "open"
    assert replies[2]["rem"] > 900
    assert int(server.cli("pttl", KEYS[0])) > 60_000

    await link.script("outcome", KEYS, args("fail", "", "late"))
    state = await link.script("sync", KEYS, args("closed", 0, 0, -1, 1000))

    assert state is not None
    assert state["tr"] == 1
    assert state["fc"] == 3
    assert server.cli("hget", KEYS[0], "v").strip() == str(SCHEMA_VERSION)


async def test_missing_or_foreign_schema_state_reads_as_fresh_closed(
    link: Link, server: RedisServer
) -> None:
    """Deleted state, or state of another schema version, is a fresh closed circuit."""
    server.cli("hset", KEYS[0], "v", "999", "st", "open")
    reply = await link.script("sync", KEYS, args("closed", 0, 0, -1, 1000))

    assert reply is not None
    assert reply["m"] == 1
    assert reply["st"] == "closed"

    server.cli("del", KEYS[0])
    reply = await link.script("acquire", KEYS, args("tok", 1))

    assert reply is not None
    assert reply["s"] == "closed"


async def test_script_flush_reloads_and_counts_each_failure_once(
    link: Link, server: RedisServer
) -> None:
    """After SCRIPT FLUSH scripts reload by themselves; 100 failures count 100."""
    await link.script("outcome", KEYS, args("fail", "", "x", max_attempts=1000))
    server.cli("script", "flush")
    for i in range(99):
        if i == 50:
            server.cli("script", "flush")

        reply = await link.script(
            "outcome", KEYS, args("fail", "", "x", max_attempts=1000)
        )
        assert reply is not None

    assert server.cli("hget", KEYS[0], "fc").strip() == "100"


@pytest.mark.parametrize("decode", [False, True])
async def test_same_replies_in_both_decode_modes(
    server: RedisServer, decode: bool
) -> None:
    """A client with decode_responses on or off sees the same replies."""
    server.cli("flushall")
    client = Redis.from_url(server.url, decode_responses=decode)
    lk = Link(client, prefix="brama", timeout=0.5, cluster=False, health_interval=5)
    lk.open_client()
    assert await connect(lk)
    replies = [
        await lk.script("outcome", KEYS, args("fail", "", "x")) for _ in range(3)
    ]
    await lk.aclose()
    await client.aclose()

    assert [(r["s"], r["fc"], r["st"]) for r in replies if r] == [
        ("failure", 1, "closed"),
        ("failure", 2, "closed"),
        ("opened", 3, "open"),
    ]


async def test_lost_reply_is_not_replayed(server: RedisServer) -> None:
    """A reply lost after the script ran takes the degraded path, no second run."""
    server.cli("flushall")
    proxy = ChaosProxy(server.port).start()
    lk = Link(proxy.url, prefix="brama", timeout=0.3, cluster=False, health_interval=5)
    lk.open_client()
    try:
        assert await connect(lk)
        await lk.script("outcome", KEYS, args("fail", "", "x", max_attempts=10))
        proxy.set_mode("drop_replies")
        lost = await lk.script("outcome", KEYS, args("fail", "", "x", max_attempts=10))

        assert lost is None
        assert not lk.up
        assert server.cli("hget", KEYS[0], "fc").strip() == "2"
        assert await lk.script("outcome", KEYS, args("fail", "", "x")) is None
        assert server.cli("hget", KEYS[0], "fc").strip() == "2"
    finally:
        proxy.set_mode("pass")
        await lk.aclose()
        proxy.stop()


async def test_half_open_leases(link: Link, server: RedisServer) -> None:
    """At most N leases; an expired lease frees its slot and its result is ignored."""
    fast = args("fail", "", "x", max_attempts=1)
    fast[6] = fast[7] = 100
    await link.script("outcome", KEYS, fast)
    server.cli("hset", KEYS[0], "oa", "0")

    def acquire(token: str, n: int = 2) -> list[object]:
        extra = args(token, n, lease_ms=300)
        extra[6] = extra[7] = 100
        return extra

    got = [await link.script("acquire", KEYS, acquire(f"t{i}")) for i in range(4)]

    assert [r["s"] for r in got if r] == ["granted", "granted", "busy", "busy"]
    assert 0 < int(server.cli("pttl", KEYS[1])) <= 2000

    released = await link.script("outcome", KEYS, args("release", "t0", ""))
    again = await link.script("acquire", KEYS, acquire("t4"))

    assert released is not None
    assert again is not None
    assert again["s"] == "granted"

    server.cli("zadd", KEYS[1], "0", "t1")
    late = await link.script("outcome", KEYS, args("trial_ok", "t1", ""))
    after = await link.script("sync", KEYS, args("closed", 0, 0, -1, 100))

    assert late is not None
    assert late["s"] == "stale"
    assert after is not None
    assert after["st"] == "half_open"

    closed = await link.script("outcome", KEYS, args("trial_ok", "t4", ""))

    assert closed is not None
    assert closed["s"] == "closed"
    assert server.cli("exists", KEYS[1]).strip() == "0"


async def test_published_messages_name_the_connection(
    link: Link, server: RedisServer
) -> None:
    """Each transition is published once on the prefix's channel."""
    pubsub = link.client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("brama:events")
    for _ in range(3):
        await link.script("outcome", KEYS, args("fail", "", "boom"))

    seen: list[dict[str, Any]] = []
    for _ in range(20):
        if len(seen) == 3:
            break

        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            seen.append(json.loads(message["data"]))

    await pubsub.aclose()

    assert [m["s"] for m in seen] == ["failure", "failure", "opened"]
    assert {m["k"] for m in seen} == {"t"}


async def test_cluster_runs_every_script_without_crossslot() -> None:
    """On a 3-node Cluster every script runs for connections in many slots."""
    require_redis()
    nodes = RedisClusterNodes().start()
    lk = Link(nodes.url, prefix="brama", timeout=1.0, cluster=True, health_interval=5)
    try:
        lk.open_client()
        assert await connect(lk)
        for i in range(20):
            keys = connection_keys("brama", "scope", f"conn-{i}")
            for _ in range(3):
                assert (
                    await lk.script("outcome", keys, args("fail", "", "x")) is not None
                )

            assert await lk.script("acquire", keys, args("tok", 1)) is not None
            assert (
                await lk.script(
                    "put", keys, args("reset", "closed", 0, 0, -1, 1000, "")
                )
                is not None
            )

        assert lk.up
    finally:
        await lk.aclose()
        nodes.stop()
