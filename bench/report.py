"""Renders a :class:`~bench.runner.RunResult` as Markdown (and as JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from bench._timing import Stats, fmt_bytes, fmt_count, fmt_ratio, fmt_time
from bench.contenders import MINIMAL_BY_STYLE
from bench.runner import RunResult
from bench.scenarios import Metric, Scenario
from bench.targets import evaluate, fastest_peer

_FORMAT: dict[str, Callable[[float], str]] = {
    "time": fmt_time,
    "bytes": fmt_bytes,
    "count": fmt_count,
    "ms": lambda v: f"{v:.2f}",
}

_SUPPORT = ("anyio", "trio", "uvloop", "tornado")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with the columns padded for plain-text reading."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(metric: Metric, value: float | None) -> str:
    return "-" if value is None else _FORMAT[metric.kind](value)


def _range(metric: Metric, stats: Stats) -> str:
    if len(stats.samples) == 1:
        return "-"
    return f"{_fmt(metric, stats.low)} - {_fmt(metric, stats.high)}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    return fmt_ratio(a / b)


def _versions(result: RunResult) -> str:
    parts = []
    for c in result.contenders:
        if c.dist is not None and c.kind != "floor" and c.version():
            parts.append(f"{c.dist} {c.version()}")
    for dist in _SUPPORT:
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(dict.fromkeys(parts))


def _header(result: RunResult) -> list[str]:
    meta = result.meta
    s = result.settings
    mode = "quick (smoke sizes: indicative only)" if s.quick else "full"
    return [
        f"# brama_async benchmark ({result.loop})",
        "",
        f"- date: {meta['date']}; run time {meta.get('elapsed_s', '?')} s",
        f"- mode: {mode}",
        f"- machine: {meta['cpu']}, {meta['nproc']} CPUs, {meta['platform']}",
        f"- Python {meta['python']} ({meta['implementation']}), loop: {result.loop}",
        f"- brama_async revision: {meta.get('revision', 'unknown')}",
        f"- versions: {_versions(result)}",
        f"- repetitions: {s.reps} (heavy scenarios {s.heavy_reps}, memory passes "
        f"{s.mem_reps}), contenders interleaved round-robin in every repetition; "
        "median and min - max shown",
    ]


def _targets(result: RunResult) -> list[str]:
    verdicts = evaluate(result)
    rows = [[v.target, v.measured, v.limit, v.outcome, v.detail] for v in verdicts]
    header = ["target", "measured (medians)", "limit", "result", "second reading"]
    return ["## Targets", "", table(header, rows)]


def _semantics(result: RunResult) -> list[str]:
    rows = []
    for key, sem in result.semantics.items():
        retained = (
            "-"
            if sem.retained_per_refusal is None
            else f"{sem.retained_per_refusal:.2f}"
        )
        rows.append(
            [
                key,
                _yes(sem.returns_value),
                "yes" if sem.raises_own_error else "/".join(sem.tripping_errors),
                _yes(sem.opens_after_threshold),
                _yes(sem.refuses_without_running),
                retained,
                "ok" if sem.passed else "FAILED: " + _shorten(sem.summary()),
            ]
        )
    header = [
        "contender",
        "returns value",
        "errors raised by the 3 failing calls",
        "opens after 3 awaited failures",
        "refuses without running f",
        "B kept per refusal",
        "verdict",
    ]
    return [
        "## Semantic checks (before timing)",
        "",
        "A contender that fails any check is marked with `!` and not ranked.",
        "",
        table(header, rows),
    ]


def _shorten(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _contenders(result: RunResult) -> list[str]:
    rows = []
    for c in result.contenders:
        api = f"`{c.api}`" if c.api else ""
        rows.append([c.key, c.kind, c.version() or "-", api, c.note])
    lines = [
        "## Contenders",
        "",
        table(["contender", "kind", "version", "measured call", "note"], rows),
    ]
    if result.skipped:
        lines += [""] + [f"- skipped `{k}`: {why}" for k, why in result.skipped.items()]
    return lines


def _label(result: RunResult, key: str) -> str:
    return key if result.ranked(key) else f"{key} !"


def _scenario(result: RunResult, scenario: Scenario) -> list[str]:
    stats = result.stats.get(scenario.key)
    errors = result.errors.get(scenario.key, {})
    if not stats and not errors:
        return []

    first = scenario.metrics[0]
    size = f" (N = {scenario.size(result.settings):,})" if scenario.size else ""
    lines = [f"## {scenario.title}{size}", "", scenario.what, ""]

    floor = (
        result.median(scenario.key, scenario.floor, first.key)
        if scenario.floor
        else None
    )
    peer = fastest_peer(result, scenario.key) if first.key == "per_call" else None
    header = ["contender", "kind", f"median {first.label}", "min - max"]
    if scenario.floor:
        header.append(f"x {scenario.floor}")
    if scenario.calibrate:
        header += ["x minimal (same style)", "x fastest peer", "calls/sample"]
    header += [f"median {m.label}" for m in scenario.metrics[1:]]

    rows = []
    for c in result.contenders:
        by_metric = (stats or {}).get(c.key)
        if by_metric is None or first.key not in by_metric:
            continue
        main = by_metric[first.key]
        row = [
            _label(result, c.key),
            c.kind,
            _fmt(first, main.median),
            _range(first, main),
        ]
        if scenario.floor:
            row.append(_ratio(main.median, floor))
        if scenario.calibrate:
            minimal = result.median(scenario.key, MINIMAL_BY_STYLE[c.style], first.key)
            row.append(_ratio(main.median, minimal))
            row.append(_ratio(main.median, peer[1] if peer else None))
            row.append(f"{result.calls.get(scenario.key, {}).get(c.key, 0):,}")
        for metric in scenario.metrics[1:]:
            extra = by_metric.get(metric.key)
            row.append(_fmt(metric, None if extra is None else extra.median))
        rows.append(row)

    if rows:
        lines.append(table(header, rows))
    if peer is not None:
        lines += ["", f"Fastest documented peer: `{peer[0]}`."]
    for key, error in errors.items():
        lines += ["", f"- `{key}` failed: {error}"]
    return lines


def markdown(result: RunResult) -> str:
    """The whole report: header, targets, semantic checks, one table per scenario."""
    parts: list[list[str]] = [
        _header(result),
        _targets(result),
        _semantics(result),
    ]
    for scenario in result.scenarios:
        parts.append(_scenario(result, scenario))
    parts.append(_contenders(result))
    return "\n\n".join("\n".join(p) for p in parts if p) + "\n"


def as_json(result: RunResult) -> str:
    """The raw numbers (every sample) as JSON."""
    data: dict[str, Any] = {
        "meta": result.meta,
        "settings": vars(result.settings),
        "skipped": result.skipped,
        "errors": result.errors,
        "semantics": {k: vars(v) for k, v in result.semantics.items()},
        "calls": result.calls,
        "stats": {
            scenario: {
                key: {
                    metric: {
                        "median": s.median,
                        "min": s.low,
                        "max": s.high,
                        "samples": list(s.samples),
                    }
                    for metric, s in by_metric.items()
                }
                for key, by_metric in by_contender.items()
            }
            for scenario, by_contender in result.stats.items()
        },
        "targets": [
            {
                "target": v.target,
                "measured": v.measured,
                "limit": v.limit,
                "result": v.outcome,
            }
            for v in evaluate(result)
        ],
    }
    return json.dumps(data, indent=1, default=str)
