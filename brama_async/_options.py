"""Validation of every argument and option, and the option records.

Every public entry point validates here, before it changes anything, so a
rejected call leaves the registry exactly as it was. Messages name the
argument, the value given and what is allowed.
"""

from __future__ import annotations

import inspect
import math
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final

from ._errors import ConfigurationError
from ._types import ExpiryStrategy

__all__ = [
    "CONNECTION_OPTIONS",
    "MAX_NAME_LENGTH",
    "MAX_SECONDS",
    "REGISTRY_SETTINGS",
    "UNSET",
    "ConnectionOptions",
    "RegistrySettings",
    "Unset",
]

MAX_SECONDS: Final = 1e9
"""The longest duration accepted anywhere (about 31 years)."""

MAX_NAME_LENGTH: Final = 1024
"""The longest identifier or scope accepted."""

MAX_COUNT: Final = 10**9
"""The largest ``max_attempts`` or ``half_open_max_calls`` accepted."""

MAX_BACKOFF_FACTOR: Final = 1000.0


class Unset:
    """The type of :data:`UNSET`: an option that was not passed at all."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()

FailurePredicate = Callable[[Exception], bool]


_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlevel = 2


def show(value: object) -> str:
    """A ``repr`` short enough for an error message, whatever the value."""
    return _REPR.repr(value)


def _as_float(value: float) -> float:
    """``float(value)``, with ints too large for a float read as infinite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def seconds(name: str, value: object) -> float:
    """Return ``value`` as float seconds in ``(0, MAX_SECONDS]``."""
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = _as_float(value)
    else:
        raise ConfigurationError(
            f"{name} must be a number of seconds (int, float or timedelta), "
            f"got {show(value)} of type {type(value).__name__}"
        )

    if not (math.isfinite(number) and 0.0 < number <= MAX_SECONDS):
        raise ConfigurationError(
            f"{name} must be finite, greater than 0 and at most {MAX_SECONDS:g} "
            f"seconds, got {show(value)}"
        )

    return number


def optional_seconds(name: str, value: object) -> float | None:
    """Like :func:`seconds`, but ``None`` passes through."""
    if value is None:
        return None

    return seconds(name, value)


def count(name: str, value: object) -> int:
    """Return ``value`` if it is an int in ``[1, MAX_COUNT]`` (bool refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(
            f"{name} must be an int from 1 to {MAX_COUNT}, "
            f"got {show(value)} of type {type(value).__name__}"
        )

    if not 1 <= value <= MAX_COUNT:
        raise ConfigurationError(
            f"{name} must be an int from 1 to {MAX_COUNT}, got {show(value)}"
        )

    return value


def backoff_factor(value: object) -> float:
    """Return ``value`` as a float in ``[1, MAX_BACKOFF_FACTOR]``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigurationError(
            f"backoff_factor must be a number from 1 to {MAX_BACKOFF_FACTOR:g}, "
            f"got {show(value)} of type {type(value).__name__}"
        )

    number = _as_float(value)
    if not (math.isfinite(number) and 1.0 <= number <= MAX_BACKOFF_FACTOR):
        raise ConfigurationError(
            f"backoff_factor must be a number from 1 to {MAX_BACKOFF_FACTOR:g}, "
            f"got {show(value)}"
        )

    return number


def expiry_strategy(value: object) -> ExpiryStrategy:
    """Return ``value`` as an :class:`ExpiryStrategy`."""
    if isinstance(value, str):
        try:
            return ExpiryStrategy(value)
        except ValueError:
            pass

    raise ConfigurationError(
        f"expiry_strategy must be 'fixed' or 'progressive', got {show(value)}"
    )


