"""Model-based tests: the registry against a small reference state machine.

Hypothesis drives a real registry (on a manual clock, inside a blocking
portal) and a plain-Python model of the documented behaviour with the same
random steps: calls that succeed, fail, raise excluded errors, are cancelled
or raise a non-``Exception``; calls held open across other steps (so their
outcomes arrive late); manual reports and controls; expiry controls;
configuration changes; clock advances; sweeps. After every step the status
of each connection and the events it emitted must match the model.
"""

import functools
import math
from dataclasses import dataclass, field
from datetime import timedelta

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from brama_async import Brama, CircuitOpenError, State
from brama_async._expiry import open_duration
from brama_async._options import ConnectionOptions
from brama_async._types import ExpiryStrategy
from brama_async.testing import ManualClock, run_cleanup


class Boom(Exception):
    """A counted failure."""


class Biz(Exception):
    """An excluded error."""


class Abort(BaseException):
    """A non-``Exception`` that must never count."""


MODELLED_EVENTS = {
    "success",
    "failure",
    "circuit_opened",
    "circuit_half_opened",
    "circuit_closed",
    "circuit_reset",
    "state_change",
}

CONNECTIONS = {
    "fixed": {
        "max_attempts": 2,
        "expiry": 4.0,
        "half_open_max_calls": 2,
        "exclude": (Biz,),
    },
    "progressive": {
        "max_attempts": 1,
        "expiry": 3.0,
        "expiry_strategy": "progressive",
        "initial_expiry": 1.0,
        "backoff_factor": 2.0,
        "max_expiry": 8.0,
        "half_open_max_calls": 1,
        "exclude": (Biz,),
    },
}


@dataclass
class Model:
    """The documented behaviour of one circuit."""

    max_attempts: int
    expiry: float
    half_open_max_calls: int
    strategy: str = "fixed"
    initial_expiry: float | None = None
    max_expiry: float | None = None
    backoff_factor: float = 2.0
    state: str = "closed"
    failure_count: int = 0
    trips: int = 0
    generation: int = 0
    opened_at: float | None = None
    half_open_at: float | None = None
    expiry_enabled: bool = True
    trials: int = 0
    in_flight: int = 0
    events: list = field(default_factory=list)

    def duration(self, trips):
        """How long the ``trips``-th consecutive open lasts."""
        if self.strategy == "fixed":
            return self.expiry

        initial = self.expiry if self.initial_expiry is None else self.initial_expiry
        cap = 10 * self.expiry if self.max_expiry is None else self.max_expiry
        try:
            return min(cap, initial * self.backoff_factor ** (trips - 1))
        except OverflowError:
            return cap

    def _move(self, state, event, now=None, duration=None):
        previous = self.state
        self.state = state
        self.generation += 1
        self.trials = 0
        if state == "open":
            self.opened_at = now
            self.half_open_at = now + duration if self.expiry_enabled else None
        else:
            self.half_open_at = None
        if state == "closed":
            # A close (by hand or by recovery) ends a disabled expiry.
            self.expiry_enabled = True
        self.events.append((event, previous, state))
        if previous != state:
            self.events.append(("state_change", previous, state))

    def trip(self, now, duration=None):
        self.trips += 1
        if duration is None:
            duration = self.duration(self.trips)
        self._move("open", "circuit_opened", now, duration)

    def recover(self, event):
        self.failure_count = 0
        self.trips = 0
        self._move("closed", event)

    def apply_due(self, now):
        """Go half-open if the expiry has passed."""
        due = self.half_open_at is not None and now >= self.half_open_at
        if self.state == "open" and due:
            self._move("half_open", "circuit_half_opened")

    def admit(self, now):
        """Admit a call: ``(generation, is_trial)``, or ``None`` if refused."""
        self.apply_due(now)
        if self.state == "open":
            return None

        if self.state == "half_open":
            if self.trials >= self.half_open_max_calls:
                return None
            self.trials += 1
            self.in_flight += 1
            return self.generation, True

        self.in_flight += 1
        return self.generation, False

    def finish(self, admitted, outcome, now):
        """Settle an admitted call with ``outcome``."""
        generation, trial = admitted
        self.in_flight -= 1
        if trial and generation == self.generation and self.state == "half_open":
            self.trials -= 1
        if outcome in ("cancel", "abort"):
            return

        if outcome in ("success", "excluded"):
            self.success(generation)
        else:
            self.failure(generation, now)

    def success(self, generation):
        if generation != self.generation:
            return

        self.events.append(("success", None, self.state))
        if self.state == "half_open":
            self.events.pop()
            self.events.append(("success", None, "closed"))
            self.recover("circuit_closed")
        else:
            self.failure_count = 0

    def failure(self, generation, now):
        if generation != self.generation:
            return

        if self.state == "open":
            self.events.append(("failure", None, "open"))
            return

        self.failure_count += 1
        if self.state == "half_open" or self.failure_count >= self.max_attempts:
            self.events.append(("failure", None, "open"))
            self.trip(now)
        else:
            self.events.append(("failure", None, self.state))

    def close(self):
        self.failure_count = 0
        self._move("closed", "circuit_closed")

    def set_expiry(self, seconds, now):
        self.expiry = seconds
        self.expiry_enabled = True
        if self.state == "open":
            self.half_open_at = self.opened_at + seconds
            self.apply_due(now)

    def disable_expiry(self):
        self.expiry_enabled = False
        self.half_open_at = None


