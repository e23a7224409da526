"""The examples, driven against real HTTP servers on 127.0.0.1.

Each example exposes ``main(...)`` taking the upstream's URL and short
timings; the tests call it in-process with the examples' own local server.
One more test runs every example as a script, as a user would.
"""

import subprocess
import sys
from functools import partial
from pathlib import Path

import anyio
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import quickstart  # noqa: E402
import scopes  # noqa: E402
import worker  # noqa: E402

import _upstream  # noqa: E402

Upstream = _upstream.Upstream


async def switch_mode(upstream, mode, after):
    """Set ``upstream.mode`` to ``mode`` after ``after`` seconds."""
    await anyio.sleep(after)
    upstream.mode = mode


class TestQuickstart:
    pytestmark = pytest.mark.anyio

    async def test_walkthrough(self):
        """Three call styles succeed, three failures open, expiry recovers."""
        async with Upstream() as server:
            lines = await quickstart.main(server.url, expiry=0.2)

        assert [line.split(":")[0] for line in lines] == [
            "call",
            "context manager",
            "decorator",
            "failed",
            "failed",
            "failed",
            "refused",
            "state",
            "after expiry",
            "trial call",
            "state",
        ]
        assert lines[0].endswith("200")
        assert lines[7].endswith("open")
        assert lines[8].endswith("half_open")
        assert lines[10].endswith("closed")
        assert server.paths.count("/status/500") == 3


class TestAiohttp:
    pytestmark = pytest.mark.asyncio

    async def test_refuses_once_open(self):
        """A failing upstream sees three requests; the rest are refused."""
        aiohttp_client = pytest.importorskip("aiohttp_client")

        async with Upstream("error") as server:
            outcomes = await aiohttp_client.main(
                f"{server.url}/api", requests=8, interval=0.0, expiry=5.0
            )

        assert outcomes == {"failed": 3, "refused": 5}
        assert server.hits == 3

    async def test_client_errors_do_not_count(self):
        """404 answers fail the request but never open the circuit."""
        aiohttp_client = pytest.importorskip("aiohttp_client")

        async with Upstream() as server:
            outcomes = await aiohttp_client.main(
                f"{server.url}/status/404", requests=6, interval=0.0
            )

        assert outcomes == {"failed": 6}
        assert server.hits == 6

    async def test_recovers(self):
        """After the upstream heals, a trial closes the circuit again."""
        aiohttp_client = pytest.importorskip("aiohttp_client")

        async with Upstream("error") as server, anyio.create_task_group() as tasks:
            tasks.start_soon(switch_mode, server, "ok", 0.3)
            outcomes = await aiohttp_client.main(
                server.url, requests=40, interval=0.02, expiry=0.1
            )

        assert outcomes["failed"] >= 3
        assert outcomes["refused"] > 0
        assert outcomes["ok"] > 0


class TestHttpx:
    pytestmark = pytest.mark.anyio

    async def test_decorated_function_opens_and_recovers(self):
        """The decorator registers on first use, opens, then recovers."""
        httpx_client = pytest.importorskip("httpx_client")

        async with Upstream("error") as server, anyio.create_task_group() as tasks:
            tasks.start_soon(switch_mode, server, "ok", 0.3)
            outcomes = await httpx_client.main(
                server.url, requests=40, interval=0.02, expiry=0.1
            )

        assert outcomes["failed"] >= 3
        assert outcomes["refused"] > 0
        assert outcomes["ok"] > 0
        assert server.paths[0] == "/quotes/BRM"

    async def test_hang_counts_as_failure(self):
        """A request that times out inside the decorated function counts."""
        httpx_client = pytest.importorskip("httpx_client")

        async with Upstream("hang") as server:
            outcomes = await httpx_client.main(
                server.url, requests=5, interval=0.0, request_timeout=0.05
            )

        assert outcomes == {"failed": 3, "refused": 2}


class TestFastAPI:
    pytestmark = pytest.mark.asyncio

    async def test_over_uvicorn(self):
        """200 while healthy, 502 for counted failures, then 503 + Retry-After."""
        fastapi_app = pytest.importorskip("fastapi_app")

        async with Upstream() as upstream:
            app = fastapi_app.create_app(upstream.url, expiry=5.0)
            async with fastapi_app.serve(app) as app_url:
                seen = await fastapi_app.tour(app_url, upstream)

        assert seen == [
            (200, None),
            (502, None),
            (502, None),
            (502, None),
            (503, "5"),
            (200, None),
        ]
        assert upstream.hits == 4

    async def test_over_asgi_transport(self):
        """The same app driven in-process, lifespan included, still 503s."""
        fastapi_app = pytest.importorskip("fastapi_app")
        httpx = pytest.importorskip("httpx")

        async with Upstream("error") as upstream:
            app = fastapi_app.create_app(upstream.url, expiry=30.0)
            async with app.router.lifespan_context(app) as state:
                transport = httpx.ASGITransport(app=_with_state(app, state))
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://app"
                ) as client:
                    statuses = [
                        (await client.get("/stock/pears")).status_code for _ in range(4)
                    ]
                    refused = await client.get("/stock/pears")
                    health = await client.get("/health")

        assert statuses == [502, 502, 502, 503]
        assert refused.status_code == 503
        assert 29 <= int(refused.headers["Retry-After"]) <= 30
        assert refused.json() == {"detail": "Service Unavailable"}
        assert health.json() == {"inventory": "open"}


def _with_state(app, state):
    """Hand the lifespan state to each request, as an ASGI server would."""

    async def wrapped(scope, receive, send):
        scope = {**scope, "state": dict(state)}
        await app(scope, receive, send)

    return wrapped


class TestWorker:
    pytestmark = pytest.mark.anyio

    async def test_every_job_done_despite_a_hang(self):
        """Jobs wait out the open circuit and all complete once it heals."""
        async with Upstream("hang") as server, anyio.create_task_group() as tasks:
            tasks.start_soon(switch_mode, server, "ok", 0.4)
            stats = await worker.main(
                server.url, jobs=20, workers=3, expiry=0.15, within=0.1
            )

        assert sorted(stats.processed) == list(range(20))
        assert stats.events[0] == "registered"
        assert "circuit_opened" in stats.events
        assert stats.events[-1] == "circuit_closed"
        assert stats.refusals > 0
        assert stats.failures >= 3


class TestScopes:
    pytestmark = pytest.mark.anyio

    async def test_one_tenant_failing_leaves_others_alone(self):
        """Circuits are per (tenant, host): only the failing tenant is refused."""
        async with Upstream("ok") as healthy, Upstream("error") as broken:
            results = await scopes.main(
                {
                    "acme": f"{broken.url}/hooks/acme",
                    "globex": f"{healthy.url}/hooks/globex",
                    "initech": f"{healthy.url}/hooks/initech",
                },
                rounds=6,
                interval=0.0,
            )

        assert results["acme"] == {"failed": 3, "refused": 3}
        assert results["globex"] == {"ok": 6}
        assert results["initech"] == {"ok": 6}
        assert broken.hits == 3


def test_every_example_runs_as_a_script():
    """``python examples/NAME.py`` exits 0 for each example, all run at once."""
    names = [
        "quickstart",
        "aiohttp_client",
        "httpx_client",
        "fastapi_app",
        "worker",
        "scopes",
    ]
    start = partial(
        subprocess.Popen,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=EXAMPLES.parent,
    )
    running = {name: start([sys.executable, f"examples/{name}.py"]) for name in names}

    failures = {}
    for name, process in running.items():
        output, _ = process.communicate(timeout=30)
        if process.returncode != 0:
            failures[name] = output[-2000:]

    assert failures == {}
