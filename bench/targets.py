"""The performance targets, evaluated on ratios measured in the same run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench._timing import Stats, fmt_bytes, fmt_ratio, fmt_time
from bench.runner import RunResult

OURS = "brama_async"


@dataclass(frozen=True)
class Verdict:
    """A target's outcome: what was measured, the limit, and PASS/FAIL/n/a."""

    target: str
    measured: str
    limit: str
    passed: bool | None
    detail: str = ""

    @property
    def outcome(self) -> str:
        """``PASS``, ``FAIL`` or ``n/a`` (not measured in this run)."""
        if self.passed is None:
            return "n/a"
        return "PASS" if self.passed else "FAIL"


def fastest_peer(result: RunResult, scenario: str) -> tuple[str, float] | None:
    """The fastest documented peer that passed its semantic checks."""
    best: tuple[str, float] | None = None
    for c in result.contenders:
        if c.kind != "peer" or not c.documented or not result.ranked(c.key):
            continue
        value = result.median(scenario, c.key, "per_call")
        if value is not None and (best is None or value < best[1]):
            best = (c.key, value)
    return best


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _stat(result: RunResult, scenario: str, key: str, metric: str) -> Stats | None:
    return result.stats.get(scenario, {}).get(key, {}).get(metric)


def _min_ratio(a: Stats | None, b: Stats | None) -> str:
    """Ratio of the best samples: noise only ever adds time, so it is a
    useful second reading on a busy machine."""
    if a is None or b is None or b.low <= 0:
        return ""
    return f"best/best {fmt_ratio(a.low / b.low)}"


def _ratio_target(
    name: str,
    scenario: str,
    metric: str,
    ours: str,
    other: str,
    limit: float,
    strict: bool = False,
) -> Callable[[RunResult], Verdict]:
    def evaluate(result: RunResult) -> Verdict:
        mine = _stat(result, scenario, ours, metric)
        theirs = _stat(result, scenario, other, metric)
        ratio = _ratio(
            None if mine is None else mine.median,
            None if theirs is None else theirs.median,
        )
        sign = "<" if strict else "<="
        passed = (
            None if ratio is None else (ratio < limit if strict else ratio <= limit)
        )
        return Verdict(
            name,
            fmt_ratio(ratio),
            f"{sign} {limit:g}x {other}",
            passed,
            _min_ratio(mine, theirs),
        )

    return evaluate


def _vs_fastest_peer(result: RunResult) -> Verdict:
    name = "closed `call` vs fastest peer (as documented)"
    best = fastest_peer(result, "closed")
    if best is None:
        return Verdict(name, "-", "< 0.5x", None)

    ratio = _ratio(result.median("closed", OURS, "per_call"), best[1])
    passed = None if ratio is None else ratio < 0.5
    detail = _min_ratio(
        _stat(result, "closed", OURS, "per_call"),
        _stat(result, "closed", best[0], "per_call"),
    )
    return Verdict(name, f"{fmt_ratio(ratio)} ({best[0]})", "< 0.5x", passed, detail)


def _refusal_memory(result: RunResult) -> Verdict:
    name = "no memory kept per refusal"
    sem = result.semantics.get(OURS)
    if sem is None or sem.retained_per_refusal is None:
        return Verdict(name, "-", "<= 1 B/refusal", None)

    value = sem.retained_per_refusal
    return Verdict(name, f"{value:.2f} B/refusal", "<= 1 B/refusal", value <= 1.0)


_FORMATS: dict[str, Callable[[float], str]] = {
    "bytes": fmt_bytes,
    "time": fmt_time,
    "ms": lambda v: f"{v:.2f} ms",
}


def _absolute(
    name: str,
    scenario: str,
    metric: str,
    limit: float,
    kind: str,
    inclusive: bool = False,
) -> Callable[[RunResult], Verdict]:
    shown = _FORMATS[kind]
    limit_text = f"{'<=' if inclusive else '<'} {shown(limit)}"

    def evaluate(result: RunResult) -> Verdict:
        stats = _stat(result, scenario, OURS, metric)
        if stats is None:
            return Verdict(name, "-", limit_text, None)

        value = stats.median
        passed = value <= limit if inclusive else value < limit
        detail = f"best {shown(stats.low)}" if len(stats.samples) > 1 else ""
        return Verdict(name, shown(value), limit_text, passed, detail)

    return evaluate


def _half_open_admits_one(result: RunResult) -> Verdict:
    name = "half-open admits exactly one trial"
    stats = result.stats.get("half_open", {}).get(OURS, {}).get("admitted")
    if stats is None:
        return Verdict(name, "-", "== 1 in every sample", None)

    return Verdict(
        name,
        f"{stats.low:.0f}..{stats.high:.0f}",
        "== 1 in every sample",
        stats.low == stats.high == 1,
    )


TARGETS: tuple[Callable[[RunResult], Verdict], ...] = (
    _ratio_target(
        "closed `call` vs minimal breaker", "closed", "per_call", OURS, "minimal", 1.5
    ),
    _vs_fastest_peer,
    _ratio_target(
        "closed `call` vs purgatory, breaker held",
        "closed",
        "per_call",
        OURS,
        "purgatory-held",
        1.0,
        strict=True,
    ),
    _ratio_target(
        "open refusal vs raise-and-catch", "open", "per_call", OURS, "raise", 2.0
    ),
    _refusal_memory,
    _ratio_target(
        "concurrent calls vs no breaker", "concurrent", "total", OURS, "bare", 1.2
    ),
    _absolute(
        "bytes per registered connection", "register", "bytes_per_item", 1024, "bytes"
    ),
    _absolute("time per registration", "register", "per_item", 5_000, "time"),
    _absolute(
        "bytes per open circuit with pending expiry",
        "open_many",
        "bytes_per_open",
        1024,
        "bytes",
    ),
    _absolute(
        "cleanup sweep: longest loop stall", "sweep", "stall_ms", 5.0, "ms", True
    ),
    _half_open_admits_one,
)


def evaluate(result: RunResult) -> list[Verdict]:
    """Every target's verdict for ``result``."""
    return [target(result) for target in TARGETS]
