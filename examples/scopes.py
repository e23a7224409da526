"""One breaker per tenant and downstream host, with ``scope=``.

A webhook dispatcher delivers events to endpoints that its tenants configure.
When one tenant's endpoint fails, only that tenant's deliveries should stop:
each circuit is keyed by ``(scope=tenant, identifier=host)``.  Two tenants that
point at the same host still get two independent circuits.

Run it with ``python examples/scopes.py``: it starts two local endpoints on
127.0.0.1, one of them failing.  ``main(endpoints)`` runs the dispatcher
against any endpoints (the tests use that).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from urllib.parse import urlsplit

import anyio

from _upstream import Upstream, get_status
from brama_async import (
    AlreadyRegistered,
    Brama,
    Breaker,
    CircuitOpenError,
    ConnectionNotFound,
)


async def breaker_for(brama: Brama, tenant: str, url: str) -> Breaker:
    """The tenant's breaker for the host of ``url``, registered on first use."""
    host = urlsplit(url).netloc
    try:
        return brama.breaker(host, scope=tenant)
    except ConnectionNotFound:
        pass

    try:
        return await brama.register(host, scope=tenant, metadata={"tenant": tenant})
    except AlreadyRegistered:
        # Another task registered it between the lookup and here.
        return brama.breaker(host, scope=tenant)


async def deliver(url: str) -> None:
    """POST-like delivery reduced to a GET; a 5xx answer is a failure."""
    status = await get_status(url, within=0.5)
    if status >= 500:
        raise RuntimeError(f"endpoint answered {status}")


async def main(
    endpoints: Mapping[str, str],
    *,
    rounds: int = 10,
    interval: float = 0.02,
    expiry: float = 5.0,
) -> dict[str, Counter[str]]:
    """Deliver ``rounds`` webhooks to each tenant's endpoint, all tenants at once.

    ``endpoints`` maps a tenant name to its webhook URL.  Returns, per tenant,
    a counter with the keys ``ok``, ``failed`` and ``refused``.
    """
    results: dict[str, Counter[str]] = {tenant: Counter() for tenant in endpoints}

    async def dispatch(tenant: str, url: str) -> None:
        for _ in range(rounds):
            breaker = await breaker_for(brama, tenant, url)
            try:
                await breaker.call(deliver, url)
            except CircuitOpenError:
                results[tenant]["refused"] += 1
            except (RuntimeError, TimeoutError, OSError):
                results[tenant]["failed"] += 1
            else:
                results[tenant]["ok"] += 1

            await anyio.sleep(interval)

    async with Brama(max_attempts=3, expiry=expiry) as brama:
        async with anyio.create_task_group() as tasks:
            for tenant, url in endpoints.items():
                tasks.start_soon(dispatch, tenant, url)

        for status in sorted(brama.connections(), key=lambda s: str(s.scope)):
            counts = dict(results[str(status.scope)])
            print(
                f"{status.scope:<8} {status.identifier:<16} "
                f"{status.state.value:<9} {counts}"
            )

    return results


async def standalone() -> None:
    async with Upstream("ok") as healthy, Upstream("error") as broken:
        await main(
            {
                "acme": f"{broken.url}/hooks/acme",
                "globex": f"{healthy.url}/hooks/globex",
                "initech": f"{healthy.url}/hooks/initech",
            }
        )


if __name__ == "__main__":
    anyio.run(standalone)
