"""Run the benchmark as a script: ``python bench/run.py [options]``.

Same as ``python -m bench``; see ``python -m bench --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _main() -> int:
    if not __package__:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    from bench.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(_main())
