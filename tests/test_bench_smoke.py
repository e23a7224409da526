"""Smoke test of the benchmark suite in ``bench/``.

Runs the quickest mode on a few scenarios and checks the report's shape and
brama_async's semantic checks. It asserts nothing about timings: those belong
to ``python -m bench``, not to the unit tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import cli, report  # noqa: E402
from bench.runner import RunResult  # noqa: E402


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def quick_run(request: pytest.FixtureRequest) -> RunResult:
    """One quick run of the closed and open scenarios."""
    args = cli.parse_args(
        [
            "--quick",
            "--reps",
            "1",
            "--loop",
            request.param,
            "--only",
            "brama_async",
            "--scenarios",
            "closed,open",
        ]
    )
    return cli.execute(args)


def _rows(markdown: str, section: str) -> list[str]:
    """The first cell of every data row of the table under ``## section``."""
    lines = markdown.split("\n## " + section, 1)[1].split("\n## ", 1)[0].splitlines()
    cells = [line.split("|")[1].strip() for line in lines if line.startswith("| ")]
    return cells[1:]


def test_semantic_checks_pass_for_brama_async(quick_run: RunResult) -> None:
    sem = quick_run.semantics["brama_async"]

    assert sem.passed, sem.summary()
    assert sem.opens_after_threshold
    assert sem.refuses_without_running
    assert sem.retained_per_refusal is not None


def test_report_has_the_expected_rows(quick_run: RunResult) -> None:
    text = report.markdown(quick_run)

    assert not quick_run.errors
    assert _rows(text, "Closed-state success") == [
        "bare",
        "minimal",
        "minimal-with",
        "minimal-deco",
        "brama_async",
    ]
    assert _rows(text, "Open-state refusal") == [
        "raise",
        "minimal",
        "minimal-with",
        "minimal-deco",
        "brama_async",
    ]
    targets = _rows(text, "Targets")
    assert "closed `call` vs minimal breaker" in targets
    assert "open refusal vs raise-and-catch" in targets


def test_json_report_has_every_sample(quick_run: RunResult) -> None:
    data = report.as_json(quick_run)

    assert '"closed"' in data
    assert '"brama_async"' in data
