"""Answer refused calls with ``503 Service Unavailable`` in Starlette and FastAPI.

When a route handler uses a breaker whose circuit is open, the breaker raises
`brama_async.CircuitOpenError` without running the protected call.  Left alone,
that becomes a ``500``.  This module turns it into a ``503`` with a
``Retry-After`` header that tells the client when the circuit goes half-open:

.. code-block:: python

    from fastapi import FastAPI
    from brama_async.integrations.starlette import install_circuit_open_handler

    app = FastAPI()
    install_circuit_open_handler(app)

Needs the ``starlette`` extra (FastAPI depends on Starlette, so a FastAPI
install already has it).  The core package never imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._errors import CircuitOpenError

__all__ = [
    "circuit_open_response",
    "install_circuit_open_handler",
    "make_circuit_open_handler",
    "retry_after_seconds",
]

#: The handler signature Starlette expects for HTTP exception handlers.
Handler = Callable[[Request, Exception], Awaitable[Response]]

_DETAIL = "Service Unavailable"


def retry_after_seconds(
    exc: CircuitOpenError, default: int | None = None
) -> int | None:
    """The ``Retry-After`` value for a refusal, in whole seconds.

    Args:
        exc: The refusal.
        default:
            Used when the refusal carries no remaining time, which happens while
            the connection's expiry is disabled (the circuit stays open until
            someone closes it by hand).

    Returns:
        ``remaining`` rounded up, and at least 1 (a half-open circuit that
        refuses because its trial slots are busy reports no time left, and
        ``Retry-After: 0`` would invite an immediate retry); ``default`` when
        ``remaining`` is ``None``.
    """
    if exc.remaining is None:
        return default

    return max(1, math.ceil(exc.remaining))


def make_circuit_open_handler(
    *,
    default_retry_after: int | None = None,
    detail: str = _DETAIL,
) -> Handler:
    """Build an exception handler that answers `CircuitOpenError` with a ``503``.

    Args:
        default_retry_after:
            ``Retry-After`` seconds to send when the refusal has no remaining
            time (expiry disabled).  ``None`` (the default) omits the header in
            that case.
        detail: The ``detail`` text of the JSON body.

    Returns:
        An async handler for ``app.add_exception_handler(CircuitOpenError, ...)``.
        The body is ``{"detail": detail}``; the connection's name is not sent
        to the client.  Any other exception given to it is re-raised unchanged.
    """
    if default_retry_after is not None and default_retry_after < 0:
        msg = f"default_retry_after must be None or >= 0, not {default_retry_after}"
        raise ValueError(msg)

    async def handle(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, CircuitOpenError):
            raise exc

        headers = {}
        seconds = retry_after_seconds(exc, default_retry_after)
        if seconds is not None:
            headers["Retry-After"] = str(seconds)

        return JSONResponse({"detail": detail}, status_code=503, headers=headers)

    return handle


#: The default handler: ``503``, ``Retry-After`` when a time is known.
circuit_open_response: Handler = make_circuit_open_handler()


def install_circuit_open_handler(
    app: Starlette,
    *,
    default_retry_after: int | None = None,
    detail: str = _DETAIL,
) -> None:
    """Make ``app`` answer every `CircuitOpenError` with ``503 Service Unavailable``.

    Works for Starlette and FastAPI applications (and their sub-applications).
    The handler runs on the event loop, not in a thread.  Exceptions that are
    not `CircuitOpenError` are untouched, including the failure that trips a
    circuit: that call raised its own error and it reaches the app's other
    handlers as it is.

    Args:
        app: The application.
        default_retry_after: See `make_circuit_open_handler`.
        detail: See `make_circuit_open_handler`.
    """
    handler = make_circuit_open_handler(
        default_retry_after=default_retry_after, detail=detail
    )
    app.add_exception_handler(CircuitOpenError, handler)
