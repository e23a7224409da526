"""The self-healing cleanup sweep and the activity index it reads.

The index files every connection in a bucket: the bucket that was current
when it was registered, or when a sweep last looked at it. Activity itself
never touches the index (it only stamps times on the connection), so calls
pay nothing for it. A sweep opens a new bucket, then reviews only buckets
whose period ended before the inactivity cutoff; a connection found active
since is moved to the new bucket, one found idle is a candidate. The cost of
a sweep therefore follows the number of candidates (plus connections that
were active since their last review, each once per threshold period), not the
size of the registry.

Removal takes two sweeps: the first marks an idle candidate stale, a later
one removes it if it is still idle. Open circuits and connections with calls
in flight are never marked nor removed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio.lowlevel

from ._machine import GONE, OPEN, Circuit

__all__ = ["ActivityIndex", "SweepSummary", "sweep"]

BATCH: Final = 1024
"""Connections reviewed between two yields to the event loop."""

SweepSummary = dict[str, float]


class ActivityIndex:
    """Connections filed by the period they were last placed in."""

    __slots__ = ("_buckets", "stale")

    def __init__(self, now: float) -> None:
        # (start time, members) pairs, oldest first; the last is current.
        self._buckets: deque[tuple[float, list[Circuit]]] = deque([(now, [])])
        self.stale: list[Circuit] = []

    def place(self, circuit: Circuit) -> None:
        """File a connection in the current bucket."""
        self._buckets[-1][1].append(circuit)

    def start_period(self, now: float) -> None:
        """Open a new current bucket (each sweep starts one)."""
        if self._buckets[-1][1]:
            self._buckets.append((now, []))
        else:
            self._buckets[-1] = (now, [])

    def pop_expired(self, cutoff: float) -> list[Circuit] | None:
        """Remove and return the oldest bucket whose period ended by ``cutoff``.

        A bucket's period ends when the next one starts; the current bucket
        never qualifies.
        """
        if len(self._buckets) < 2 or self._buckets[1][0] > cutoff:
            return None

        return self._buckets.popleft()[1]


async def sweep(
    index: ActivityIndex,
    clock: Callable[[], float],
    inactive_threshold: float,
    mark_stale: Callable[[Circuit], None],
    remove: Callable[[Circuit], None],
) -> SweepSummary:
    """Run one sweep and return its summary.

    ``mark_stale`` and ``remove`` are the registry's callbacks; they emit the
    events. The sweep yields to the event loop every :data:`BATCH` reviews.
    If it is cancelled between batches, nothing is lost: each reviewed
    connection has already been re-filed, marked or removed, and connections
    of a bucket not yet reviewed are put back.
    """
    started = time.perf_counter()
    now = clock()
    cutoff = now - inactive_threshold
    reviewed = marked = removed = 0
    index.start_period(now)

    previously_stale, index.stale = index.stale, []
    batches: list[tuple[list[Circuit], bool]] = [(previously_stale, True)]
    while True:
        bucket = index.pop_expired(cutoff)
        if bucket is None:
            break
        batches.append((bucket, False))

    for position, (members, were_stale) in enumerate(batches):
        for offset, circuit in enumerate(members):
            if offset and offset % BATCH == 0:
                try:
                    await anyio.lowlevel.checkpoint()
                except BaseException:
                    _refile(
                        index,
                        [(members[offset:], were_stale), *batches[position + 1 :]],
                    )
                    raise

            if circuit.code == GONE:
                continue

            reviewed += 1
            last_activity = circuit.last_activity_at
            active = last_activity >= cutoff
            if were_stale and circuit.stale_since is not None:
                active = active or last_activity > circuit.stale_since
            busy = circuit.code == OPEN or circuit.in_flight > 0
            if were_stale and not (active or busy):
                remove(circuit)
                removed += 1
                continue

            circuit.stale_since = None
            if active or busy:
                index.place(circuit)
                continue

            circuit.stale_since = now
            index.stale.append(circuit)
            mark_stale(circuit)
            marked += 1

    return {
        "reviewed": reviewed,
        "marked_stale": marked,
        "removed": removed,
        "duration": time.perf_counter() - started,
    }


def _refile(index: ActivityIndex, pending: list[tuple[list[Circuit], bool]]) -> None:
    """Put back what a cancelled sweep did not reach, marks kept."""
    for members, were_stale in pending:
        for circuit in members:
            if circuit.code == GONE:
                continue

            if were_stale:
                index.stale.append(circuit)
            else:
                index.place(circuit)
