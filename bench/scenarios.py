"""The scenarios: each is one async function that takes one sample.

A sample function gets the contender, the run's :class:`Settings` and the
repetition index, and returns a dict of metric values. Adding a scenario is one
such function plus one :class:`Scenario` entry in :data:`SCENARIOS`; a
contender takes part when its ``scenarios`` set names the scenario's key.
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from bench import _work
from bench._timing import Heartbeat
from bench.contenders import Contender

NEVER = 10**9  # a failure threshold the run never reaches
LONG = 3600.0  # an open duration that does not end during the run
HALF_OPEN_RESET = 0.05  # open duration for the half-open scenario (real time)


@dataclass
class Settings:
    """Sizes and repetitions of one run."""

    reps: int = 7
    target_ms: float = 100.0
    max_calls: int = 200_000
    warm_calls: int = 2_000
    tasks: int = 10_000
    callers: int = 1_000
    register: int = 100_000
    open_many: int = 100_000
    expiry: int = 100_000
    expiry_after: float = 0.5
    sweep: int = 1_000_000
    sweep_candidates: float = 0.10
    heavy_reps: int = 3
    mem_reps: int = 2
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> Settings:
        """Small sizes for a smoke test: the whole run takes seconds."""
        return cls(
            reps=3,
            target_ms=4.0,
            max_calls=4_000,
            warm_calls=300,
            tasks=1_000,
            callers=200,
            register=2_000,
            open_many=2_000,
            expiry=2_000,
            expiry_after=0.2,
            sweep=20_000,
            heavy_reps=1,
            mem_reps=1,
            quick=True,
        )


@dataclass(frozen=True)
class Metric:
    """One number a scenario reports. ``kind`` picks the formatting:
    ``time`` (nanoseconds), ``ms`` (milliseconds), ``bytes`` or ``count``."""

    key: str
    label: str
    kind: str = "time"


Sample = Callable[[Contender, Settings, int, Any], Awaitable[dict[str, float]]]


@dataclass(frozen=True)
class Scenario:
    """A timed scenario.

    ``sample(contender, settings, rep, calls)`` returns one value per metric.
    ``calibrate`` makes the harness pick ``calls`` per contender so one sample
    takes about ``settings.target_ms``; otherwise ``calls`` is None.
    ``floor`` names the contender the first metric is divided by;
    ``reps`` maps the settings to this scenario's number of repetitions.
    """

    key: str
    title: str
    what: str
    metrics: tuple[Metric, ...]
    sample: Sample
    floor: str | None = None
    calibrate: bool = False
    reps: Callable[[Settings], int] = field(default=lambda s: s.reps)
    size: Callable[[Settings], int] | None = None


# ---------------------------------------------------------------------------
# per-breaker scenarios
# ---------------------------------------------------------------------------


async def _settle() -> None:
    gc.collect()


async def sample_closed(
    c: Contender, s: Settings, rep: int, calls: int
) -> dict[str, float]:
    """Closed-state success: ns per call of ``await f()`` through the breaker."""
    handle = await c.make(f"closed-{rep}", NEVER, LONG)
    await _settle()
    elapsed = await c.time_ok(handle, _work.succeed, calls)
    await c.drop(handle)
    return {"per_call": elapsed / calls}


async def sample_open(
    c: Contender, s: Settings, rep: int, calls: int
) -> dict[str, float]:
    """Open-state refusal: ns per refused call, error caught."""
    handle = await c.make(f"open-{rep}", 3, LONG)
    await c.trip(handle, 3)
    await _settle()
    elapsed = await c.time_raising(handle, _work.succeed, calls, c.open_errors())
    await c.drop(handle)
    return {"per_call": elapsed / calls}


async def sample_failure(
    c: Contender, s: Settings, rep: int, calls: int
) -> dict[str, float]:
    """Failure below the threshold: ns per failing call, error caught."""
    handle = await c.make(f"failure-{rep}", NEVER, LONG)
    await _settle()
    elapsed = await c.time_raising(handle, _work.fail, calls, (_work.WorkFailure,))
    await c.drop(handle)
    return {"per_call": elapsed / calls}


async def sample_concurrent(
    c: Contender, s: Settings, rep: int, calls: Any
) -> dict[str, float]:
    """``settings.tasks`` concurrent calls on one closed circuit; f yields once."""
    handle = await c.make(f"concurrent-{rep}", NEVER, LONG)
    fn = _work.make_yielding(c.backend.sleep0)
    await _settle()
    elapsed = await c.time_concurrent(handle, fn, s.tasks)
    await c.drop(handle)
    return {"total": elapsed, "per_task": elapsed / s.tasks}


async def sample_half_open(
    c: Contender, s: Settings, rep: int, calls: Any
) -> dict[str, float]:
    """``settings.callers`` concurrent callers arrive at a half-open circuit.

    The trial's function yields once, so every other caller arrives while the
    trial is in flight. Reports the time for all callers to finish, and how
    many ran the function (a breaker limiting trials to one admits exactly 1).
    """
    handle = await c.make(f"half-open-{rep}", 3, HALF_OPEN_RESET)
    await c.trip(handle, 3)
    await c.to_half_open(handle, HALF_OPEN_RESET)

    fn, counter = _work.make_counted(_work.make_yielding(c.backend.sleep0))
    guarded = c.bind(handle, fn)
    errors = c.open_errors()
    refused = 0

    async def caller() -> int:
        nonlocal refused
        try:
            value: int = await guarded()
            return value
        except errors:
            refused += 1
            return 1

    await _settle()
    start = time.perf_counter_ns()
    await c.backend.spawn_all(caller, s.callers)
    elapsed = time.perf_counter_ns() - start

    await c.drop(handle)
    return {
        "per_caller": elapsed / s.callers,
        "admitted": float(counter.calls),
        "refused": float(refused),
    }


async def sample_register(
    c: Contender, s: Settings, rep: int, calls: Any
) -> dict[str, float]:
    """Build ``settings.register`` named breakers: time each, then bytes each.

    The time pass runs without tracemalloc; the memory pass (first
    ``settings.mem_reps`` repetitions only) measures what stays allocated after
    a full collection.
    """
    n = s.register
    await _settle()
    start = time.perf_counter_ns()
    kept = await c.make_many(n)
    elapsed = time.perf_counter_ns() - start
    await c.drop_many(kept)
    del kept
    result = {"per_item": elapsed / n}

    if rep < s.mem_reps:
        await _settle()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = await c.make_many(n)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        await c.drop_many(kept)
        del kept
        result["bytes_per_item"] = (after - before) / n

    await _settle()
    return result


# ---------------------------------------------------------------------------
# registry scenarios (contenders with a ``registry(**settings)`` factory)
# ---------------------------------------------------------------------------


async def sample_open_many(
    c: Any, s: Settings, rep: int, calls: Any
) -> dict[str, float]:
    """``settings.open_many`` open circuits, each with a pending expiry: bytes each.

    Measured from an empty entered registry to all circuits registered and
    opened for an hour (so every expiry is still pending), after a collection.
    """
    n = s.open_many
    await _settle()
    async with c.registry(cleanup_interval=86_400.0) as brama:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            register = brama.register
            for i in range(n):
                await register(f"svc-{i}")
            gc.collect()
            registered = tracemalloc.get_traced_memory()[0]

            open_circuit = brama.open_circuit
            for i in range(n):
                await open_circuit(f"svc-{i}", expiry=LONG)
            gc.collect()
            opened = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

        states = {str(brama.status(f"svc-{i}").state) for i in (0, n - 1)}

    await _settle()
    if states != {"open"}:
        raise RuntimeError(f"circuits not open after open_circuit: {states}")

    return {
        "bytes_per_open": (opened - before) / n,
        "bytes_per_registered": (registered - before) / n,
    }


async def sample_expiry(c: Any, s: Settings, rep: int, calls: Any) -> dict[str, float]:
    """``settings.expiry`` open circuits whose expiries all fall due together.

    Real clock. Every circuit is opened with ``expiry = deadline - now`` so all
    share one deadline, at least ``settings.expiry_after`` seconds after the
    last one is opened. A subscriber records when it receives the last
    ``circuit_half_opened`` event; the event's own timestamp gives when the
    transition happened. Also reports the longest loop stall around the deadline.
    """
    n = s.expiry
    names = [f"svc-{i}" for i in range(n)]
    backend = c.backend

    async with c.registry(cleanup_interval=86_400.0, clock=time.monotonic) as brama:
        start = time.monotonic()
        for name in names:
            await brama.register(name)
        budget = 3.0 * (time.monotonic() - start) + s.expiry_after
        deadline = time.monotonic() + budget
        wall_deadline = time.time() + (deadline - time.monotonic())

        heartbeat = Heartbeat(backend.sleep0)
        received = 0
        last_received = math.nan
        last_stamp = -math.inf
        done = anyio.Event()

        async with brama.subscribe(
            events=["circuit_half_opened"], max_queued=n + 16
        ) as subscription:

            async def consume() -> None:
                nonlocal received, last_received, last_stamp
                async for event in subscription:
                    received += 1
                    last_stamp = max(last_stamp, event.timestamp.timestamp())
                    if received == n:
                        last_received = time.monotonic()
                        done.set()
                        return

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                open_circuit = brama.open_circuit
                monotonic = time.monotonic
                for name in names:
                    await open_circuit(name, expiry=deadline - monotonic())
                spare = deadline - monotonic()
                if spare <= 0:
                    raise RuntimeError(
                        "could not open every circuit before the deadline"
                    )

                await anyio.sleep(max(0.0, spare - 0.05))
                tg.start_soon(heartbeat.run)
                with anyio.move_on_after(budget + 60.0):
                    await done.wait()
                heartbeat.stop()
                tg.cancel_scope.cancel()

            dropped = subscription.dropped

    await _settle()
    if received != n:
        raise RuntimeError(f"only {received} of {n} circuits went half-open in time")

    return {
        "late_received_ms": (last_received - deadline) * 1e3,
        "late_transition_ms": (last_stamp - wall_deadline) * 1e3,
        "stall_ms": heartbeat.longest * 1e3,
        "spare_ms": spare * 1e3,
        "dropped": float(dropped),
    }


async def sample_sweep(c: Any, s: Settings, rep: int, calls: Any) -> dict[str, float]:
    """A cleanup sweep over ``settings.sweep`` connections, 10% of them candidates.

    A :class:`brama_async.testing.ManualClock` makes the first tenth inactive
    for longer than ``inactive_threshold``. The first sweep marks them stale,
    the second removes them; a heartbeat task records the longest loop stall
    during each sweep.
    """
    from brama_async import testing

    n = s.sweep
    candidates = int(n * s.sweep_candidates)
    threshold = 100.0
    clock = testing.ManualClock()
    backend = c.backend

    async with c.registry(
        clock=clock, cleanup_interval=1e6, inactive_threshold=threshold
    ) as brama:
        register = brama.register
        for i in range(candidates):
            await register(f"old-{i}")
        await clock.advance(threshold + 1.0)
        for i in range(n - candidates):
            await register(f"new-{i}")
        await clock.advance(1.0)
        await _settle()

        results: dict[str, float] = {}
        for label in ("mark", "remove"):
            heartbeat = Heartbeat(backend.sleep0)
            async with anyio.create_task_group() as tg:
                tg.start_soon(heartbeat.run)
                await backend.sleep0()
                start = time.perf_counter_ns()
                summary = await testing.run_cleanup(brama)
                elapsed = time.perf_counter_ns() - start
                heartbeat.stop()
            results[f"{label}_stall_ms"] = heartbeat.longest * 1e3
            results[f"{label}_ms"] = elapsed / 1e6
            results[f"{label}_count"] = float(
                summary.get("marked_stale" if label == "mark" else "removed", -1)
            )

        remaining = len(brama.connections())

    await _settle()
    results["stall_ms"] = max(results["mark_stall_ms"], results["remove_stall_ms"])
    results["remaining"] = float(remaining)
    if results["mark_count"] != candidates or results["remove_count"] != candidates:
        raise RuntimeError(
            f"sweep marked {results['mark_count']:.0f} and removed "
            f"{results['remove_count']:.0f}; expected {candidates} each"
        )

    return results


# ---------------------------------------------------------------------------
# the table of scenarios
# ---------------------------------------------------------------------------

PER_CALL = (Metric("per_call", "per call"),)

SCENARIOS: dict[str, Scenario] = {
    sc.key: sc
    for sc in (
        Scenario(
            "closed",
            "Closed-state success",
            "`await f()` through a closed breaker; f returns at once. "
            "Floor: bare `await f()`.",
            PER_CALL,
            sample_closed,
            floor="bare",
            calibrate=True,
        ),
        Scenario(
            "open",
            "Open-state refusal",
            "A call refused by an open breaker, error caught. "
            "Floor: raise and catch a fresh exception from a coroutine.",
            PER_CALL,
            sample_open,
            floor="raise",
            calibrate=True,
        ),
        Scenario(
            "failure",
            "Failure below the threshold",
            "A call whose function raises, counted, error caught; "
            "the breaker stays closed. Floor: bare `await f()` that raises.",
            PER_CALL,
            sample_failure,
            floor="bare",
            calibrate=True,
        ),
        Scenario(
            "concurrent",
            "Concurrent calls on one closed circuit",
            "N tasks started at once, each calling f through one breaker; f yields "
            "to the loop once. Floor: the same tasks without a breaker.",
            (Metric("total", "total"), Metric("per_task", "per task")),
            sample_concurrent,
            floor="bare",
            size=lambda s: s.tasks,
        ),
        Scenario(
            "half_open",
            "Half-open trial admission",
            "N concurrent callers reach a half-open breaker while the first one's "
            "trial is in flight (f yields once). `admitted` is how many ran f.",
            (
                Metric("per_caller", "per caller"),
                Metric("admitted", "admitted", "count"),
            ),
            sample_half_open,
            floor="minimal",
            size=lambda s: s.callers,
        ),
        Scenario(
            "register",
            "Registering named breakers",
            "Create N named breakers the library's usual way and keep them: time "
            "(no tracing) and tracemalloc bytes retained, per breaker. Floor: a dict "
            "of two-field slotted records.",
            (
                Metric("per_item", "time each"),
                Metric("bytes_per_item", "bytes each", "bytes"),
            ),
            sample_register,
            floor="bare",
            reps=lambda s: s.heavy_reps,
            size=lambda s: s.register,
        ),
        Scenario(
            "open_many",
            "Open circuits with pending expiries",
            "N connections registered, then opened for an hour (each expiry "
            "pending): tracemalloc bytes retained per circuit.",
            (
                Metric("bytes_per_open", "bytes each (open)", "bytes"),
                Metric("bytes_per_registered", "bytes each (registered)", "bytes"),
            ),
            sample_open_many,
            reps=lambda s: s.mem_reps,
            size=lambda s: s.open_many,
        ),
        Scenario(
            "expiry",
            "Expiry storm: open circuits falling due together",
            "N circuits opened on the real clock with one shared deadline; how late "
            "the last `circuit_half_opened` is (received by a subscriber, and as "
            "stamped on the event), and the longest loop stall meanwhile.",
            (
                Metric("late_received_ms", "last received late (ms)", "ms"),
                Metric("late_transition_ms", "last transition late (ms)", "ms"),
                Metric("stall_ms", "longest stall (ms)", "ms"),
            ),
            sample_expiry,
            reps=lambda s: s.heavy_reps,
            size=lambda s: s.expiry,
        ),
        Scenario(
            "sweep",
            "Cleanup sweep",
            "N connections, a tenth of them inactive past the threshold "
            "(ManualClock). First sweep marks them stale, second removes them; "
            "a heartbeat task measures the longest loop stall.",
            (
                Metric("stall_ms", "longest stall (ms)", "ms"),
                Metric("mark_ms", "mark sweep (ms)", "ms"),
                Metric("remove_ms", "remove sweep (ms)", "ms"),
            ),
            sample_sweep,
            reps=lambda s: s.heavy_reps,
            size=lambda s: s.sweep,
        ),
    )
}
