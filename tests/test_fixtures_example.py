"""The pytest fixtures as docs/testing.md shows them."""

import pytest

from brama_async import CircuitOpenError

pytestmark = pytest.mark.anyio


async def test_refuses_while_open(brama, brama_clock):
    api = await brama.register("api", expiry=60)
    await api.open_circuit()

    with pytest.raises(CircuitOpenError):
        await api.call(lambda: None)

    await brama_clock.advance(60)
    assert api.status().state == "half_open"
