"""Every ```python block in README.md and docs/*.md runs without error.

Blocks are independent: each runs in a fresh namespace.  They may use
top-level ``await``, ``async with`` and ``async for`` (as in the
``python -m asyncio`` REPL); such blocks run on asyncio.  A block is skipped
only when the line just before its opening fence is exactly::

    <!-- docs-test: skip -->

which renders as nothing.  Use it sparingly, for code that needs something
the test machine cannot offer.
"""

import ast
import inspect
import re
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARKER = "<!-- docs-test: skip -->"
FENCE = re.compile(r"^```python\s*$")


def python_blocks(path):
    """Yield ``(first line number, code, skipped)`` for each python block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            index += 1
            continue

        skipped = index > 0 and lines[index - 1].strip() == SKIP_MARKER
        start = index + 1
        end = start
        while not lines[end].startswith("```"):
            end += 1

        yield start + 1, "\n".join(lines[start:end]) + "\n", skipped
        index = end + 1


def collect():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for line, code, skipped in python_blocks(page):
            name = f"{page.relative_to(ROOT)}:{line}"
            marks = [pytest.mark.skip(reason=SKIP_MARKER)] if skipped else []
            yield pytest.param(name, code, id=name, marks=marks)


BLOCKS = list(collect())


def test_blocks_were_found():
    """The collector sees the pages (a guard against an empty parametrize)."""
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize(("name", "code"), BLOCKS)
def test_block_runs(name, code):
    """The block compiles and runs to completion."""
    compiled = compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace = {"__name__": "__docs__"}

    if compiled.co_flags & inspect.CO_COROUTINE:

        async def run():
            await eval(compiled, namespace)

        anyio.run(run, backend="asyncio")
    else:
        exec(compiled, namespace)
