"""Untimed checks that a contender really is a circuit breaker before it is ranked.

A contender passes when:

* a successful call returns the function's value;
* ``threshold`` failing *awaited* calls raise the function's own error (the
  call that trips may raise the library's open error instead: reported, not
  failed) and then the circuit is open (a breaker that records success when
  the coroutine is created, not when it finishes, never opens);
* an open circuit refuses with the library's open error without running the
  function;
* refusing keeps no memory per refusal (tracemalloc: growth over a second
  batch of refusals, after a first batch took the fixed costs).
"""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

from bench import _work
from bench.contenders import Contender

THRESHOLD = 3
RESET = 3600.0
REFUSALS = 10_000
# Bytes per refusal still counted as "no memory per refusal" (allocator noise).
RETAINED_LIMIT = 1.0


@dataclass
class Semantics:
    """Outcome of the semantic checks of one contender."""

    returns_value: bool = False
    raises_own_error: bool = False
    tripping_errors: list[str] = field(default_factory=list)
    opens_after_threshold: bool = False
    refuses_without_running: bool = False
    retained_per_refusal: float | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return self.error is None and not self.problems

    def summary(self) -> str:
        """One line: ``ok`` or what failed."""
        if self.error is not None:
            return f"error: {self.error}"

        return "ok" if not self.problems else "; ".join(self.problems)


async def check(contender: Contender, refusals: int = REFUSALS) -> Semantics:
    """Run every check on ``contender``; never raises."""
    result = Semantics()
    try:
        await _check_counting(contender, result)
        await _check_refusal_memory(contender, result, refusals)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"

    return result


async def _check_counting(contender: Contender, result: Semantics) -> None:
    handle = await contender.make("semantics", THRESHOLD, RESET)

    value = await contender.bind(handle, _work.succeed)()
    result.returns_value = value == 1
    if not result.returns_value:
        result.problems.append(f"success returned {value!r}, not 1")

    failing = contender.bind(handle, _work.fail)
    seen: list[str] = []
    for _ in range(THRESHOLD):
        try:
            await failing()
            seen.append("no error")
        except BaseException as exc:
            seen.append(type(exc).__name__)
    result.raises_own_error = all(name == "WorkFailure" for name in seen)
    result.tripping_errors = seen
    allowed_last = {"WorkFailure", *(e.__name__ for e in contender.open_errors())}
    if any(name != "WorkFailure" for name in seen[:-1]) or seen[-1] not in allowed_last:
        result.problems.append(f"failing calls raised {seen}")

    counted, counter = _work.make_counted()
    try:
        await contender.bind(handle, counted)()
        result.problems.append(f"still closed after {THRESHOLD} awaited failures")
    except contender.open_errors():
        result.opens_after_threshold = True
    except BaseException as exc:
        result.problems.append(f"refusal raised {type(exc).__name__}")

    result.refuses_without_running = counter.calls == 0
    if not result.refuses_without_running:
        result.problems.append("ran the function while open")

    await contender.drop(handle)


async def _check_refusal_memory(
    contender: Contender, result: Semantics, refusals: int
) -> None:
    handle = await contender.make("semantics-memory", THRESHOLD, RESET)
    await contender.trip(handle, THRESHOLD)
    guarded = contender.bind(handle, _work.succeed)
    errors = contender.open_errors()

    last: Any = None
    for _ in range(200):
        try:
            await guarded()
        except errors as exc:
            last = exc
    last = None
    await contender._drain()
    gc.collect()

    async def refuse_many() -> None:
        nonlocal last
        for _ in range(refusals):
            try:
                await guarded()
            except errors as exc:
                last = exc
        await contender._drain()
        gc.collect()

    # Two equal batches under tracing: the growth over the second batch is
    # what each refusal keeps; fixed costs (tracing, caches) land in the first.
    tracemalloc.start()
    try:
        await refuse_many()
        first = tracemalloc.get_traced_memory()[0]
        await refuse_many()
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    del last
    result.retained_per_refusal = (second - first) / refusals
    if result.retained_per_refusal > RETAINED_LIMIT:
        result.problems.append(f"keeps {result.retained_per_refusal:.1f} B per refusal")

    await contender.drop(handle)
    gc.collect()
