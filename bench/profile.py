"""Profile brama_async's hot paths: ``python -m bench.profile``.

Runs many closed-state successes, open-state refusals or failures through one
breaker under cProfile (default) or pyinstrument (``--tool pyinstrument``, if
installed) and prints where the time goes. The minimal reference breaker can
be profiled the same way (``--target minimal``) to see what is extra.

Examples::

    python -m bench.profile                       # closed and open, call style
    python -m bench.profile --path open --style with
    python -m bench.profile --tool pyinstrument --calls 300000
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import pstats
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import _work
from bench._backend import LOOPS, make_backend
from bench.contenders import CONTENDERS, Contender

PATHS = ("closed", "open", "failure")
TARGETS = {
    ("brama_async", "call"): "brama_async",
    ("brama_async", "with"): "brama_async-with",
    ("brama_async", "deco"): "brama_async-deco",
    ("minimal", "call"): "minimal",
    ("minimal", "with"): "minimal-with",
    ("minimal", "deco"): "minimal-deco",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--path", choices=(*PATHS, "all"), default="all", help="which hot path"
    )
    parser.add_argument("--style", choices=("call", "with", "deco"), default="call")
    parser.add_argument(
        "--target", choices=("brama_async", "minimal"), default="brama_async"
    )
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument(
        "--tool", choices=("cprofile", "pyinstrument"), default="cprofile"
    )
    parser.add_argument(
        "--top", type=int, default=25, help="rows of the cProfile table"
    )
    parser.add_argument(
        "--sort", default="tottime", help="cProfile sort key (tottime, cumulative...)"
    )
    return parser.parse_args(argv)


async def _prepare(contender: Contender, path: str) -> tuple[Any, Any]:
    """A breaker in the state ``path`` needs, and the guarded function."""
    if path == "open":
        handle = await contender.make("profile-open", 3, 3600.0)
        await contender.trip(handle, 3)
        return handle, _work.succeed

    handle = await contender.make(f"profile-{path}", 10**9, 3600.0)
    return handle, _work.fail if path == "failure" else _work.succeed


async def _loop(contender: Contender, handle: Any, fn: Any, path: str, n: int) -> int:
    if path == "closed":
        return await contender.time_ok(handle, fn, n)

    errors = contender.open_errors() if path == "open" else (_work.WorkFailure,)
    return await contender.time_raising(handle, fn, n, errors)


def _profiler(tool: str) -> Any:
    if tool == "pyinstrument":
        try:
            from pyinstrument import Profiler
        except ImportError as exc:
            raise SystemExit(f"pyinstrument is not installed ({exc})") from None
        return Profiler(interval=0.0001, async_mode="disabled")

    return cProfile.Profile()


def _print_cprofile(profile: cProfile.Profile, calls: int, sort: str, top: int) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    print(stream.getvalue())

    print(f"per guarded call (tottime / {calls:,} calls), most expensive first:")
    rows = []
    for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        _primitive, total_calls, tottime, cumtime, _callers = row
        rows.append((tottime, cumtime, total_calls, f"{filename}:{line}({name})"))
    rows.sort(reverse=True)
    for tottime, cumtime, total_calls, where in rows[:top]:
        own = tottime / calls * 1e9
        cumulative = cumtime / calls * 1e9
        print(
            f"  {own:8.0f} ns own  {cumulative:8.0f} ns cum"
            f"  {total_calls / calls:5.2f}x/call  {where}"
        )


def profile(args: argparse.Namespace) -> None:
    """Profile the requested paths and print the reports."""
    backend = make_backend(args.loop)
    key = TARGETS[(args.target, args.style)]
    paths = PATHS[:2] if args.path == "all" else (args.path,)

    async def main() -> None:
        contender = CONTENDERS[key](backend)
        problem = contender.unavailable()
        if problem is not None:
            raise SystemExit(f"{key}: {problem}")

        await contender.start()
        try:
            for path in paths:
                handle, fn = await _prepare(contender, path)
                await _loop(contender, handle, fn, path, 5_000)
                plain = await _loop(contender, handle, fn, path, args.calls)
                print(
                    f"\n## {key}: {path} path, {args.calls:,} calls, loop {args.loop}"
                )
                print(f"unprofiled: {plain / args.calls:.0f} ns per call\n")

                gc.collect()
                profiler = _profiler(args.tool)
                started = time.perf_counter()
                profiler.enable() if args.tool == "cprofile" else profiler.start()
                try:
                    await _loop(contender, handle, fn, path, args.calls)
                finally:
                    if args.tool == "cprofile":
                        profiler.disable()
                    else:
                        profiler.stop()
                elapsed = time.perf_counter() - started
                print(f"profiled: {elapsed / args.calls * 1e9:.0f} ns per call\n")

                if args.tool == "cprofile":
                    _print_cprofile(profiler, args.calls, args.sort, args.top)
                else:
                    print(profiler.output_text(unicode=False, color=False))

                with contextlib.suppress(Exception):
                    await contender.drop(handle)
        finally:
            await contender.stop()

    backend.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.profile``."""
    profile(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
