"""A self-contained walkthrough: a flaky local HTTP service behind a breaker.

``python -m brama_async demo`` starts a small HTTP/1.1 service on 127.0.0.1 (an
ephemeral port) whose behaviour follows a schedule of phases: healthy periods,
error bursts (every request answered with ``500``) and hangs (the request is read
and never answered).  A client sends requests at a steady rate through a breaker
with progressive expiry and the demo prints one line per event as it happens,
then a summary.

Only the standard library and anyio are used, so the demo runs with the core
install.  Nothing leaves the loopback interface.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import anyio
import anyio.abc

from ._breaker import Breaker
from ._errors import CircuitOpenError
from ._events import Event, Subscription
from ._registry import Brama
from ._types import EventType

__all__ = ["PATTERNS", "DemoConfig", "DemoReport", "run_demo"]


#: Each pattern is a sequence of ``(kind, share of the duration)`` phases.
PATTERNS: dict[str, tuple[tuple[str, float], ...]] = {
    "mixed": (
        ("healthy", 0.15),
        ("errors", 0.20),
        ("healthy", 0.15),
        ("hangs", 0.20),
        ("healthy", 0.30),
    ),
    "errors": (
        ("healthy", 0.15),
        ("errors", 0.30),
        ("healthy", 0.20),
        ("errors", 0.10),
        ("healthy", 0.25),
    ),
    "hangs": (
        ("healthy", 0.15),
        ("hangs", 0.40),
        ("healthy", 0.45),
    ),
    "flapping": (
        ("healthy", 0.10),
        ("errors", 0.10),
        ("healthy", 0.10),
        ("errors", 0.10),
        ("healthy", 0.10),
        ("hangs", 0.10),
        ("healthy", 0.10),
        ("errors", 0.10),
        ("healthy", 0.20),
    ),
    "outage": (
        ("healthy", 0.10),
        ("errors", 0.55),
        ("healthy", 0.35),
    ),
}

#: One line of ``--help`` text per pattern.
PATTERN_HELP: dict[str, str] = {
    "mixed": "healthy, an error burst, healthy, a hang, healthy (default)",
    "errors": "two error bursts of different lengths",
    "hangs": "one long period where requests are never answered",
    "flapping": "short failures in quick succession",
    "outage": "one long outage: watch the open periods grow",
}

_PHASE_TEXT = {
    "healthy": "healthy for {:.1f} s: answers 200, with a rare stray 500",
    "errors": "error burst for {:.1f} s: every request gets HTTP 500",
    "hangs": "hanging for {:.1f} s: requests are read and never answered",
}

_GLITCH_RATE = 0.03
_MAX_HEAD = 65_536
_IDENTIFIER = "flaky-service"


class ServiceError(Exception):
    """The demo service answered with a server error."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Phase:
    """One period of the service's schedule, in seconds since the demo started."""

    kind: str
    start: float
    end: float


@dataclass(frozen=True)
class DemoConfig:
    """Everything that shapes one demo run; the timings follow from the duration."""

    duration: float = 20.0
    seed: int = 1
    pattern: str = "mixed"
    interval: float = 0.05

    @property
    def request_timeout(self) -> float:
        """How long the client waits for an answer before giving up."""
        return _clamp(self.duration / 80, 0.1, 0.25)

    @property
    def initial_expiry(self) -> float:
        """How long the first open period lasts."""
        return _clamp(self.duration / 40, 0.1, 1.0)

    def schedule(self) -> list[Phase]:
        """Lay out the pattern over the duration, each phase jittered by the seed."""
        rng = random.Random(self.seed)
        shares = [share * rng.uniform(0.8, 1.2) for _, share in PATTERNS[self.pattern]]
        scale = self.duration / sum(shares)

        phases = []
        start = 0.0
        for (kind, _), share in zip(PATTERNS[self.pattern], shares, strict=True):
            end = start + share * scale
            phases.append(Phase(kind, start, end))
            start = end

        return phases


