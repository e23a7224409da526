"""A tiny HTTP/1.1 server on 127.0.0.1 that the examples call.

It stands in for the remote dependency a breaker protects.  Paths decide what
it does, so one server covers every example:

- ``/ok`` answers ``200`` with a small JSON body;
- ``/status/NNN`` answers with status ``NNN``;
- ``/hang`` reads the request and never answers;
- any other path follows ``Upstream.mode``: ``"ok"``, ``"error"`` (``500``) or
  ``"hang"``; the examples flip the mode over time to simulate an outage.

Every connection carries one request (``Connection: close``).  It uses anyio
only, so it runs on asyncio and on trio.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from types import TracebackType

import anyio
import anyio.abc

__all__ = ["Upstream", "get_status", "run_plan"]

_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}


class Upstream:
    """Serve until the ``async with`` block ends; ``url`` is set inside it."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.url = ""
        self.hits = 0
        self.paths: list[str] = []
        self._tasks: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Upstream:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self.url = f"http://127.0.0.1:{port}"

        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._serve, listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tasks is not None
        self._tasks.cancel_scope.cancel()
        return await self._tasks.__aexit__(exc_type, exc, tb)

    async def _serve(self, listener: anyio.abc.SocketListener) -> None:
        async with listener:
            await listener.serve(self._handle)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                path = await _read_request(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
                return

            self.hits += 1
            self.paths.append(path)
            action = self._action(path)
            if action == "hang":
                await _wait_for_close(stream)
                return

            with contextlib.suppress(
                anyio.BrokenResourceError, anyio.ClosedResourceError
            ):
                await stream.send(_response(action))

    def _action(self, path: str) -> int | str:
        if path == "/ok":
            return 200

        if path == "/hang":
            return "hang"

        if path.startswith("/status/") and path[8:].isdigit():
            return int(path[8:])

        return {"ok": 200, "error": 500}.get(self.mode, "hang")


async def _read_request(stream: anyio.abc.ByteReceiveStream) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > 65_536:
            raise ValueError("request head too large")

        data += await stream.receive()

    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)

    while len(body) < length:
        body += await stream.receive()

    return lines[0].split(" ")[1].split("?")[0]


async def _wait_for_close(stream: anyio.abc.ByteReceiveStream) -> None:
    try:
        while True:
            await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


def _response(status: int | str) -> bytes:
    code = int(status)
    body = json.dumps({"status": code}).encode() + b"\n"
    head = (
        f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def get_status(url: str, *, within: float = 1.0) -> int:
    """``GET url`` with nothing but anyio and return the status code.

    The deadline is inside, so a hang surfaces as ``TimeoutError``.  Only plain
    ``http://host:port/path`` URLs are supported: this is a helper for the
    examples, not an HTTP client.
    """
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    with anyio.fail_after(within):
        async with await anyio.connect_tcp(host, int(port or 80)) as stream:
            request = (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
            )
            await stream.send(request.encode("ascii"))
            data = b""
            while b"\r\n" not in data:
                data += await stream.receive()

    return int(data.split(b" ", 2)[1])


async def run_plan(upstream: Upstream, plan: Sequence[tuple[str, float]]) -> None:
    """Switch ``upstream.mode`` through ``(mode, seconds)`` steps, printing each."""
    for mode, seconds in plan:
        upstream.mode = mode
        print(f"[upstream] now {mode!r} for {seconds:g} s")
        await anyio.sleep(seconds)
