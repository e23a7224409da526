"""brama_async's benchmark suite.

Measures brama_async against other circuit-breaker libraries and against
floors (bare ``await f()``, raise-and-catch, a minimal hand-written breaker) in
one run, with contenders interleaved round-robin in every repetition, and
prints Markdown tables of medians, ranges, ratios and target verdicts.

Run ``python -m bench --help``.
"""
