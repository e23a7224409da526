"""Quickstart: one breaker, the three ways to call through it, and a full cycle.

Run it with ``python examples/quickstart.py``: it starts a small local HTTP
server on 127.0.0.1 and talks to it.  ``main(url)`` does the same against a
server you already have (the tests use that).
"""

from __future__ import annotations

import anyio

from _upstream import Upstream, get_status
from brama_async import Brama, CircuitOpenError


async def main(url: str, *, expiry: float = 0.5) -> list[str]:
    """Walk through the call styles, trip the circuit, and watch it recover.

    Returns the lines it printed, so tests can check them.
    """
    lines: list[str] = []

    def say(text: str) -> None:
        print(text)
        lines.append(text)

    async with Brama(max_attempts=3, expiry=expiry) as brama:
        upstream = await brama.register("upstream")

        # 1. await breaker.call(fn, *args)
        status = await upstream.call(get_status, f"{url}/ok")
        say(f"call:            {status}")

        # 2. async with breaker: the body is the protected call
        async with upstream:
            status = await get_status(f"{url}/ok")

        say(f"context manager: {status}")

        # 3. @breaker on an async def
        @upstream
        async def fetch(path: str) -> int:
            status = await get_status(f"{url}{path}")
            if status >= 500:
                raise RuntimeError(f"upstream answered {status}")

            return status

        say(f"decorator:       {await fetch('/ok')}")

        # Three failures in a row open the circuit.  Each failing call raises
        # its own error; only refused calls raise CircuitOpenError.
        for _ in range(3):
            try:
                await fetch("/status/500")
            except RuntimeError as exc:
                say(f"failed:          {exc}")

        try:
            await fetch("/ok")
        except CircuitOpenError as exc:
            wait = exc.remaining or 0.0
            say(f"refused:         {exc.identifier}, half-open in {wait:.1f} s")

        say(f"state:           {upstream.status().state.value}")

        # After `expiry` the circuit goes half-open by itself; one trial call
        # that succeeds closes it again.
        await anyio.sleep(expiry + 0.05)
        say(f"after expiry:    {upstream.status().state.value}")
        say(f"trial call:      {await fetch('/ok')}")
        say(f"state:           {upstream.status().state.value}")

    return lines


async def standalone() -> None:
    async with Upstream() as server:
        await main(server.url)


if __name__ == "__main__":
    anyio.run(standalone)