def name(argument: str, value: object) -> str:
    """Return ``value`` if it is a non-empty str of at most MAX_NAME_LENGTH."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{argument} must be a non-empty str, "
            f"got {show(value)} of type {type(value).__name__}"
        )

    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigurationError(
                f"{argument} must be valid Unicode text (encodable as UTF-8), "
                f"got {show(value)} with a lone surrogate"
            ) from None

    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        shown = value if len(value) <= 40 else f"{value[:40]}..."
        raise ConfigurationError(
            f"{argument} must be a str of 1 to {MAX_NAME_LENGTH} characters, "
            f"got {shown!r} ({len(value)} characters)"
        )

    return value


def scope(value: object) -> str | None:
    """Return ``value`` if it is ``None`` or a valid name."""
    if value is None:
        return None

    return name("scope", value)


def reason(value: object) -> str | None:
    """Return ``value`` if it is ``None`` or a str."""
    if value is None or isinstance(value, str):
        return value

    raise ConfigurationError(
        f"reason must be a str or None, "
        f"got {show(value)} of type {type(value).__name__}"
    )


def exclude(value: object) -> tuple[type[Exception], ...]:
    """Return ``value`` as a tuple of ``Exception`` subclasses (None: none)."""
    if value is None:
        return ()

    if isinstance(value, type):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        items = tuple(value)
    else:
        raise ConfigurationError(
            "exclude must be an Exception subclass or an iterable of them, "
            f"got {show(value)}"
        )

    for item in items:
        if not (isinstance(item, type) and issubclass(item, Exception)):
            raise ConfigurationError(
                "exclude must hold only Exception subclasses "
                f"(BaseExceptions are never counted anyway), got {show(item)}"
            )

    return items  # type: ignore[return-value]


def is_failure(value: object) -> FailurePredicate | None:
    """Return ``value`` if it is ``None`` or callable."""
    if inspect.iscoroutinefunction(value):
        raise ConfigurationError(
            f"is_failure must be a plain (not async) callable returning a bool, "
            f"got the coroutine function {show(value)}"
        )

    if value is None or callable(value):
        return value

    raise ConfigurationError(
        "is_failure must be a callable taking the exception, or None, "
        f"got {show(value)}"
    )


def metadata(value: object) -> Mapping[str, Any]:
    """Return a read-only copy of ``value``, which must be ``None`` or a mapping."""
    if value is None:
        return EMPTY_METADATA

    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"metadata must be a mapping or None, got {show(value)} of type "
            f"{type(value).__name__}"
        )

    return MappingProxyType(dict(value))


EMPTY_METADATA: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """The options of one connection. Immutable: connections share instances.

    ``initial_expiry`` and ``max_expiry`` hold what was passed (``None`` means
    "derive from ``expiry``"); the ``effective_*`` properties give the values
    in force.
    """

    max_attempts: int = 5
    expiry: float = 60.0
    expiry_strategy: ExpiryStrategy = ExpiryStrategy.FIXED
    initial_expiry: float | None = None
    max_expiry: float | None = None
    backoff_factor: float = 2.0
    half_open_max_calls: int = 1
    exclude: tuple[type[Exception], ...] = ()
    is_failure: FailurePredicate | None = None

    @property
    def effective_initial_expiry(self) -> float:
        """The first open duration of the progressive strategy."""
        if self.initial_expiry is None:
            return self.expiry

        return self.initial_expiry

    @property
    def effective_max_expiry(self) -> float:
        """The cap of the progressive strategy: by default ``10 * expiry``."""
        if self.max_expiry is None:
            return min(
                MAX_SECONDS, max(10.0 * self.expiry, self.effective_initial_expiry)
            )

        return self.max_expiry

    def updated(self, changes: Mapping[str, object]) -> ConnectionOptions:
        """Return a copy with validated ``changes`` applied.

        Raises:
            ConfigurationError: If a value is invalid, a name unknown, or the
                result inconsistent (``max_expiry < initial_expiry``).
        """
        checked: dict[str, Any] = check_connection_options(changes)
        result = replace(self, **checked)
        check_consistent(result)

        return result


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """The registry's own settings, changeable live through ``configure()``."""

    cleanup_interval: float = 10.0
    inactive_threshold: float = 86_400.0


_CONNECTION_VALIDATORS: Final[dict[str, Callable[[object], object]]] = {
    "max_attempts": lambda v: count("max_attempts", v),
    "expiry": lambda v: seconds("expiry", v),
    "expiry_strategy": expiry_strategy,
    "initial_expiry": lambda v: optional_seconds("initial_expiry", v),
    "max_expiry": lambda v: optional_seconds("max_expiry", v),
    "backoff_factor": backoff_factor,
    "half_open_max_calls": lambda v: count("half_open_max_calls", v),
    "exclude": exclude,
    "is_failure": is_failure,
}

_REGISTRY_VALIDATORS: Final[dict[str, Callable[[object], object]]] = {
    "cleanup_interval": lambda v: seconds("cleanup_interval", v),
    "inactive_threshold": lambda v: seconds("inactive_threshold", v),
}

CONNECTION_OPTIONS: Final = frozenset(_CONNECTION_VALIDATORS)
"""Options a connection has (``metadata`` and ``scope`` are passed apart)."""

REGISTRY_SETTINGS: Final = frozenset(_REGISTRY_VALIDATORS)

DEFAULTABLE_OPTIONS: Final = CONNECTION_OPTIONS - {"exclude", "is_failure"}
"""Connection options that also have registry-wide defaults."""


def _check(
    options: Mapping[str, object],
    validators: Mapping[str, Callable[[object], object]],
    what: str,
) -> dict[str, object]:
    checked: dict[str, object] = {}
    for option, value in options.items():
        validator = validators.get(option)
        if validator is None:
            allowed = ", ".join(sorted(validators))
            raise ConfigurationError(
                f"unknown option {option!r} for {what}; allowed: {allowed}"
            )

        checked[option] = validator(value)

    return checked


def check_connection_options(options: Mapping[str, object]) -> dict[str, object]:
    """Validate connection options; unknown names are refused."""
    return _check(options, _CONNECTION_VALIDATORS, "a connection")


def check_global_options(options: Mapping[str, object]) -> dict[str, object]:
    """Validate options of a global ``configure()`` (defaults and settings)."""
    validators = {
        name: validator
        for name, validator in _CONNECTION_VALIDATORS.items()
        if name in DEFAULTABLE_OPTIONS
    }
    validators.update(_REGISTRY_VALIDATORS)

    return _check(options, validators, "the registry")


def check_consistent(options: ConnectionOptions) -> None:
    """Refuse progressive option sets whose bounds contradict each other.

    The bounds mean nothing to the fixed strategy, so they are checked only
    when the strategy is progressive (and again if it becomes so).
    """
    if options.expiry_strategy is not ExpiryStrategy.PROGRESSIVE:
        return

    if options.effective_max_expiry < options.effective_initial_expiry:
        raise ConfigurationError(
            f"max_expiry ({options.effective_max_expiry:g}s) must be at least "
            f"initial_expiry ({options.effective_initial_expiry:g}s)"
        )


def split_settings(
    checked: Mapping[str, object],
) -> tuple[dict[str, object], dict[str, object]]:
    """Split validated global options into connection defaults and settings."""
    defaults = {k: v for k, v in checked.items() if k not in REGISTRY_SETTINGS}
    settings = {k: v for k, v in checked.items() if k in REGISTRY_SETTINGS}

    return defaults, settings
