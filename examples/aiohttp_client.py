"""aiohttp: protect outbound requests with ``await breaker.call(...)``.

Run it with ``python examples/aiohttp_client.py``: it starts a local HTTP server
on 127.0.0.1 that fails for a while, and prints what each request saw.
``main(url)`` runs the client part against any server (the tests use that).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial

import aiohttp
import anyio

from _upstream import Upstream, run_plan
from brama_async import Brama, CircuitOpenError


def is_server_failure(exc: Exception) -> bool:
    """Count 5xx answers, timeouts and connection errors; not 4xx answers.

    A ``404`` says the request was wrong, not that the upstream is unhealthy,
    so it should not push the circuit towards open.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status >= 500

    return True


def describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"

    return type(exc).__name__


async def get_json(session: aiohttp.ClientSession, url: str) -> object:
    """GET ``url`` and decode its JSON body; raise for any 4xx or 5xx answer."""
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def main(
    url: str,
    *,
    requests: int = 20,
    interval: float = 0.05,
    expiry: float = 0.5,
    request_timeout: float = 1.0,
) -> Counter[str]:
    """Send ``requests`` GETs to ``url`` through a breaker; count the outcomes.

    Returns a counter with the keys ``ok``, ``failed`` and ``refused``.
    """
    outcomes: Counter[str] = Counter()
    client_timeout = aiohttp.ClientTimeout(total=request_timeout)

    async with (
        Brama(max_attempts=3, expiry=expiry) as brama,
        aiohttp.ClientSession(timeout=client_timeout) as session,
    ):
        upstream = await brama.register("upstream-api", is_failure=is_server_failure)

        for number in range(requests):
            try:
                body = await upstream.call(get_json, session, url)
            except CircuitOpenError as exc:
                outcomes["refused"] += 1
                print(f"{number:3}  refused while {exc.state}")
            except aiohttp.ClientError as exc:
                outcomes["failed"] += 1
                print(f"{number:3}  failed: {describe(exc)}")
            else:
                outcomes["ok"] += 1
                print(f"{number:3}  ok: {body}")

            await asyncio.sleep(interval)

        print(f"final state: {upstream.status().state.value}, {dict(outcomes)}")

    return outcomes


async def standalone() -> None:
    async with Upstream() as server:
        plan = [("ok", 0.3), ("error", 1.0), ("ok", 1.2)]
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run_plan, server, plan)
            tasks.start_soon(partial(main, f"{server.url}/api", requests=50))


if __name__ == "__main__":
    asyncio.run(standalone())
