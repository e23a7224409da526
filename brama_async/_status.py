"""Frozen snapshots of a connection, for callers and event subscribers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from ._types import ExpiryStrategy, State

__all__ = ["ConnectionStatus"]


class ConnectionStatus(NamedTuple):
    """A snapshot of one connection, taken when it was asked for.

    An immutable named tuple: cheap to build on every transition, and
    readable by attribute.

    Timestamps are timezone-aware UTC datetimes, for display only: every
    timing decision uses the registry's monotonic clock. Durations are float
    seconds.

    Attributes:
        identifier: The connection's identifier.
        scope: Its scope, or ``None``.
        state: Closed, open or half-open; an open circuit whose expiry has
            passed already reads as half-open.
        failure_count: Consecutive counted failures. It keeps its value while
            the circuit is open and resets on close and on success.
        max_attempts: Consecutive failures that open the circuit.
        expiry: The configured open duration (the fixed strategy's duration).
        expiry_strategy: ``fixed`` or ``progressive``.
        initial_expiry: The first progressive duration in force.
        max_expiry: The progressive cap in force.
        backoff_factor: The progressive growth factor.
        half_open_max_calls: Trial calls admitted at once while half-open.
        expiry_enabled: ``False`` after ``disable_expiry()``.
        trips: Consecutive opens since the circuit last recovered or was reset.
        opened_at: When the circuit last opened, or ``None``.
        half_open_at: When an open circuit goes half-open, or ``None``.
        last_failure_at: When the last failure was counted, or ``None``.
        last_success_at: When the last timestamped success was recorded, or
            ``None``. To keep the closed-state fast path free of clock reads,
            a success that changes nothing (closed, no failures to reset, no
            ``success`` subscriber) is counted but not timestamped; every
            other success is.
        last_activity_at: The latest timestamped registration, call, report
            or manual control. Untimestamped successes are seen by the next
            cleanup sweep that reviews the connection, which counts them as
            activity at the time of that sweep.
        last_failure_reason: The reason given with the last failure.
        in_flight: Calls running through the breaker now.
        trials_in_flight: Half-open trial slots taken now.
        stale: Marked stale by the cleanup sweep, with no activity since.
        metadata: The read-only metadata given at registration.
    """

    identifier: str
    scope: str | None
    state: State
    failure_count: int
    max_attempts: int
    expiry: float
    expiry_strategy: ExpiryStrategy
    initial_expiry: float
    max_expiry: float
    backoff_factor: float
    half_open_max_calls: int
    expiry_enabled: bool
    trips: int
    opened_at: datetime | None
    half_open_at: datetime | None
    last_failure_at: datetime | None
    last_success_at: datetime | None
    last_activity_at: datetime
    last_failure_reason: str | None
    in_flight: int
    trials_in_flight: int
    stale: bool
    metadata: Mapping[str, Any]
