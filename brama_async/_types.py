"""The small enumerations shared by every other module."""

from __future__ import annotations

import enum

__all__ = ["EventType", "ExpiryStrategy", "State"]


class State(str, enum.Enum):
    """The state of one circuit.

    Members compare equal to their string values, so ``status.state == "open"``
    works as well as ``status.state is State.OPEN``.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value


class ExpiryStrategy(str, enum.Enum):
    """How long an open circuit stays open before it goes half-open."""

    FIXED = "fixed"
    PROGRESSIVE = "progressive"

    def __str__(self) -> str:
        return self.value


class EventType(str, enum.Enum):
    """The kinds of :class:`~brama_async.Event` a registry emits."""

    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    SUCCESS = "success"
    FAILURE = "failure"
    CIRCUIT_OPENED = "circuit_opened"
    CIRCUIT_HALF_OPENED = "circuit_half_opened"
    CIRCUIT_CLOSED = "circuit_closed"
    CIRCUIT_RESET = "circuit_reset"
    STATE_CHANGE = "state_change"
    EXPIRY_CHANGED = "expiry_changed"
    CONNECTION_STALE = "connection_stale"
    CONNECTION_REMOVED = "connection_removed"
    CLEANUP = "cleanup"

    def __str__(self) -> str:
        return self.value
