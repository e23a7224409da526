"""An asyncio-native circuit breaker registry.

A :class:`Brama` registry holds named connections, each a circuit that opens
after consecutive failures, refuses calls while open, and heals itself: on
time it goes half-open, admits a bounded number of trial calls, and closes
again when one succeeds. Runs on asyncio, uvloop and trio through anyio.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._breaker import Breaker
from ._errors import (
    AlreadyRegistered,
    BramaError,
    CircuitOpenError,
    ConfigurationError,
    ConnectionNotFound,
    RegistryClosedError,
)
from ._events import Event, Subscription
from ._options import ConnectionOptions, RegistrySettings
from ._registry import Brama
from ._status import ConnectionStatus
from ._store import MemoryStore, Store
from ._types import EventType, ExpiryStrategy, State

if TYPE_CHECKING:
    from ._redis import RedisStore

__all__ = [
    "AlreadyRegistered",
    "Brama",
    "BramaError",
    "Breaker",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectionNotFound",
    "ConnectionOptions",
    "ConnectionStatus",
    "Event",
    "EventType",
    "ExpiryStrategy",
    "MemoryStore",
    "RedisStore",
    "RegistryClosedError",
    "RegistrySettings",
    "State",
    "Store",
    "Subscription",
]

__version__ = "0.1.0"

# A library does not configure logging: without a handler of the
# application's, records stop here instead of reaching logging's last resort.
logging.getLogger("brama_async").addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    # RedisStore needs the optional `redis` extra: import it only when asked.
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore

    raise AttributeError(f"module 'brama_async' has no attribute {name!r}")


for _name in __all__:
    if _name != "RedisStore":
        globals()[_name].__module__ = "brama_async"
del _name
