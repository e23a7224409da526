"""Command line: ``python -m brama_async demo`` (also installed as ``brama-async``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _positive_duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None

    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(
            "duration must be between 0.5 and 3600 seconds"
        )

    return value


_DEMO_DESCRIPTION = """\
Start a flaky HTTP service on 127.0.0.1 (an ephemeral port) that alternates
healthy periods, error bursts (HTTP 500) and hangs (requests never answered),
and call it 20 times a second through a breaker with progressive expiry: it
opens after 3 failures in a row, and each consecutive open lasts twice as long.

One line is printed per event as it happens: the time since the start, the
service's phase changes, and each circuit transition with the calls admitted,
refused, failed and succeeded so far and, when the circuit opens, the time it
goes half-open.  A summary follows.  Ctrl-C stops the demo cleanly."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for the ``brama-async`` command."""
    from ._demo import PATTERN_HELP

    parser = argparse.ArgumentParser(
        prog="brama-async",
        description="Circuit breakers for asyncio and trio, built on anyio.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    patterns = "\n".join(f"  {name:<9} {text}" for name, text in PATTERN_HELP.items())
    demo = commands.add_parser(
        "demo",
        help="watch a breaker protect a flaky local HTTP service",
        description=_DEMO_DESCRIPTION,
        epilog=f"failure patterns:\n{patterns}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--duration",
        type=_positive_duration,
        default=20.0,
        metavar="SECONDS",
        help="how long to run; every phase scales with it (default: 20)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed for phase lengths and stray errors (default: 1)",
    )
    demo.add_argument(
        "--pattern",
        choices=sorted(PATTERN_HELP),
        default="mixed",
        help="the service's failure pattern, see below (default: mixed)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status.

    Returns 0 on success, 2 for a usage error and 130 when interrupted with
    Ctrl-C (after shutting the demo down, without a traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 2

    from ._demo import DemoConfig, run_demo

    config = DemoConfig(duration=args.duration, seed=args.seed, pattern=args.pattern)
    try:
        run_demo(config)
    except KeyboardInterrupt:
        print("\ninterrupted, demo stopped", file=sys.stderr, flush=True)
        return 130

    return 0


if __name__ == "__main__":
    sys.exit(main())
