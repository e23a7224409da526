"""pytest fixtures for code that uses brama_async (loaded automatically).

``brama_clock`` gives a fresh :class:`~brama_async.testing.ManualClock`;
``brama`` gives a running :class:`~brama_async.Brama` on that clock, closed
after the test. ``brama`` is an async fixture for tests run by anyio's pytest
plugin (``@pytest.mark.anyio``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._registry import Brama
from .testing import ManualClock


@pytest.fixture
def brama_clock() -> ManualClock:
    """A manual clock at 0.0."""
    return ManualClock()


@pytest.fixture
async def brama(
    brama_clock: ManualClock, anyio_backend: object
) -> AsyncIterator[Brama]:
    """A running registry on ``brama_clock``, closed after the test."""
    async with Brama(clock=brama_clock) as registry:
        yield registry
