"""Event-loop backends the benchmark runs on: asyncio, uvloop and trio.

Everything that is timed uses the running loop's own primitives (a native
``sleep(0)``, ``asyncio.gather`` or a trio nursery), so no library under test
pays for an abstraction layer that the others do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

LOOPS = ("asyncio", "uvloop", "trio")


@dataclass(frozen=True)
class Backend:
    """One event loop flavour, with its cheapest native primitives.

    ``sleep0`` yields to the loop exactly once; ``spawn_all`` starts one task per
    factory call and returns their results in order.
    """

    name: str
    sleep0: Callable[[], Awaitable[None]]
    spawn_all: Callable[[Callable[[], Awaitable[Any]], int], Awaitable[list[Any]]]

    @property
    def is_asyncio(self) -> bool:
        """True when the loop is asyncio or uvloop (asyncio-only peers can run)."""
        return self.name in ("asyncio", "uvloop")

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``main`` to completion on a fresh loop of this flavour."""
        if self.name == "trio":
            return anyio.run(main, backend="trio")

        options = {"use_uvloop": self.name == "uvloop"}
        return anyio.run(main, backend="asyncio", backend_options=options)


async def _asyncio_sleep0() -> None:
    await asyncio.sleep(0)


async def _asyncio_spawn_all(
    factory: Callable[[], Awaitable[Any]], n: int
) -> list[Any]:
    return list(await asyncio.gather(*[factory() for _ in range(n)]))


def _trio_primitives() -> tuple[
    Callable[[], Awaitable[None]],
    Callable[[Callable[[], Awaitable[Any]], int], Awaitable[list[Any]]],
]:
    import trio

    async def sleep0() -> None:
        await trio.lowlevel.checkpoint()

    async def spawn_all(factory: Callable[[], Awaitable[Any]], n: int) -> list[Any]:
        results: list[Any] = [None] * n

        async def one(i: int) -> None:
            results[i] = await factory()

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)

        return results

    return sleep0, spawn_all


def check_loop(name: str) -> str | None:
    """Return why the loop ``name`` cannot run here, or None if it can."""
    if name not in LOOPS:
        return f"unknown loop {name!r}; choose one of {', '.join(LOOPS)}"

    module = {"asyncio": "asyncio", "uvloop": "uvloop", "trio": "trio"}[name]
    try:
        __import__(module)
    except ImportError as exc:
        return f"{module} is not installed ({exc})"

    return None


def make_backend(name: str) -> Backend:
    """Build the backend called ``name`` (``asyncio``, ``uvloop`` or ``trio``)."""
    problem = check_loop(name)
    if problem is not None:
        raise SystemExit(problem)

    if name == "trio":
        sleep0, spawn_all = _trio_primitives()
        return Backend(name, sleep0, spawn_all)

    return Backend(name, _asyncio_sleep0, _asyncio_spawn_all)
