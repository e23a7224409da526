"""The guarded functions every contender runs, and the floor's refusal error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class WorkFailure(Exception):
    """Raised by :func:`fail`; every breaker must count it as a failure."""


class FloorRefusal(Exception):
    """Raised by :func:`refuse`: the cheapest possible "refusal" of a call."""


async def succeed() -> int:
    """Return 1 at once: the cheapest guarded call."""
    return 1


async def fail() -> int:
    """Raise a fresh :class:`WorkFailure`."""
    raise WorkFailure("boom")


async def refuse() -> int:
    """Raise a fresh :class:`FloorRefusal` (the open-state floor)."""
    raise FloorRefusal("refused")


def make_yielding(
    sleep0: Callable[[], Awaitable[None]],
) -> Callable[[], Awaitable[int]]:
    """Return a guarded function that yields to the loop once, then returns 1."""

    async def yielding() -> int:
        await sleep0()
        return 1

    return yielding


class Counter:
    """How often a guarded function made by :func:`make_counted` actually ran."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0


def make_counted(
    inner: Callable[[], Awaitable[int]] = succeed,
) -> tuple[Callable[[], Awaitable[int]], Counter]:
    """Return an ``async def`` that counts its runs, then awaits ``inner``.

    It is a real coroutine function, so decorators that inspect the function
    (``inspect.iscoroutinefunction``) take their async path.
    """
    counter = Counter()

    async def counted() -> int:
        counter.calls += 1
        return await inner()

    return counted, counter
