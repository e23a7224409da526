"""The self-healing cleanup sweep and the activity index it reads.

Each sweep starts a new period, and so does every few thousand placements.
The index files every connection under a period: the one it was registered
in, or the one its last activity fell in when a sweep last looked at it.
Activity itself never touches the index (it only stamps times on the
connection), so calls pay nothing for it. A sweep reviews the periods that
ended before the inactivity cutoff, and the one period the cutoff falls in;
a connection found active since is filed under the period of its activity,
one found idle is a candidate. The cost of a sweep therefore follows the
number of candidates, plus connections that were active since their last
review (each at most once per threshold period) and the members of one
period, not the size of the registry.

Removal takes two sweeps: the first marks an idle candidate stale, a later
one removes it if it is still idle. Open circuits and connections with calls
in flight are never marked nor removed.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Final

import anyio.lowlevel

from ._machine import GONE, OPEN, Circuit

__all__ = ["ActivityIndex", "SweepSummary", "sweep"]

PERIOD_SIZE: Final = 4096
"""Connections filed in one period before a new one starts: keeps the one
period a sweep must review in part small, however fast connections come."""

YIELD_EVERY: Final = 0.001
"""Seconds of work a sweep does at most between two yields to the loop."""

CHECK_EVERY: Final = 64
"""Connections reviewed between two looks at the time."""

SweepSummary = dict[str, float]


class ActivityIndex:
    """Connections filed by the period of their last known activity.

    A period starts at each sweep, and whenever the current one holds
    :data:`PERIOD_SIZE` connections. Registration files a connection in the
    current period; a sweep that finds a connection active since files it in
    the period of that activity.
    """

    __slots__ = ("_members", "_starts", "stale")

    def __init__(self, now: float) -> None:
        # Parallel lists, oldest period first; the last period is current.
        self._starts: list[float] = [now]
        self._members: list[list[Circuit]] = [[]]
        self.stale: list[Circuit] = []

    def place(self, circuit: Circuit, now: float) -> None:
        """File a connection in the current period (``now`` is the time)."""
        members = self._members[-1]
        if len(members) >= PERIOD_SIZE:
            self.start_period(now)
            members = self._members[-1]

        members.append(circuit)

    def place_by_activity(self, circuit: Circuit, last_activity: float) -> None:
        """File a connection in the period its last activity fell in."""
        position = bisect.bisect_right(self._starts, last_activity) - 1
        self._members[max(position, 0)].append(circuit)

    def start_period(self, now: float) -> None:
        """Open a new current period (never earlier than the last one)."""
        self._starts.append(max(now, self._starts[-1]))
        self._members.append([])

    def pop_ended(self, cutoff: float) -> list[Circuit] | None:
        """Remove and return the oldest period if it ended by ``cutoff``.

        A period ends when the next one starts; the current one never ends.
        """
        if len(self._starts) < 2 or self._starts[1] > cutoff:
            return None

        del self._starts[0]
        return self._members.pop(0)

    def take_boundary(self, cutoff: float) -> list[Circuit]:
        """Take the members of the oldest period if it began by ``cutoff``.

        That period has not ended by ``cutoff``, so only some of its members
        can be idle for long enough; the sweep files the others back.
        """
        if self._starts[0] > cutoff:
            return []

        members = self._members[0]
        self._members[0] = []
        return members


async def sweep(
    index: ActivityIndex,
    clock: Callable[[], float],
    inactive_threshold: float,
    mark_stale: Callable[[Circuit], None],
    remove: Callable[[Circuit], None],
) -> SweepSummary:
    """Run one sweep and return its summary.

    ``mark_stale`` and ``remove`` are the registry's callbacks; they emit the
    events. The sweep yields to the event loop whenever it has worked for
    :data:`YIELD_EVERY` seconds, and takes connections off its work lists one
    by one, so freeing those lists never costs a long pause either. If it is
    cancelled while yielding, nothing is lost: each connection reviewed has
    already been filed again, marked or removed, and the ones not reached yet
    are filed back as they were.
    """
    started = time.perf_counter()
    now = clock()
    cutoff = now - inactive_threshold
    reviewed = marked = removed = 0
    index.start_period(now)

    previously_stale, index.stale = index.stale, []
    work: list[tuple[list[Circuit], bool]] = [(previously_stale, True)]
    while (ended := index.pop_ended(cutoff)) is not None:
        work.append((ended, False))
    work.append((index.take_boundary(cutoff), False))

    slice_started = time.perf_counter()
    countdown = CHECK_EVERY
    for position, (members, were_stale) in enumerate(work):
        while members:
            countdown -= 1
            if not countdown:
                countdown = CHECK_EVERY
                if time.perf_counter() - slice_started >= YIELD_EVERY:
                    try:
                        await anyio.lowlevel.checkpoint()
                    except BaseException:
                        _refile(index, work[position:])
                        raise
                    slice_started = time.perf_counter()

            circuit = members.pop()
            if circuit.code == GONE:
                continue

            reviewed += 1
            if circuit.started != circuit.reviewed_started:
                # Calls on the closed fast path are counted, not timestamped:
                # they happened since the last review, so "now" is the only
                # time that can never make a connection look idle too early.
                circuit.reviewed_started = circuit.started
                circuit.touched_at = now
            last_activity = circuit.last_activity_at
            active = last_activity >= cutoff
            if were_stale and circuit.stale_since is not None:
                active = active or last_activity >= circuit.stale_since
            busy = circuit.code == OPEN or circuit.in_flight > 0
            if were_stale and not (active or busy):
                remove(circuit)
                removed += 1
                continue

            circuit.stale_since = None
            if active:
                index.place_by_activity(circuit, last_activity)
                continue

            if busy:
                index.place(circuit, now)
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
    """File back what a cancelled sweep did not reach, marks kept."""
    for members, were_stale in pending:
        for circuit in members:
            if circuit.code == GONE:
                continue

            if were_stale:
                index.stale.append(circuit)
            else:
                index.place_by_activity(circuit, circuit.last_activity_at)
