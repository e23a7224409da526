"""Where circuit state lives: the store interface and the in-memory store."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._registry import Brama

__all__ = ["MemoryStore", "Store"]


class Store:
    """Base class of circuit stores.

    A store whose :attr:`shared` is ``False`` keeps nothing outside the
    registry's own records, and the registry never awaits it on the call
    path. A shared store (such as ``RedisStore``) is told about outcomes and
    transitions so that other processes see them, and is awaited only off the
    closed-state success path.
    """

    shared: bool = False
    """Whether state is shared with other registries through this store."""

    async def start(self, registry: Brama, task_group: TaskGroup) -> None:
        """Called once when the registry is entered; may start tasks in the group."""

    async def stop(self) -> None:
        """Called once when the registry closes, before its tasks are cancelled."""


class MemoryStore(Store):
    """Keeps every circuit in this process only. The default."""

    def __repr__(self) -> str:
        return "MemoryStore()"
