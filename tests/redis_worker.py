"""A worker process for the multi-process RedisStore tests.

Run as ``python redis_worker.py CONFIG_JSON``.  It enters
``Brama(store=RedisStore(...))``, registers one connection, prints ``{"ready":
...}`` and then answers one JSON command per stdin line with one JSON line on
stdout.  Every event it sees is recorded with its origin.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import anyio

from brama_async import Brama, CircuitOpenError, RedisStore


class Boom(Exception):
    """The failure the workers' protected function raises."""


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"

    if isinstance(exc, CircuitOpenError):
        return "refused"

    return type(exc).__name__


async def main(config: dict[str, Any]) -> None:
    """Serve commands until ``exit`` or end of input."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    store = RedisStore(
        config["url"],
        prefix=config.get("prefix", "brama"),
        timeout=config.get("timeout", 0.25),
        lease_ttl=config.get("lease_ttl", 10.0),
        on_unavailable=config.get("on_unavailable", "local"),
        cluster=config.get("cluster", False),
    )
    events: list[dict[str, Any]] = []
    runs = 0
    hang = anyio.Event()

    async with Brama(store=store) as brama:
        breaker = await brama.register("shared", **config.get("options", {}))

        async def record() -> None:
            async with brama.subscribe() as sub:
                async for event in sub:
                    events.append(
                        {
                            "type": event.type.value,
                            "origin": event.origin,
                            "state": event.state.value if event.state else None,
                            "t": time.time(),
                        }
                    )

        async def fn(delay: float, fail: bool, forever: bool = False) -> str:
            nonlocal runs
            runs += 1
            if forever:
                await hang.wait()
            else:
                await anyio.sleep(delay)

            if fail:
                raise Boom("boom")

            return "ok"

        async def one(
            delay: float, fail: bool, out: list[Any], forever: bool = False
        ) -> None:
            started = time.monotonic()
            try:
                await breaker.call(fn, delay, fail, forever)
            except (Boom, CircuitOpenError) as exc:
                item: dict[str, Any] = {"r": _outcome(exc)}
                if isinstance(exc, CircuitOpenError):
                    item["remaining"] = exc.remaining
            else:
                item = {"r": "ok"}

            item["took"] = time.monotonic() - started
            out.append(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(record)
            print(json.dumps({"ready": os.getpid()}), flush=True)
            stdin = anyio.wrap_file(sys.stdin)
            while True:
                line = await stdin.readline()
                if not line:
                    break

                cmd = json.loads(line)
                op = cmd["op"]
                reply: dict[str, Any] = {"op": op}
                if op in ("fail", "ok"):
                    out: list[Any] = []
                    before = runs
                    started = time.monotonic()
                    async with anyio.create_task_group() as calls:
                        for _ in range(cmd.get("n", 1)):
                            calls.start_soon(
                                one, cmd.get("delay", 0.0), op == "fail", out
                            )

                    reply.update(
                        results=out, runs=runs - before, took=time.monotonic() - started
                    )
                elif op == "hang":
                    out = []
                    tg.start_soon(one, 0.0, False, out, True)
                    await anyio.sleep(0.05)
                    reply.update(runs=runs)
                elif op == "unhang":
                    hang.set()
                    await anyio.sleep(0.1)
                elif op == "cancel_trial":
                    before = runs
                    with anyio.move_on_after(cmd.get("after", 0.1)):
                        await breaker.call(fn, 10.0, False)
                    reply.update(runs=runs - before)
                elif op == "status":
                    status = breaker.status()
                    reply.update(
                        state=status.state.value,
                        failure_count=status.failure_count,
                        trips=status.trips,
                        opened_at=status.opened_at.timestamp()
                        if status.opened_at
                        else None,
                        half_open_at=status.half_open_at.timestamp()
                        if status.half_open_at
                        else None,
                    )
                elif op == "reset":
                    await breaker.reset_circuit(reason="test")
                elif op == "events":
                    reply.update(events=events)
                elif op == "exit":
                    print(json.dumps(reply), flush=True)
                    tg.cancel_scope.cancel()
                    break

                print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    anyio.run(main, json.loads(sys.argv[1]))
