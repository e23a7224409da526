"""Command line: ``python -m bench`` or ``python bench/run.py``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import report
from bench._backend import LOOPS, make_backend
from bench.contenders import CONTENDERS
from bench.runner import RunResult, run
from bench.scenarios import SCENARIOS, Settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark brama_async against other circuit breakers and against "
            "floors (no breaker, raise-and-catch, a minimal breaker), in one run."
        ),
    )
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke test in seconds"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated contenders (the floors and minimal breakers are "
        f"always added); known: {', '.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--scenarios",
        default="",
        help=f"comma-separated scenarios; known: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 7, quick 3)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the report here")
    parser.add_argument("--json", metavar="FILE", help="write every sample as JSON")
    return parser.parse_args(argv)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def execute(args: argparse.Namespace) -> RunResult:
    """Run the benchmark described by ``args`` on a fresh loop."""
    settings = Settings.quick_settings() if args.quick else Settings()
    if args.reps:
        settings.reps = args.reps

    scenario_keys = _split(args.scenarios) or None
    unknown = [k for k in scenario_keys or () if k not in SCENARIOS]
    if unknown:
        raise SystemExit(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )

    backend = make_backend(args.loop)
    only = _split(args.only) or None

    async def main() -> RunResult:
        return await run(backend, settings, only, scenario_keys)

    return backend.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the Markdown report, write the requested files; exit status 0."""
    args = parse_args(argv)
    result = execute(args)
    text = report.markdown(result)
    sys.stdout.write(text)

    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(report.as_json(result))

    return 0
