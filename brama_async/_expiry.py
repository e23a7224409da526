"""Open durations and the one timer that serves every open circuit.

A circuit that opens gets an entry in a heap keyed by the monotonic time it is
due to go half-open. One background task (see the registry) sleeps until the
earliest entry, so a hundred thousand open circuits cost a hundred thousand
small tuples, not a hundred thousand tasks. Entries are never removed early:
an entry that no longer matches its circuit (closed, re-opened, rescheduled)
is skipped when it comes up, and the heap is rebuilt when such dead entries
outnumber the live ones.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING

from ._types import ExpiryStrategy

if TYPE_CHECKING:
    from ._machine import Circuit
    from ._options import ConnectionOptions

__all__ = ["ExpiryHeap", "open_duration"]


def open_duration(options: ConnectionOptions, trips: int) -> float:
    """Return how long the ``trips``-th consecutive open lasts, in seconds.

    The fixed strategy always gives ``expiry``. The progressive strategy gives
    ``min(max_expiry, initial_expiry * backoff_factor ** (trips - 1))``,
    computed in constant time and without overflow for any ``trips``: once the
    geometric term would pass the cap, the cap is returned without computing
    the power.
    """
    if options.expiry_strategy is ExpiryStrategy.FIXED:
        return options.expiry

    initial = options.effective_initial_expiry
    cap = options.effective_max_expiry
    factor = options.backoff_factor
    exponent = max(trips, 1) - 1
    if exponent == 0 or factor == 1.0:
        return min(initial, cap)

    # log(cap / initial) / log(factor) is the exponent at which the cap is
    # reached; beyond it (with a margin for rounding) the power is not needed.
    steps_to_cap = math.log(cap / initial) / math.log(factor)
    if exponent > steps_to_cap + 1.0:
        return cap

    return min(cap, initial * factor**exponent)


class ExpiryHeap:
    """The pending half-open deadlines of open circuits."""

    __slots__ = ("_dead", "_entries", "_sequence")

    def __init__(self) -> None:
        self._entries: list[tuple[float, int, Circuit, int]] = []
        self._sequence = itertools.count()
        self._dead = 0

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, circuit: Circuit) -> float:
        """Add the circuit's current deadline; return the earliest deadline.

        An entry the circuit had already goes dead.
        """
        deadline = circuit.half_open_at
        assert deadline is not None
        self.forget(circuit)
        entry = (deadline, next(self._sequence), circuit, circuit.generation)
        heapq.heappush(self._entries, entry)
        circuit.scheduled = True

        return self._entries[0][0]

    def forget(self, circuit: Circuit) -> None:
        """Note that the circuit's entry, if it has one, is dead.

        Dead entries stay in the heap until they come up; the heap is
        rebuilt when they outnumber the live ones.
        """
        if not circuit.scheduled:
            return

        circuit.scheduled = False
        self._dead += 1
        if self._dead > 1024 and self._dead * 2 > len(self._entries):
            self._entries = [e for e in self._entries if _is_live(e)]
            heapq.heapify(self._entries)
            self._dead = 0

    def next_deadline(self) -> float | None:
        """Return the earliest deadline, live or dead, or ``None`` when empty."""
        if self._entries:
            return self._entries[0][0]

        return None

    def pop_due(self, now: float, limit: int) -> list[Circuit]:
        """Remove and return up to ``limit`` circuits whose live deadline passed."""
        due: list[Circuit] = []
        entries = self._entries
        while entries and entries[0][0] <= now and len(due) < limit:
            entry = heapq.heappop(entries)
            if _is_live(entry):
                entry[2].scheduled = False
                due.append(entry[2])
            elif self._dead > 0:
                self._dead -= 1

        return due


def _is_live(entry: tuple[float, int, Circuit, int]) -> bool:
    deadline, _, circuit, generation = entry

    return (
        circuit.scheduled
        and circuit.generation == generation
        and circuit.half_open_at == deadline
    )
