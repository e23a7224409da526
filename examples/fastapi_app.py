"""FastAPI: protect an outbound call in a route, answer 503 while the circuit is open.

- the registry and the HTTP client live in the app's lifespan, so the breaker's
  timers start and stop with the app;
- the route wraps its upstream call in ``async with breaker:``;
- ``install_circuit_open_handler`` turns a refused call into
  ``503 Service Unavailable`` with a ``Retry-After`` header;
- an upstream failure that ran (and was counted) becomes ``502 Bad Gateway``.

Run it with ``python examples/fastapi_app.py``: it starts a local upstream and
this app on 127.0.0.1, sends a few requests to show the three answers, and
exits.  Add ``--serve`` to keep it running (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import anyio
import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from _upstream import Upstream
from brama_async import Brama, Breaker
from brama_async.integrations.starlette import install_circuit_open_handler


def create_app(
    upstream_url: str, *, expiry: float = 5.0, timeout: float = 1.0
) -> FastAPI:
    """The application, calling the inventory service at ``upstream_url``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with (
            Brama(max_attempts=3, expiry=expiry) as brama,
            httpx.AsyncClient(base_url=upstream_url, timeout=timeout) as client,
        ):
            inventory = await brama.register("inventory")

            # Starlette hands this mapping to every request as request.state.
            yield {"inventory": inventory, "client": client}

    app = FastAPI(lifespan=lifespan)
    install_circuit_open_handler(app)

    @app.exception_handler(httpx.HTTPError)
    async def upstream_failed(request: Request, exc: httpx.HTTPError) -> JSONResponse:
        return JSONResponse({"detail": "Bad Gateway"}, status_code=502)

    @app.get("/stock/{item}")
    async def stock(item: str, request: Request) -> dict[str, Any]:
        inventory: Breaker = request.state.inventory
        client: httpx.AsyncClient = request.state.client

        async with inventory:
            response = await client.get(f"/stock/{item}")
            response.raise_for_status()

        return {"item": item, "upstream": response.json()}

    @app.get("/health")
    async def health(request: Request) -> dict[str, str]:
        inventory: Breaker = request.state.inventory
        return {"inventory": inventory.status().state.value}

    return app


@asynccontextmanager
async def serve(app: FastAPI, *, port: int = 0) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 inside the block; yield its base URL.

    ``port=0`` picks a free port.  Leaving the block shuts the server down,
    lifespan included.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        while not server.started:  # noqa: ASYNC110 - uvicorn only offers a flag
            await anyio.sleep(0.01)

        bound = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{bound}"
        finally:
            server.should_exit = True


async def tour(app_url: str, upstream: Upstream) -> list[tuple[int, str | None]]:
    """Show a healthy answer, counted upstream failures, then refusals.

    Returns ``(status, Retry-After header)`` for each request made.
    """
    seen: list[tuple[int, str | None]] = []
    async with httpx.AsyncClient(base_url=app_url) as client:

        async def get(path: str) -> None:
            response = await client.get(path)
            retry_after = response.headers.get("Retry-After")
            seen.append((response.status_code, retry_after))
            print(
                f"GET {path:<14} -> {response.status_code}  Retry-After={retry_after}"
            )

        await get("/stock/apples")

        upstream.mode = "error"
        print("[upstream] now failing")
        for _ in range(4):
            await get("/stock/apples")

        await get("/health")

    return seen


async def main(*, port: int = 0, keep_serving: bool = False) -> None:
    async with Upstream() as upstream:
        app = create_app(upstream.url)
        async with serve(app, port=port) as app_url:
            print(f"serving on {app_url} (upstream {upstream.url})")
            await tour(app_url, upstream)
            if keep_serving:
                upstream.mode = "ok"
                print("upstream healthy again; try: curl", f"{app_url}/stock/apples")
                await anyio.sleep_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--port",
        type=int,
        help="port on 127.0.0.1 (default: 8000 with --serve, else any free one)",
    )
    parser.add_argument(
        "--serve", action="store_true", help="keep serving after the tour"
    )
    args = parser.parse_args()
    port = args.port if args.port is not None else (8000 if args.serve else 0)
    with suppress(KeyboardInterrupt):
        anyio.run(partial(main, port=port, keep_serving=args.serve))
