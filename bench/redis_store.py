"""RedisStore benchmark: hot-path cost, round trips, propagation delay.

Run ``python -m bench.redis_store`` (needs redis-server on PATH, or pass
``--url redis://127.0.0.1:PORT/0`` of a server of yours; the data under the
benchmark's prefix is deleted).  Prints:

- the closed-state ``await breaker.call(f)`` cost with a RedisStore against
  the in-memory store (median of several rounds, and the ratio),
- Redis commands per operation (counted with ``INFO commandstats``),
- the delay for a transition to reach another process (median and p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from brama_async import Brama, CircuitOpenError, RedisStore

PREFIX = "brama-bench"


class _Boom(Exception):
    pass


async def _ok() -> int:
    return 1


async def _fail() -> int:
    raise _Boom


@contextmanager
def _redis_server() -> Iterator[str]:
    """A temporary redis-server on a free 127.0.0.1 port, removed on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found; pass --url")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    folder = tempfile.mkdtemp(prefix="brama-bench-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.02)

        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


async def _per_call_ns(store: Any, calls: int, rounds: int) -> float:
    async with Brama(store=store) as brama:
        breaker = await brama.register("hot")
        samples = []
        for _ in range(rounds):
            started = time.perf_counter_ns()
            for _ in range(calls):
                await breaker.call(_ok)
            samples.append((time.perf_counter_ns() - started) / calls)

    return statistics.median(samples)


async def hot_path(url: str, calls: int, rounds: int) -> dict[str, float]:
    """Closed-state success: nanoseconds per call, memory vs Redis, and ratio."""
    memory = redis = 0.0
    memory_samples: list[float] = []
    redis_samples: list[float] = []
    for _ in range(3):
        memory_samples.append(await _per_call_ns(None, calls, rounds))
        redis_samples.append(
            await _per_call_ns(RedisStore(url, prefix=PREFIX), calls, rounds)
        )

    memory = statistics.median(memory_samples)
    redis = statistics.median(redis_samples)
    return {"memory_ns": memory, "redis_ns": redis, "ratio": redis / memory}


_CLIENT_ONLY = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script|load")


async def _commands(client: Any) -> int:
    """Round trips the store made: script calls (commands run inside a script
    are counted by Redis too, so only commands a script cannot issue count)."""
    stats = await client.info("commandstats")
    return sum(int(stats.get(k, {}).get("calls", 0)) for k in _CLIENT_ONLY)


async def round_trips(url: str, count: int = 100) -> dict[str, float]:
    """Redis commands per operation, averaged over ``count`` operations."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    out: dict[str, float] = {}
    store = RedisStore(url, prefix=PREFIX, health_interval=3600)
    async with Brama(store=store, max_attempts=10**6, expiry=3600) as brama:
        names = [f"rt{i}" for i in range(count)]
        for name in names:
            await brama.register(name)

        async def measure(label: str, op: Any) -> None:
            before = await _commands(client)
            for name in names:
                await op(brama.breaker(name))
            out[label] = (await _commands(client) - before) / count

        async def success(b: Any) -> None:
            await b.call(_ok)

        async def failure(b: Any) -> None:
            with suppress(_Boom):
                await b.call(_fail)

        async def refusal(b: Any) -> None:
            with suppress(CircuitOpenError):
                await b.call(_ok)

        async def trip(b: Any) -> None:
            await b.configure(max_attempts=1)
            before = await _commands(client)
            await failure(b)
            out.setdefault("_trip", 0.0)
            out["_trip"] += (await _commands(client) - before) / count

        async def trial(b: Any) -> None:
            await b.reset_expiry()
            before = await _commands(client)
            await b.call(_ok)
            out.setdefault("_trial", 0.0)
            out["_trial"] += (await _commands(client) - before) / count

        await measure("closed success (count 0)", success)
        await measure("failure below the threshold", failure)
        await measure("success after a failure", success)
        for name in names:
            await trip(brama.breaker(name))
        await measure("refusal while open", refusal)
        for name in names:
            await trial(brama.breaker(name))

    out["failure that trips (transition)"] = out.pop("_trip")
    out["half-open trial that closes"] = out.pop("_trial")
    await client.aclose()
    return out


_CHILD = """
import asyncio, json, sys, time
from brama_async import Brama, RedisStore

async def main(url, prefix):
    async with Brama(store=RedisStore(url, prefix=prefix)) as brama:
        await brama.register("prop", max_attempts=1, expiry=3600)
        async with brama.subscribe(events={"circuit_opened", "circuit_reset"}) as sub:
            print("ready", flush=True)
            async for event in sub:
                print(json.dumps([event.type.value, time.time()]), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def propagation(url: str, count: int) -> dict[str, float]:
    """Delay from a transition's start in one process to the event in another."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        url,
        PREFIX,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert child.stdout is not None
    assert (await child.stdout.readline()).strip() == b"ready"
    delays: list[float] = []
    try:
        async with Brama(store=RedisStore(url, prefix=PREFIX)) as brama:
            breaker = await brama.register("prop", max_attempts=1, expiry=3600)
            for i in range(count):
                started = time.time()
                if i % 2 == 0:
                    with suppress(_Boom):
                        await breaker.call(_fail)
                else:
                    await breaker.reset_circuit()
                line = await asyncio.wait_for(child.stdout.readline(), 5)
                delays.append(json.loads(line)[1] - started)
    finally:
        child.terminate()
        await child.wait()

    delays.sort()
    return {
        "median_ms": statistics.median(delays) * 1000,
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000,
        "samples": len(delays),
    }


async def _clear(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    keys = [k async for k in client.scan_iter(f"{PREFIX}:*")]
    if keys:
        for key in keys:
            await client.delete(key)
    await client.aclose()


async def run(url: str, calls: int, rounds: int, samples: int) -> dict[str, Any]:
    """Every measurement, as one dict."""
    await _clear(url)
    report = {
        "closed_success": await hot_path(url, calls, rounds),
        "round_trips": await round_trips(url),
        "propagation": await propagation(url, samples),
    }
    await _clear(url)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing Redis (default: start one)")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)

    def go(url: str) -> dict[str, Any]:
        return asyncio.run(run(url, args.calls, args.rounds, args.samples))

    if args.url:
        report = go(args.url)
    else:
        with _redis_server() as url:
            report = go(url)

    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    hot = report["closed_success"]
    print("closed-state success, await breaker.call(f):")
    print(f"  MemoryStore {hot['memory_ns']:8.0f} ns/call")
    print(f"  RedisStore  {hot['redis_ns']:8.0f} ns/call  ratio {hot['ratio']:.2f}x")
    print("Redis commands per operation:")
    for label, value in report["round_trips"].items():
        print(f"  {label:34s} {value:.2f}")
    prop = report["propagation"]
    print(
        f"transition propagation to another process: median "
        f"{prop['median_ms']:.2f} ms, p99 {prop['p99_ms']:.2f} ms "
        f"({prop['samples']} samples)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
