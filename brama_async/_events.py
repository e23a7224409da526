"""Events and subscriptions.

Each subscription has its own bounded queue. Publishing is synchronous and
never waits: a full queue drops its oldest event and counts it, so a slow or
stopped subscriber can never block a call or the registry. A subscriber's own
``filter`` predicate runs at publish time inside a ``try``; if it raises, the
event is not delivered to that subscriber, the error is counted on the
subscription and logged once, and the caller never sees it.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Any, Final, NamedTuple

import anyio

from ._errors import ConfigurationError
from ._options import count, name, show
from ._status import ConnectionStatus
from ._types import EventType, State

__all__ = ["Event", "EventHub", "Subscription"]

logger = logging.getLogger("brama_async")

_NO_DATA: Final[Mapping[str, Any]] = MappingProxyType({})

MAX_QUEUED: Final = 10_000_000


class Event(NamedTuple):
    """Something that happened to a connection, or a cleanup summary.

    An immutable named tuple.

    Attributes:
        type: What happened.
        identifier: The connection's identifier (``None`` for ``cleanup``).
        scope: The connection's scope, or ``None``.
        timestamp: When it happened, as an aware UTC datetime.
        state: The state after the event (``None`` for ``cleanup``).
        previous_state: The state before, on transitions; else ``None``.
        reason: Why, when known (a failure's ``repr``, a manual reason...).
        status: A snapshot of the connection taken after the change was
            committed, or ``None`` for ``cleanup``.
        data: Extra details: the ``cleanup`` summary (``reviewed``,
            ``marked_stale``, ``removed``, ``duration``, ``connections``).
        origin: ``None`` when this process made the change; a store that
            shares circuits between processes names the other process here.
    """

    type: EventType
    identifier: str | None
    scope: str | None
    timestamp: datetime
    state: State | None
    previous_state: State | None = None
    reason: str | None = None
    status: ConnectionStatus | None = None
    data: Mapping[str, Any] = _NO_DATA
    origin: str | None = None


EventFilter = Callable[[Event], bool]


class Subscription:
    """A stream of events matching every filter given to ``subscribe()``.

    Use it as an async iterator, usually inside ``async with``::

        async with brama.subscribe(events={"circuit_opened"}) as events:
            async for event in events:
                ...

    Iteration ends after :meth:`close` (events already queued are still
    delivered first) or when the registry closes. Cancelling a task that waits
    for the next event leaves the subscription intact.

    Attributes:
        dropped: Events dropped because the queue was full (oldest first).
        filter_errors: Events skipped because the ``filter`` predicate raised.
    """

    def __init__(
        self,
        hub: EventHub,
        types: frozenset[EventType] | None,
        connection: str | None,
        scope: str | None,
        predicate: EventFilter | None,
        max_queued: int,
    ) -> None:
        self._hub = hub
        self.types: Final = types
        self.connection: Final = connection
        self.scope: Final = scope
        self._predicate = predicate
        self.max_queued: Final = max_queued
        self._queue: deque[Event] = deque()
        self._wakeup: anyio.Event | None = None
        self._closed = False
        self.dropped = 0
        self.filter_errors = 0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called or the registry closed."""
        return self._closed

    def __len__(self) -> int:
        """The number of events queued and not yet read."""
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving events. Safe to call more than once."""
        if self._closed:
            return

        self._closed = True
        self._hub.remove(self)
        self._wake()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration

            # Every task waiting on this subscription waits on one event, so
            # close() wakes them all; the first to run takes the next event.
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()

        return self._queue.popleft()

    def get_nowait(self) -> Event | None:
        """Return the next queued event, or ``None`` if none is queued."""
        if self._queue:
            return self._queue.popleft()

        return None

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    def _matches(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False

        if self.connection is not None and event.identifier != self.connection:
            return False

        if self.scope is not None and event.scope != self.scope:
            return False

        if self._predicate is None:
            return True

        try:
            return bool(self._predicate(event))
        except Exception:
            self.filter_errors += 1
            if self.filter_errors == 1:
                logger.warning(
                    "event filter %r raised; events it fails on are skipped",
                    self._predicate,
                    exc_info=True,
                )
            return False

    def _offer(self, event: Event) -> None:
        if self._closed or not self._matches(event):
            return

        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self.dropped += 1

        self._queue.append(event)
        self._wake()


class EventHub:
    """The set of live subscriptions of one registry."""

    __slots__ = ("_subscriptions", "_wanted", "on_change", "wants_all")

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._wanted: frozenset[EventType] = frozenset()
        self.wants_all = False
        self.on_change: Callable[[], None] | None = None

    @property
    def wants_any(self) -> bool:
        """Whether any subscription is open."""
        return bool(self._subscriptions)

    def wants(self, event_type: EventType) -> bool:
        """Whether any subscription could want events of this type."""
        return self.wants_all or event_type in self._wanted

    def subscribe(
        self,
        events: Iterable[EventType | str] | None,
        connection: str | None,
        scope: str | None,
        predicate: EventFilter | None,
        max_queued: int,
    ) -> Subscription:
        """Validate the filters and add a subscription."""
        types = _event_types(events)
        if connection is not None:
            connection = name("connection", connection)
        if scope is not None:
            scope = name("scope", scope)
        if inspect.iscoroutinefunction(predicate):
            raise ConfigurationError(
                "filter must be a plain (not async) callable taking an Event, "
                f"got the coroutine function {show(predicate)}"
            )
        if predicate is not None and not callable(predicate):
            raise ConfigurationError(
                "filter must be a callable taking an Event, or None, "
                f"got {show(predicate)}"
            )
        max_queued = count("max_queued", max_queued)
        if max_queued > MAX_QUEUED:
            raise ConfigurationError(
                f"max_queued must be an int from 1 to {MAX_QUEUED}, "
                f"got {show(max_queued)}"
            )

        subscription = Subscription(
            self, types, connection, scope, predicate, max_queued
        )
        self._subscriptions.append(subscription)
        self._refresh()

        return subscription

    def remove(self, subscription: Subscription) -> None:
        """Forget a subscription (called by its ``close()``)."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self._refresh()

    def publish(self, event: Event) -> None:
        """Offer ``event`` to every subscription, in subscription order."""
        for subscription in tuple(self._subscriptions):
            subscription._offer(event)

    def close_all(self) -> None:
        """Close every subscription: their iterations end."""
        for subscription in tuple(self._subscriptions):
            subscription.close()

    def _refresh(self) -> None:
        wanted: set[EventType] = set()
        wants_all = False
        for subscription in self._subscriptions:
            if subscription.types is None:
                wants_all = True
            else:
                wanted.update(subscription.types)

        self._wanted = frozenset(wanted)
        self.wants_all = wants_all
        if self.on_change is not None:
            self.on_change()


def _event_types(
    events: Iterable[EventType | str] | None,
) -> frozenset[EventType] | None:
    if events is None:
        return None

    allowed = ", ".join(t.value for t in EventType)
    if isinstance(events, (str, EventType)) or not isinstance(events, Iterable):
        raise ConfigurationError(
            f"events must be an iterable of event types or None, got {show(events)}; "
            f"allowed types: {allowed}"
        )

    types: set[EventType] = set()
    for item in events:
        try:
            types.add(EventType(item))
        except ValueError:
            raise ConfigurationError(
                f"unknown event type {show(item)} in events; allowed: {allowed}"
            ) from None

    return frozenset(types)
