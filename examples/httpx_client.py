"""httpx: a decorated ``async def`` that uses ``httpx.AsyncClient``.

Run it with ``python examples/httpx_client.py``: it starts a local HTTP server on
127.0.0.1 that fails for a while, and prints what each request saw.
``main(url)`` runs the client part against any server (the tests use that).
httpx and this example run on asyncio and on trio.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import anyio
import httpx

from _upstream import Upstream, run_plan
from brama_async import Brama, CircuitOpenError


def is_server_failure(exc: Exception) -> bool:
    """Count 5xx answers and transport errors (timeouts included); not 4xx answers."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500

    return True


def describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"

    return type(exc).__name__


async def main(
    url: str,
    *,
    requests: int = 20,
    interval: float = 0.05,
    expiry: float = 0.5,
    request_timeout: float = 1.0,
) -> Counter[str]:
    """Fetch ``url`` ``requests`` times through a decorated function.

    Returns a counter with the keys ``ok``, ``failed`` and ``refused``.
    """
    outcomes: Counter[str] = Counter()

    async with (
        Brama(max_attempts=3, expiry=expiry) as brama,
        httpx.AsyncClient(timeout=request_timeout) as client,
    ):
        # Registered on the first call, with these options.
        @brama.circuit_breaker("quotes", is_failure=is_server_failure)
        async def fetch_quote(symbol: str) -> object:
            response = await client.get(f"{url}/quotes/{symbol}")
            response.raise_for_status()
            return response.json()

        for number in range(requests):
            try:
                quote = await fetch_quote("BRM")
            except CircuitOpenError as exc:
                outcomes["refused"] += 1
                print(f"{number:3}  refused while {exc.state}")
            except httpx.HTTPError as exc:
                outcomes["failed"] += 1
                print(f"{number:3}  failed: {describe(exc)}")
            else:
                outcomes["ok"] += 1
                print(f"{number:3}  ok: {quote}")

            await anyio.sleep(interval)

        state = brama.status("quotes").state.value
        print(f"final state: {state}, {dict(outcomes)}")

    return outcomes


async def standalone() -> None:
    async with Upstream() as server, anyio.create_task_group() as tasks:
        tasks.start_soon(run_plan, server, [("ok", 0.3), ("error", 1.0), ("ok", 1.2)])
        tasks.start_soon(partial(main, server.url, requests=50))


if __name__ == "__main__":
    anyio.run(standalone)
