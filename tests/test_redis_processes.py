"""RedisStore across real worker processes (tests/redis_worker.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis_support import (
    ChaosProxy,
    RedisClusterNodes,
    RedisServer,
    Worker,
    ask_all,
    require_redis,
)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    require_redis()
    srv = RedisServer().start()
    yield srv
    srv.stop()


def start_workers(count: int, **config: Any) -> list[Worker]:
    """Start ``count`` workers sharing one configuration."""
    workers: list[Worker] = []
    try:
        for _ in range(count):
            workers.append(Worker(config))
    except BaseException:
        for worker in workers:
            worker.close()
        raise

    return workers


def close_all(workers: list[Worker]) -> None:
    """Stop every worker."""
    for worker in workers:
        worker.close()


def results(answer: dict[str, Any]) -> list[str]:
    """The outcome names of one ``fail``/``ok`` answer."""
    return sorted(item["r"] for item in answer["results"])


def wait_states(workers: list[Worker], state: str, limit: float = 1.0) -> float:
    """Poll until every worker reads ``state``; return how long it took."""
    started = time.monotonic()
    while True:
        states = [w.ask({"op": "status"})["state"] for w in workers]
        if all(s == state for s in states):
            return time.monotonic() - started

        assert time.monotonic() - started < limit, states
        time.sleep(0.01)


def opened_events(workers: list[Worker]) -> list[list[str | None]]:
    """Per worker, the origins of its circuit_opened events."""
    answers = ask_all(workers, {"op": "events"})
    return [
        [e["origin"] for e in a["events"] if e["type"] == "circuit_opened"]
        for a in answers
    ]


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_three_workers_share_one_circuit(server: RedisServer, kind: str) -> None:
    """Failures split across three processes trip one circuit for all of them.

    One open transition cluster-wide, one opened_at, refusals everywhere with
    about the full expiry left; after expiry exactly one trial runs across
    all processes and every process sees the recovery; then closed-state
    successes run concurrently and send no command to Redis.
    """
    nodes = RedisClusterNodes().start() if kind == "cluster" else None
    url = nodes.url if nodes else server.url
    options = {"max_attempts": 5, "expiry": 1.0}
    workers = start_workers(
        3, url=url, cluster=nodes is not None, options=options, timeout=0.5
    )
    try:
        failed = ask_all(workers, {"op": "fail", "n": 10, "delay": 0.05})
        for answer in failed:
            assert results(answer) == ["Boom"] * 10

        refused = ask_all(workers, {"op": "ok", "n": 1})
        for answer in refused:
            assert answer["results"][0]["r"] == "refused"
            assert 0.7 < answer["results"][0]["remaining"] <= 1.0

        origins = opened_events(workers)
        assert [len(o) for o in origins] == [1, 1, 1]
        assert sum(o[0] is None for o in origins) == 1
        assert all(o[0] is None or o[0].startswith("remote:") for o in origins)
        opened = [w.ask({"op": "status"})["opened_at"] for w in workers]
        assert max(opened) - min(opened) < 0.05

        time.sleep(1.05)
        trials = ask_all(workers, {"op": "ok", "n": 25, "delay": 0.2})
        assert sum(a["runs"] for a in trials) == 1
        assert wait_states(workers, "closed", 0.1) < 0.1

        if nodes is None:
            server.cli("config", "resetstat")
        successes = ask_all(workers, {"op": "ok", "n": 20, "delay": 0.2})
        for answer in successes:
            assert results(answer) == ["ok"] * 20
            assert answer["took"] < 0.35
        if nodes is None:
            stats = server.cli("info", "commandstats")
            assert "cmdstat_evalsha" not in stats
    finally:
        close_all(workers)
        if nodes is not None:
            nodes.stop()


def test_half_open_trials_are_cluster_wide_leases(server: RedisServer) -> None:
    """One trial across four processes; cancelled, hung and killed trials.

    A cancelled trial returns its lease at once; a hung trial and a trial
    whose process was SIGKILLed hold it until the lease TTL, then exactly one
    new trial follows; the hung trial's late success changes nothing.
    """
    lease_ttl = 1.0
    options = {"max_attempts": 1, "expiry": 0.5, "half_open_max_calls": 1}
    w1, w2, w3, w4 = workers = start_workers(
        4, url=server.url, options=options, lease_ttl=lease_ttl
    )
    try:
        w1.ask({"op": "fail"})
        wait_states(workers, "open")
        time.sleep(0.55)
        trials = ask_all(workers, {"op": "ok", "n": 25, "delay": 0.2})
        assert sum(a["runs"] for a in trials) == 1
        wait_states(workers, "closed", 0.1)

        w1.ask({"op": "fail"})
        time.sleep(0.55)
        assert w2.ask({"op": "cancel_trial", "after": 0.1})["runs"] == 1
        started = time.monotonic()
        while w3.ask({"op": "ok", "n": 1})["runs"] == 0:
            assert time.monotonic() - started < 0.3
            time.sleep(0.01)
        wait_states(workers, "closed", 0.1)

        w1.ask({"op": "fail"})
        time.sleep(0.55)
        assert w2.ask({"op": "hang"})["runs"] >= 1
        blocked = ask_all([w1, w3, w4], {"op": "ok", "n": 5})
        assert sum(a["runs"] for a in blocked) == 0
        time.sleep(lease_ttl)
        retried = ask_all([w1, w3, w4], {"op": "fail", "n": 25, "delay": 0.1})
        assert sum(a["runs"] for a in retried) == 1
        wait_states(workers, "open", 0.1)
        w2.ask({"op": "unhang"})
        time.sleep(0.1)
        assert [w.ask({"op": "status"})["state"] for w in workers] == ["open"] * 4

        time.sleep(0.5)
        assert w4.ask({"op": "hang"})["runs"] >= 1
        w4.kill()
        alive = [w1, w2, w3]
        assert sum(a["runs"] for a in ask_all(alive, {"op": "ok", "n": 5})) == 0
        time.sleep(lease_ttl)
        recovered = ask_all(alive, {"op": "ok", "n": 10, "delay": 0.1})
        assert sum(a["runs"] for a in recovered) == 1
        wait_states(alive, "closed", 0.1)
    finally:
        close_all(workers)


def test_cut_off_store_keeps_callers_safe(server: RedisServer) -> None:
    """Redis refused, then blackholed: callers see only their own errors.

    P1 opens on local state and refuses its 4th call at once; no call waits
    past the timeout; one warning on degrading and one info on recovery;
    after recovery both processes agree within a second (open wins).
    """
    proxy = ChaosProxy(server.port).start()
    options = {"max_attempts": 3, "expiry": 30}
    p1, p2 = workers = start_workers(2, url=proxy.url, options=options, timeout=0.2)
    try:
        for mode in ("refuse", "blackhole"):
            ask_all(workers, {"op": "status"})
            proxy.set_mode(mode)
            proxy.cut()
            answers = [p1.ask({"op": "fail"}) for _ in range(3)]
            answers.append(p1.ask({"op": "ok"}))

            assert [a["results"][0]["r"] for a in answers] == [
                "Boom",
                "Boom",
                "Boom",
                "refused",
            ]
            assert max(a["took"] for a in answers) < 0.3
            assert p2.ask({"op": "status"})["state"] == "closed"

            proxy.set_mode("pass")
            assert wait_states(workers, "open", 1.0) < 1.0
            p1.ask({"op": "status"})
            for worker in workers:
                worker.ask({"op": "reset"})
            wait_states(workers, "closed", 1.0)

        logs = [w.stderr() for w in workers]
        assert logs[0].count("Redis store unavailable") == 2
        assert logs[0].count("Redis store available again") == 2
    finally:
        close_all(workers)
        proxy.stop()
