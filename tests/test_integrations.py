"""The Starlette/FastAPI helper: 503 with Retry-After for refused calls."""

import subprocess
import sys

import pytest

from brama_async import Brama, CircuitOpenError, State

starlette = pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from brama_async.integrations.starlette import (  # noqa: E402
    circuit_open_response,
    install_circuit_open_handler,
    make_circuit_open_handler,
    retry_after_seconds,
)


class Boom(Exception):
    """A counted failure."""


def refusal(remaining):
    return CircuitOpenError("api", None, State.OPEN, remaining, None)


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [(30.0, 30), (4.2, 5), (0.001, 1), (0.0, 1), (None, None)],
)
def test_retry_after_rounds_up_to_whole_seconds(remaining, expected):
    """Retry-After is ``ceil(remaining)``, at least 1, None when unknown."""
    assert retry_after_seconds(refusal(remaining)) == expected


def test_retry_after_default_when_expiry_disabled():
    """With no remaining time the default is used."""
    assert retry_after_seconds(refusal(None), default=60) == 60


def test_negative_default_is_refused():
    """A negative default makes no sense as a header value."""
    with pytest.raises(ValueError, match="default_retry_after"):
        make_circuit_open_handler(default_retry_after=-1)


def test_core_import_does_not_import_starlette():
    """Only the integration module imports starlette."""
    code = "import brama_async, sys; print('starlette' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"


def make_app(brama, **options):
    """A Starlette app whose ``/`` route calls through the ``api`` breaker."""

    async def upstream(fail: bool) -> str:
        if fail:
            raise Boom("upstream down")

        return "fine"

    async def index(request: Request) -> PlainTextResponse:
        breaker = brama.breaker("api")
        text = await breaker.call(upstream, "fail" in request.query_params)
        return PlainTextResponse(text)

    async def other(request: Request) -> PlainTextResponse:
        raise RuntimeError("not a refusal")

    app = Starlette(routes=[Route("/", index), Route("/other", other)])
    install_circuit_open_handler(app, **options)
    return app


def client_for(app):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://app")


@pytest.mark.anyio
async def test_refusal_becomes_503_with_retry_after():
    """Failures pass through as errors; refusals are 503 + Retry-After."""
    async with Brama(max_attempts=2, expiry=42.0) as brama:
        await brama.register("api")
        async with client_for(make_app(brama)) as client:
            ok = await client.get("/")
            failures = [await client.get("/?fail=1") for _ in range(2)]
            refused = await client.get("/")

    assert ok.status_code == 200
    assert [r.status_code for r in failures] == [500, 500]
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "42"
    assert refused.json() == {"detail": "Service Unavailable"}


@pytest.mark.anyio
async def test_disabled_expiry_omits_or_defaults_retry_after():
    """No remaining time: no header, or the configured default."""
    async with Brama() as brama:
        breaker = await brama.register("api")
        await breaker.open_circuit()
        await breaker.disable_expiry()

        async with client_for(make_app(brama)) as client:
            plain = await client.get("/")

        app = make_app(brama, default_retry_after=120, detail="try later")
        async with client_for(app) as client:
            defaulted = await client.get("/")

    assert plain.status_code == 503
    assert "Retry-After" not in plain.headers
    assert defaulted.status_code == 503
    assert defaulted.headers["Retry-After"] == "120"
    assert defaulted.json() == {"detail": "try later"}


@pytest.mark.anyio
async def test_other_errors_are_left_alone():
    """Exceptions that are not refusals keep their usual handling."""
    async with Brama() as brama:
        await brama.register("api")
        async with client_for(make_app(brama)) as client:
            response = await client.get("/other")

    assert response.status_code == 500


@pytest.mark.anyio
async def test_bare_handler_re_raises_other_exceptions():
    """``circuit_open_response`` only answers CircuitOpenError."""
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})

    response = await circuit_open_response(request, refusal(2.5))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    with pytest.raises(Boom):
        await circuit_open_response(request, Boom())


@pytest.mark.anyio
async def test_fastapi_app():
    """FastAPI apps take the same handler."""
    fastapi = pytest.importorskip("fastapi")

    async with Brama(max_attempts=1, expiry=7.0) as brama:
        breaker = await brama.register("api")
        app = fastapi.FastAPI()
        install_circuit_open_handler(app)

        @app.get("/")
        async def index() -> dict[str, str]:
            async with breaker:
                pass

            return {"ok": "yes"}

        async with client_for(app) as client:
            first = await client.get("/")
            await breaker.open_circuit()
            refused = await client.get("/")

    assert first.json() == {"ok": "yes"}
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "7"
