"""Where circuit state lives: the store interface and the in-memory store."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._machine import Circuit
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

    # The hooks below are called only when ``shared`` is true.

    async def attach(self, circuit: Circuit) -> None:
        """A connection was registered: load its shared state."""
        raise NotImplementedError

    def detach(self, circuit: Circuit, *, delete: bool) -> None:
        """A connection was unregistered (``delete``: its shared state goes too)
        or removed by this process's cleanup sweep (the shared state stays for
        the other processes, and expires on its own)."""
        raise NotImplementedError

    async def admit(self, circuit: Circuit) -> tuple[int, bool]:
        """Admit a call (generation, is-trial) or raise ``CircuitOpenError``."""
        raise NotImplementedError

    async def settle_error(
        self, circuit: Circuit, generation: int, trial: bool, error: Exception
    ) -> None:
        """Record a call that raised an ``Exception`` (failure or excluded)."""
        raise NotImplementedError

    async def record_failure(
        self,
        circuit: Circuit,
        generation: int,
        trial: bool,
        error: Exception | None,
        reason: str | None,
    ) -> None:
        """Record one counted failure (a call's or a manual report)."""
        raise NotImplementedError

    async def settle_success(
        self, circuit: Circuit, generation: int, trial: bool
    ) -> None:
        """Record a success that is not the plain closed-state fast path."""
        raise NotImplementedError

    def settle_interrupted(self, circuit: Circuit, trial: bool) -> None:
        """A call ended in cancellation or another ``BaseException``; never awaits."""
        raise NotImplementedError

    async def publish(self, circuit: Circuit, event: str, reason: str | None) -> None:
        """Share the state a manual control just set on ``circuit``."""
        raise NotImplementedError


class MemoryStore(Store):
    """Keeps every circuit in this process only. The default."""

    def __repr__(self) -> str:
        return "MemoryStore()"