class Held:
    """A call admitted now whose outcome is decided by a later step."""

    def __init__(self, breaker):
        self.breaker = breaker
        self.outcome = None
        self.refused = False
        self.admitted = anyio.Event()
        self.release = anyio.Event()
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()

    async def body(self):
        self.admitted.set()
        await self.release.wait()
        if self.outcome == "failure":
            raise Boom
        if self.outcome == "excluded":
            raise Biz
        if self.outcome == "abort":
            raise Abort
        if self.outcome == "cancel":
            await anyio.sleep_forever()

    async def run(self):
        try:
            with self.scope:
                await self.breaker.call(self.body)
        except CircuitOpenError:
            self.refused = True
            self.admitted.set()
        except (Boom, Biz, Abort):
            pass
        finally:
            self.done.set()

    async def settle(self, outcome):
        self.outcome = outcome
        if outcome == "cancel":
            self.scope.cancel()
        self.release.set()
        await self.done.wait()


async def drain(subscription):
    """Close a subscription and return the events it had queued."""
    subscription.close()

    return [event async for event in subscription]


OUTCOMES = ["success", "failure", "excluded", "cancel", "abort"]


async def run_call(breaker, outcome):
    """Run one call to its end; return whether it was refused."""

    async def body():
        await anyio.lowlevel.checkpoint()
        if outcome == "failure":
            raise Boom
        if outcome == "excluded":
            raise Biz
        if outcome == "abort":
            raise Abort

    try:
        with anyio.CancelScope() as scope:
            if outcome == "cancel":
                scope.cancel()
            await breaker.call(body)
    except CircuitOpenError:
        return True
    except (Boom, Biz, Abort):
        pass

    return False


