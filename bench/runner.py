"""Runs the semantic checks and the scenarios, round-robin per repetition."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bench import semantics
from bench._backend import Backend
from bench._timing import Stats
from bench.contenders import CONTENDERS, FLOORS, Contender
from bench.scenarios import SCENARIOS, Scenario, Settings


@dataclass
class RunResult:
    """Everything one run measured, ready for the report."""

    loop: str
    settings: Settings
    meta: dict[str, Any]
    contenders: list[Contender]
    skipped: dict[str, str]
    semantics: dict[str, semantics.Semantics]
    scenarios: list[Scenario]
    stats: dict[str, dict[str, dict[str, Stats]]] = field(default_factory=dict)
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)

    def median(self, scenario: str, contender: str, metric: str) -> float | None:
        """Median of one metric, or None when it was not measured."""
        stats = self.stats.get(scenario, {}).get(contender, {}).get(metric)
        return None if stats is None else stats.median

    def ranked(self, key: str) -> bool:
        """True when ``key`` passed its semantic checks (floors always do)."""
        result = self.semantics.get(key)
        return result is None or result.passed

    def contender(self, key: str) -> Contender | None:
        """The running contender called ``key``, if any."""
        for c in self.contenders:
            if c.key == key:
                return c
        return None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def select(only: list[str] | None) -> list[str]:
    """Contender keys to run: ``only`` (plus the floors), or every contender."""
    if not only:
        return list(CONTENDERS)

    unknown = [k for k in only if k not in CONTENDERS]
    if unknown:
        raise SystemExit(
            f"unknown contender(s) {', '.join(unknown)}; known: {', '.join(CONTENDERS)}"
        )

    wanted = set(only) | set(FLOORS)
    return [k for k in CONTENDERS if k in wanted]


def machine() -> dict[str, Any]:
    """Machine, interpreter and date of the run."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    return {
        "revision": revision(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "nproc": os.cpu_count(),
    }


def revision() -> str:
    """The measured brama_async's git commit, with ``+changes`` when the
    package's files differ from it; ``unknown`` outside a git checkout."""
    try:
        import brama_async

        package = os.path.dirname(os.path.abspath(brama_async.__file__))
        commit = subprocess.run(
            ["git", "-C", package, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", package, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (ImportError, OSError, subprocess.CalledProcessError):
        return "unknown"

    return f"{commit}+changes" if changes else commit


async def run(
    backend: Backend,
    settings: Settings,
    only: list[str] | None = None,
    scenario_keys: list[str] | None = None,
) -> RunResult:
    """Run the checks and scenarios on the running loop; return the results."""
    scenarios = [SCENARIOS[k] for k in (scenario_keys or list(SCENARIOS))]
    contenders: list[Contender] = []
    skipped: dict[str, str] = {}

    for key in select(only):
        contender = CONTENDERS[key](backend)
        problem = contender.unavailable()
        if problem is None:
            try:
                await contender.start()
            except Exception as exc:
                problem = f"could not start: {type(exc).__name__}: {exc}"
        if problem is None:
            contenders.append(contender)
        else:
            skipped[key] = problem
            _log(f"skip {key}: {problem}")

    result = RunResult(
        loop=backend.name,
        settings=settings,
        meta={**machine(), "loop": backend.name},
        contenders=contenders,
        skipped=skipped,
        semantics={},
        scenarios=scenarios,
    )
    started = time.perf_counter()
    try:
        for contender in contenders:
            if contender.kind != "floor":
                result.semantics[contender.key] = await semantics.check(contender)
                _log(
                    f"semantics {contender.key}: "
                    f"{result.semantics[contender.key].summary()}"
                )

        for scenario in scenarios:
            await _run_scenario(result, scenario, contenders, settings)
    finally:
        for contender in reversed(contenders):
            try:
                await contender.stop()
            except Exception as exc:
                _log(f"stop {contender.key}: {type(exc).__name__}: {exc}")

    result.meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    return result


async def _run_scenario(
    result: RunResult,
    scenario: Scenario,
    contenders: list[Contender],
    settings: Settings,
) -> None:
    """Warm up (and calibrate), then take the samples round-robin."""
    live = [c for c in contenders if scenario.key in c.scenarios]
    if not any(c.kind != "floor" for c in live):
        return

    errors: dict[str, str] = {}
    calls: dict[str, int] = {}
    samples: dict[str, dict[str, list[float]]] = {c.key: {} for c in live}

    if scenario.calibrate:
        for c in live:
            try:
                warm = await scenario.sample(c, settings, -1, settings.warm_calls)
            except Exception as exc:
                errors[c.key] = _describe(exc)
                continue
            per_call = max(warm["per_call"], 1.0)
            wanted = int(settings.target_ms * 1e6 / per_call)
            calls[c.key] = max(settings.warm_calls, min(settings.max_calls, wanted))

    reps = max(1, scenario.reps(settings))
    for rep in range(reps):
        order = [c for c in live if c.key not in errors]
        shift = rep % max(1, len(order))
        for c in order[shift:] + order[:shift]:
            if c.key in errors:
                continue
            gc.collect()
            try:
                values = await scenario.sample(c, settings, rep, calls.get(c.key))
            except Exception as exc:
                errors[c.key] = _describe(exc)
                _log(f"  [{scenario.key}] {c.key} failed: {errors[c.key]}")
                if os.environ.get("BENCH_TRACEBACK"):
                    traceback.print_exc()
                continue
            for metric, value in values.items():
                samples[c.key].setdefault(metric, []).append(value)
        _log(f"  [{scenario.key}] rep {rep + 1}/{reps}")

    result.stats[scenario.key] = {
        key: {metric: Stats.of(values) for metric, values in by_metric.items()}
        for key, by_metric in samples.items()
        if by_metric and key not in errors
    }
    result.calls[scenario.key] = calls
    if errors:
        result.errors[scenario.key] = errors


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
