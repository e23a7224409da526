"""The exceptions brama_async raises.

::

    BramaError
    ├── CircuitOpenError          a call was refused without running
    ├── ConnectionNotFound        (also LookupError) unknown (scope, identifier)
    ├── AlreadyRegistered         register() found the key taken
    ├── ConfigurationError        (also ValueError) a bad argument or option
    └── RegistryClosedError       (also RuntimeError) the registry is not running
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._types import State

__all__ = [
    "AlreadyRegistered",
    "BramaError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectionNotFound",
    "RegistryClosedError",
]


def _describe(identifier: str, scope: str | None) -> str:
    if scope is None:
        return repr(identifier)

    return f"{identifier!r} in scope {scope!r}"


class BramaError(Exception):
    """Base class of every exception raised by brama_async itself."""


class CircuitOpenError(BramaError):
    """Raised when a breaker refuses a call without running it.

    Only refused calls raise it: the call that trips a circuit raises its own
    exception. The attributes are a snapshot taken at refusal time and never
    change afterwards.

    Attributes:
        identifier: The connection's identifier.
        scope: The connection's scope, or ``None``.
        state: The state that refused the call (open, or half-open with every
            trial slot taken).
        remaining: Seconds until the circuit goes half-open, ``0.0`` when it is
            half-open already, or ``None`` while expiry is disabled.
        last_failure: The last exception counted as a failure, or ``None``.
    """

    # No __init__ of its own: BaseException stores the five arguments in
    # ``args`` and the attributes read them, so a refusal costs no more than
    # building a plain exception.
    args: tuple[str, str | None, State, float | None, BaseException | None]

    if TYPE_CHECKING:

        def __init__(
            self,
            identifier: str,
            scope: str | None,
            state: State,
            remaining: float | None,
            last_failure: BaseException | None,
        ) -> None: ...

    @property
    def identifier(self) -> str:
        """The connection's identifier."""
        return self.args[0]

    @property
    def scope(self) -> str | None:
        """The connection's scope, or ``None``."""
        return self.args[1]

    @property
    def state(self) -> State:
        """The state that refused the call."""
        return self.args[2]

    @property
    def remaining(self) -> float | None:
        """Seconds until half-open, ``0.0`` if half-open, ``None`` if disabled."""
        return self.args[3]

    @property
    def last_failure(self) -> BaseException | None:
        """The last exception counted as a failure, or ``None``."""
        return self.args[4]

    def __str__(self) -> str:
        if self.state is State.HALF_OPEN:
            when = "every half-open trial slot is taken"
        elif self.remaining is None:
            when = "it stays open until reset by hand"
        else:
            when = f"half-open in {self.remaining:.3f}s"

        text = f"circuit {_describe(self.identifier, self.scope)} is {self.state.value}"
        text = f"{text}; {when}"
        if self.last_failure is not None:
            text = f"{text}; last failure: {self.last_failure!r}"

        return text

    def __repr__(self) -> str:
        return (
            f"CircuitOpenError(identifier={self.identifier!r}, scope={self.scope!r}, "
            f"state={self.state.value!r}, remaining={self.remaining!r})"
        )


class ConnectionNotFound(BramaError, LookupError):
    """Raised when no connection is registered under ``(scope, identifier)``."""

    def __init__(self, identifier: str, scope: str | None) -> None:
        super().__init__(f"no connection {_describe(identifier, scope)} is registered")
        self.identifier = identifier
        self.scope = scope


class AlreadyRegistered(BramaError):
    """Raised by ``register()`` when the ``(scope, identifier)`` key is taken."""

    def __init__(self, identifier: str, scope: str | None) -> None:
        super().__init__(
            f"a connection {_describe(identifier, scope)} is already registered"
        )
        self.identifier = identifier
        self.scope = scope


class ConfigurationError(BramaError, ValueError):
    """Raised for a bad argument or option, at the call that received it.

    The message names the argument, the value given and what is allowed.
    Nothing has changed when it is raised.
    """


class RegistryClosedError(BramaError, RuntimeError):
    """Raised when a registry is used before it was entered or after it closed."""