class RegistryMachine(RuleBasedStateMachine):
    """Random steps against a registry and the model side by side."""

    portal = None

    @initialize()
    def start(self):
        self.clock = ManualClock()
        self.brama_cm = self.portal.wrap_async_context_manager(
            Brama(clock=self.clock, cleanup_interval=1e9, inactive_threshold=1e9)
        )
        self.brama = self.brama_cm.__enter__()
        self.models = {}
        self.held = []
        self.base = {}
        for name, options in CONNECTIONS.items():
            register = functools.partial(self.brama.register, name, **options)
            self.portal.call(register)
            model_options = {k: v for k, v in options.items() if k != "exclude"}
            if "expiry_strategy" in model_options:
                model_options["strategy"] = model_options.pop("expiry_strategy")
            self.models[name] = Model(**model_options)
            status = self.portal.call(self.brama.status, name)
            self.base[name] = status.last_activity_at
        self.check()

    def teardown(self):
        if getattr(self, "brama_cm", None) is None:
            return

        for held in self.held:
            self.portal.call(held.settle, "success")
        self.brama_cm.__exit__(None, None, None)

    # -- running a step and comparing --------------------------------------

    def step(self, action, *, before=None):
        """Run ``action`` in the loop, checking the events emitted meanwhile."""
        subscription = self.portal.call(
            functools.partial(self.brama.subscribe, max_queued=10_000)
        )
        if before is not None:
            before()
        result = self.portal.call(action)
        events = self.portal.call(drain, subscription)
        for name in self.models:
            observed = [
                (e.type.value, e.previous_state and e.previous_state.value, e.state)
                for e in events
                if e.identifier == name and e.type.value in MODELLED_EVENTS
            ]
            expected = self.models[name].events
            self.models[name].events = []

            assert observed == [(t, p, State(s)) for t, p, s in expected], name

        return result, events

    def check(self):
        now = self.clock()
        for name, model in self.models.items():
            status = self.portal.call(self.brama.status, name)
            base = self.base[name]

            assert status.state == State(model.state), name
            assert status.failure_count == model.failure_count, name
            assert status.trips == model.trips, name
            assert status.expiry_enabled == model.expiry_enabled, name
            assert status.in_flight == model.in_flight, name
            trials = model.trials if model.state == "half_open" else 0
            assert status.trials_in_flight == trials, name
            if model.opened_at is None:
                assert status.opened_at is None
            else:
                expected = base + timedelta(seconds=model.opened_at)
                assert abs((status.opened_at - expected).total_seconds()) < 1e-4
            if model.half_open_at is None:
                assert status.half_open_at is None
            else:
                expected = base + timedelta(seconds=model.half_open_at)
                assert abs((status.half_open_at - expected).total_seconds()) < 1e-4
            available = model.state == "closed" or (
                model.state == "half_open" and model.trials < model.half_open_max_calls
            )
            assert self.portal.call(self.brama.available, name) == available
            assert now == self.clock()

    @invariant()
    def agrees_with_model(self):
        if getattr(self, "brama", None) is not None:
            self.check()

    # -- rules ----------------------------------------------------------------

    names = st.sampled_from(sorted(CONNECTIONS))

    @rule(name=names, outcome=st.sampled_from(OUTCOMES))
    def call(self, name, outcome):
        model = self.models[name]
        admitted = model.admit(self.clock())
        if admitted is not None:
            model.finish(admitted, outcome, self.clock())
        breaker = self.brama.breaker(name)
        refused, _ = self.step(lambda: run_call(breaker, outcome))

        assert refused == (admitted is None)

    @rule(name=names)
    def start_held_call(self, name):
        if len(self.held) >= 4:
            return

        model = self.models[name]
        admitted = model.admit(self.clock())
        held = self.portal.call(Held, self.brama.breaker(name))
        self.step(
            held.admitted.wait,
            before=lambda: self.portal.start_task_soon(held.run),
        )
        if held.refused:
            self.portal.call(held.done.wait)
        else:
            held.model = (name, admitted)
            self.held.append(held)

        assert held.refused == (admitted is None)

    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def settle_held_call(self, data, outcome):
        if not self.held:
            return

        held = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        name, admitted = held.model
        self.models[name].finish(admitted, outcome, self.clock())
        self.step(lambda: held.settle(outcome))

    @rule(name=names, kind=st.sampled_from(["success", "failure"]))
    def report(self, name, kind):
        model = self.models[name]
        model.apply_due(self.clock())
        if kind == "success":
            model.success(model.generation)
        else:
            model.failure(model.generation, self.clock())
        self.step(functools.partial(getattr(self.brama, kind), name))

    @rule(name=names, expiry=st.none() | st.sampled_from([0.5, 2.0, 7.0]))
    def open_circuit(self, name, expiry):
        self.models[name].trip(self.clock(), expiry)
        self.step(functools.partial(self.brama.open_circuit, name, expiry=expiry))

    @rule(name=names)
    def close_circuit(self, name):
        self.models[name].close()
        self.step(functools.partial(self.brama.close_circuit, name))

    @rule(name=names)
    def reset_circuit(self, name):
        self.models[name].recover("circuit_reset")
        self.step(functools.partial(self.brama.reset_circuit, name))

    @rule(name=names)
    def reset_expiry(self, name):
        model = self.models[name]
        if model.state == "open":
            model._move("half_open", "circuit_half_opened")
        self.step(functools.partial(self.brama.reset_expiry, name))

    @rule(name=names, seconds=st.sampled_from([0.5, 1.0, 3.0, 6.0]))
    def set_expiry(self, name, seconds):
        self.models[name].set_expiry(seconds, self.clock())
        self.step(functools.partial(self.brama.set_expiry, name, seconds))

    @rule(name=names)
    def disable_expiry(self, name):
        self.models[name].disable_expiry()
        self.step(functools.partial(self.brama.disable_expiry, name))

    @rule(
        name=names,
        max_attempts=st.integers(1, 3),
        half_open_max_calls=st.integers(1, 2),
    )
    def configure_connection(self, name, max_attempts, half_open_max_calls):
        model = self.models[name]
        model.max_attempts = max_attempts
        model.half_open_max_calls = half_open_max_calls
        self.step(
            functools.partial(
                self.brama.configure,
                name,
                max_attempts=max_attempts,
                half_open_max_calls=half_open_max_calls,
            )
        )

    @rule(max_attempts=st.integers(1, 9))
    def configure_defaults(self, max_attempts):
        self.step(functools.partial(self.brama.configure, max_attempts=max_attempts))

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 5.0]))
    def advance(self, seconds):
        async def move():
            await self.clock.advance(seconds)

        deadline = self.clock() + seconds
        due = sorted(
            (m.half_open_at, name)
            for name, m in self.models.items()
            if m.state == "open" and m.half_open_at is not None
        )
        for at, name in due:
            if at <= deadline:
                self.models[name].apply_due(deadline)
        self.step(move)

    @rule()
    def sweep(self):
        _, events = self.step(functools.partial(run_cleanup, self.brama))

        assert [e.type.value for e in events] == ["cleanup"]
        assert events[0].data["removed"] == 0


