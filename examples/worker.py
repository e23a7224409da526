"""A background worker that protects calls to a flaky dependency.

Workers take jobs from a queue and send each one to an HTTP service.  While the
circuit is open they do not hammer the service: a refused job waits until the
circuit is due to go half-open, then tries again.  A subscriber logs every
event of the breaker through ``logging``.

Run it with ``python examples/worker.py``: it starts a local service on
127.0.0.1 that hangs for a while in the middle.  ``main(url)`` runs the
workers against any service (the tests use that).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
import anyio.abc

from _upstream import Upstream, get_status, run_plan
from brama_async import Brama, Breaker, CircuitOpenError, Subscription

log = logging.getLogger("worker")


@dataclass
class Stats:
    processed: list[int] = field(default_factory=list)
    failures: int = 0
    refusals: int = 0
    events: list[str] = field(default_factory=list)


async def deliver(url: str, job: int, within: float) -> None:
    """Send one job; ``TimeoutError`` if no answer, ``RuntimeError`` on a 5xx."""
    status = await get_status(f"{url}/jobs/{job}", within=within)
    if status >= 500:
        raise RuntimeError(f"service answered {status}")


async def work(
    name: str,
    breaker: Breaker,
    url: str,
    jobs: anyio.abc.ObjectReceiveStream[int],
    stats: Stats,
    within: float,
) -> None:
    """Process jobs until the queue is closed; retry each job until it is done."""
    async with jobs:
        async for job in jobs:
            while True:
                try:
                    await breaker.call(deliver, url, job, within)
                except CircuitOpenError as exc:
                    stats.refusals += 1

                    # Sleep until the circuit is due to go half-open.  While a
                    # trial runs, another worker may be refused with no time
                    # left; the floor keeps that from spinning.
                    await anyio.sleep(max(exc.remaining or 0.0, 0.05))
                except (RuntimeError, TimeoutError, OSError) as exc:
                    stats.failures += 1
                    log.info("%s: job %d failed (%r), retrying", name, job, exc)
                    await anyio.sleep(0.02)
                else:
                    stats.processed.append(job)
                    break


async def log_events(events: Subscription, stats: Stats) -> None:
    """Log every event the subscription delivers until it is closed or cancelled."""
    async with events:
        async for event in events:
            stats.events.append(event.type.value)
            log.warning(
                "%s: %s (state %s, failures %s)",
                event.identifier,
                event.type.value,
                event.state.value if event.state else "-",
                event.status.failure_count if event.status else "-",
            )


async def main(
    url: str,
    *,
    jobs: int = 30,
    workers: int = 3,
    expiry: float = 0.3,
    within: float = 0.2,
) -> Stats:
    """Push ``jobs`` jobs through ``workers`` workers; return what happened."""
    stats = Stats()
    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=jobs)

    async with Brama(max_attempts=3, expiry=expiry) as brama:
        # Subscribing is immediate: no event emitted after this line is missed.
        events = brama.subscribe(
            events=[
                "registered",
                "circuit_opened",
                "circuit_half_opened",
                "circuit_closed",
            ]
        )
        async with anyio.create_task_group() as logging_tasks:
            logging_tasks.start_soon(log_events, events, stats)
            breaker = await brama.register("delivery-service")

            async with anyio.create_task_group() as pool:
                for number in range(workers):
                    name = f"worker-{number}"
                    pool.start_soon(
                        work, name, breaker, url, receive.clone(), stats, within
                    )

                receive.close()
                async with send:
                    for job in range(jobs):
                        await send.send(job)
                        await anyio.sleep(0.01)

            # Closing ends the subscriber's loop once it has read what is queued.
            events.close()

    log.warning(
        "done: %d jobs, %d failed attempts, %d refusals",
        len(stats.processed),
        stats.failures,
        stats.refusals,
    )
    return stats


async def standalone() -> None:
    async with Upstream() as service, anyio.create_task_group() as tasks:
        tasks.start_soon(run_plan, service, [("ok", 0.3), ("hang", 1.2), ("ok", 1.0)])
        await main(service.url, jobs=100)
        tasks.cancel_scope.cancel()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(relativeCreated)6.0fms %(message)s"
    )
    anyio.run(standalone)