@dataclass
class DemoReport:
    """What happened during one run: counters and the circuit's transitions."""

    calls: int = 0
    succeeded: int = 0
    failed_status: int = 0
    failed_timeout: int = 0
    failed_other: int = 0
    refused: int = 0
    served: dict[str, int] = field(default_factory=dict)
    transitions: list[tuple[float, str, str]] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    final_state: str = "closed"
    elapsed: float = 0.0

    @property
    def failed(self) -> int:
        """Calls that ran and failed, for any reason."""
        return self.failed_status + self.failed_timeout + self.failed_other

    @property
    def admitted(self) -> int:
        """Calls the breaker let through to the service (finished ones)."""
        return self.succeeded + self.failed


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class _FlakyService:
    """A minimal HTTP/1.1 server that follows a schedule of phases."""

    def __init__(
        self, phases: list[Phase], seed: int, now: Callable[[], float]
    ) -> None:
        self._phases = phases
        self._rng = random.Random(seed)
        self._now = now
        self.served: dict[str, int] = {"healthy": 0, "errors": 0, "hangs": 0}

    def phase_at(self, elapsed: float) -> Phase:
        for phase in self._phases:
            if elapsed < phase.end:
                return phase

        return self._phases[-1]

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async with listener:
            task_status.started(port)
            await listener.serve(self._handle)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                await _read_head(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
                return

            kind = self.phase_at(self._now()).kind
            self.served[kind] += 1
            if kind == "hangs":
                await _hold(stream)
                return

            failing = kind == "errors" or self._rng.random() < _GLITCH_RATE
            status = 500 if failing else 200
            with contextlib.suppress(
                anyio.BrokenResourceError, anyio.ClosedResourceError
            ):
                await stream.send(_response(status))


async def _read_head(stream: anyio.abc.ByteReceiveStream) -> bytes:
    """Read up to the blank line that ends an HTTP head; raise if it never comes."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            raise ValueError("HTTP head too large")

        data += await stream.receive()

    return data


async def _hold(stream: anyio.abc.ByteReceiveStream) -> None:
    """Keep a connection open, answering nothing, until the peer goes away."""
    try:
        while True:
            await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


def _response(status: int) -> bytes:
    reason = "OK" if status == 200 else "Internal Server Error"
    body = b'{"ok": true}\n' if status == 200 else b'{"ok": false}\n'
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def fetch(port: int, within: float) -> int:
    """GET / from the demo service and return the status code.

    Raises ``TimeoutError`` when no answer arrives within ``within`` seconds (the
    deadline lives inside this function, so a breaker around it counts the
    timeout as a failure) and `ServiceError` for a 5xx answer.
    """
    with anyio.fail_after(within):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            request = (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            )
            await stream.send(request.encode("ascii"))
            head = await _read_head(stream)

    status = int(head.split(b" ", 2)[1])
    if status >= 500:
        raise ServiceError(status)

    return status


class _Demo:
    def __init__(self, config: DemoConfig, out: TextIO) -> None:
        self.config = config
        self.out = out
        self.report = DemoReport(phases=config.schedule())
        self.interrupted = False
        self._start = 0.0

    def elapsed(self) -> float:
        return anyio.current_time() - self._start

    def say(self, text: str) -> None:
        print(f"{self.elapsed():7.2f}s  {text}", file=self.out, flush=True)

    def counts(self) -> str:
        r = self.report
        return (
            f"admitted={r.admitted} refused={r.refused} "
            f"failed={r.failed} succeeded={r.succeeded}"
        )

    async def run(self) -> None:
        """Run the service, the client and the printer, then print a summary.

        SIGINT (Ctrl-C) cancels the run: everything shuts down, the summary
        of what happened so far is printed, and ``interrupted`` is set.
        """
        self._start = anyio.current_time()
        self._intro()
        service = _FlakyService(self.report.phases, self.config.seed, self.elapsed)

        async with anyio.create_task_group() as outer:
            outer.start_soon(self._stop_on_interrupt, outer.cancel_scope)
            try:
                await self._run(service)
            finally:
                self.report.served = dict(service.served)
                self.report.elapsed = self.elapsed()

            outer.cancel_scope.cancel()

        self._summary()

    async def _stop_on_interrupt(self, scope: anyio.CancelScope) -> None:
        try:
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    self.interrupted = True
                    scope.cancel()
                    return
        except NotImplementedError:
            # No signal handlers here (asyncio on Windows): Ctrl-C raises
            # KeyboardInterrupt the usual way instead.
            await anyio.sleep_forever()

    async def _run(self, service: _FlakyService) -> None:
        initial = self.config.initial_expiry

        async with Brama() as brama:
            breaker = await brama.register(
                _IDENTIFIER,
                max_attempts=3,
                expiry_strategy="progressive",
                expiry=initial,
                initial_expiry=initial,
                max_expiry=initial * 8,
                backoff_factor=2.0,
            )
            subscription = brama.subscribe(
                events=[EventType.STATE_CHANGE], connection=_IDENTIFIER
            )

            try:
                async with anyio.create_task_group() as tasks:
                    port = await tasks.start(service.serve)
                    tasks.start_soon(self._announce_phases)
                    tasks.start_soon(self._print_transitions, subscription, brama)
                    await self._drive(brama, port)

                    await anyio.sleep(0.01)
                    tasks.cancel_scope.cancel()
            finally:
                subscription.close()
                self.report.final_state = breaker.status().state.value

    def _intro(self) -> None:
        c = self.config
        print(
            f"brama_async demo: pattern {c.pattern!r}, seed {c.seed}, "
            f"{c.duration:g} s, one request every {c.interval * 1000:g} ms, "
            f"timeout {c.request_timeout:g} s\n"
            f"breaker: opens after 3 failures in a row; progressive expiry "
            f"{c.initial_expiry:g} s doubling up to {c.initial_expiry * 8:g} s",
            file=self.out,
            flush=True,
        )

    async def _announce_phases(self) -> None:
        for phase in self.report.phases:
            await anyio.sleep(max(0.0, phase.start - self.elapsed()))
            length = phase.end - phase.start
            self.say(f"service   {_PHASE_TEXT[phase.kind].format(length)}")

    async def _print_transitions(
        self, subscription: Subscription, brama: Brama
    ) -> None:
        async for event in subscription:
            now = self.elapsed()
            previous = event.previous_state.value if event.previous_state else "-"
            state = event.state.value if event.state else "-"
            self.report.transitions.append((now, previous, state))
            line = f"circuit   {previous:>9} -> {state:<9}  {self.counts()}"
            if state == "open":
                line += self._next_half_open(event, brama, now)

            self.say(line)

    def _next_half_open(self, event: Event, brama: Brama, now: float) -> str:
        status = event.status or brama.status(_IDENTIFIER)
        if status.half_open_at is None:
            return "  no half-open scheduled"

        wait = max(0.0, (status.half_open_at - event.timestamp).total_seconds())
        return (
            f"  half-open at {now + wait:.2f}s (open {wait:.2f} s, trip {status.trips})"
        )

    async def _drive(self, brama: Brama, port: int) -> None:
        breaker = brama.breaker(_IDENTIFIER)
        config = self.config

        async with anyio.create_task_group() as calls:
            tick = anyio.current_time()
            while self.elapsed() < config.duration:
                calls.start_soon(self._one_call, breaker, port)
                tick += config.interval
                await anyio.sleep(max(0.0, tick - anyio.current_time()))

    async def _one_call(self, breaker: Breaker, port: int) -> None:
        report = self.report
        report.calls += 1
        try:
            await breaker.call(fetch, port, self.config.request_timeout)
        except CircuitOpenError:
            report.refused += 1
        except ServiceError:
            report.failed_status += 1
        except TimeoutError:
            report.failed_timeout += 1
        except OSError:
            report.failed_other += 1
        else:
            report.succeeded += 1

    def _summary(self) -> None:
        r = self.report
        failing = sum(n for kind, n in r.served.items() if kind != "healthy")
        opens = [t for t, _, state in r.transitions if state == "open"]
        stopped = ", interrupted" if self.interrupted else ""
        lines = [
            "",
            f"summary after {r.elapsed:.1f} s{stopped} "
            f"(pattern {self.config.pattern!r}, seed {self.config.seed})",
            f"  calls made           {r.calls}",
            f"  admitted             {r.admitted}: {r.succeeded} succeeded, "
            f"{r.failed} failed ({r.failed_status} HTTP 500, "
            f"{r.failed_timeout} timeouts, {r.failed_other} other)",
            f"  refused at once      {r.refused}, without touching the service",
            f"  circuit opened       {len(opens)} times, "
            f"open {self._time_open():.1f} s in total",
            f"  failing service got  {failing} requests during its bad phases",
        ]
        lines.extend(self._recoveries())
        lines.append(f"  final state          {r.final_state}")
        print("\n".join(lines), file=self.out, flush=True)

    def _time_open(self) -> float:
        total = 0.0
        opened: float | None = None
        for moment, _, state in self.report.transitions:
            if state == "open" and opened is None:
                opened = moment
            elif state != "open" and opened is not None:
                total += moment - opened
                opened = None

        if opened is not None:
            total += self.report.elapsed - opened

        return total

    def _recoveries(self) -> list[str]:
        r = self.report
        lines = []
        bad = [p for p in r.phases if p.kind != "healthy" and p.start < r.elapsed]
        for index, phase in enumerate(bad):
            until = bad[index + 1].start if index + 1 < len(bad) else math.inf
            window = phase.end + self.config.request_timeout + 0.05
            opened = any(
                phase.start <= t <= window and state == "open"
                for t, _, state in r.transitions
            )
            label = f"{phase.kind} {phase.start:.1f}-{phase.end:.1f} s"
            if not opened:
                lines.append(f"  {label:<19}  the circuit never opened")
                continue

            closes = [
                t
                for t, _, state in r.transitions
                if state == "closed" and phase.end <= t < until
            ]
            if closes:
                delay = closes[0] - phase.end
                lines.append(
                    f"  {label:<19}  closed again {delay:.2f} s after the "
                    "service recovered"
                )
            else:
                lines.append(f"  {label:<19}  still not closed when the run ended")

        return lines


def run_demo(config: DemoConfig, *, out: TextIO | None = None) -> DemoReport:
    """Run the demo to completion on asyncio and return what happened.

    Prints to ``out`` (standard output by default) as it goes.  On Ctrl-C
    (SIGINT) the service, the registry and every pending request are shut down
    (pending requests are cancelled, which the breaker does not count), the
    summary so far is printed, and ``KeyboardInterrupt`` is raised.
    """
    demo = _Demo(config, out or sys.stdout)
    anyio.run(demo.run)
    if demo.interrupted:
        raise KeyboardInterrupt

    return demo.report