def backend_of(anyio_backend):
    if isinstance(anyio_backend, tuple):
        return anyio_backend

    return anyio_backend, {}


def test_registry_agrees_with_the_model(anyio_backend):
    """Random sequences of steps leave the registry where the model is."""
    backend, options = backend_of(anyio_backend)
    with start_blocking_portal(backend, options) as portal:
        machine = type("Machine", (RegistryMachine,), {"portal": portal})
        run_state_machine_as_test(
            machine,
            settings=settings(max_examples=60, stateful_step_count=40, deadline=None),
        )


@given(
    initial=st.floats(1e-3, 1e6),
    factor=st.floats(1.0, 1000.0),
    cap_ratio=st.floats(1.0, 1e6),
    trips=st.integers(1, 10**18) | st.integers(1, 2000),
)
@settings(max_examples=500, deadline=None)
def test_progressive_duration_matches_the_formula(initial, factor, cap_ratio, trips):
    """The n-th open lasts ``min(cap, initial * factor**(n-1))``, finite and
    positive for any n, without overflow."""
    cap = min(1e9, initial * cap_ratio)
    options = ConnectionOptions(
        expiry=initial,
        expiry_strategy=ExpiryStrategy.PROGRESSIVE,
        initial_expiry=initial,
        max_expiry=cap,
        backoff_factor=factor,
    )
    try:
        expected = min(cap, initial * factor ** (trips - 1))
    except OverflowError:
        expected = cap

    duration = open_duration(options, trips)

    assert math.isfinite(duration)
    assert 0 < duration <= cap
    assert duration == pytest.approx(expected, rel=1e-9)


def test_fixed_duration_ignores_the_trip_count():
    """The fixed strategy always lasts ``expiry``."""
    options = ConnectionOptions(expiry=7.0)

    assert [open_duration(options, n) for n in (1, 2, 10**9)] == [7.0] * 3
