"""The exception hierarchy. Every error a user can cause is a WattgapError: the CLI prints its
message on one line and exits with status 2."""

from __future__ import annotations

from collections.abc import Iterable


class WattgapError(Exception):
    """Base of all errors wattgap reports to the user without a traceback."""


class ConfigError(WattgapError):
    """A sweep, flag or config file is invalid."""


class MeasurementError(WattgapError):
    """A measurement could not be taken or is invalid."""


class StoreError(WattgapError):
    """The results database is missing, foreign, too new, or lacks what was asked for."""


MAX_SHOWN = 200  # characters of a value quoted in a message


def shown(value: object) -> str:
    """``repr(value)``, cut to MAX_SHOWN characters: a message quotes what was given, never all of it."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 20]}... ({len(text)} characters)"


def field_error(field: str, given: object, allowed: Iterable[object] | str, hint: str = "") -> ConfigError:
    """A ConfigError naming the field, the allowed values and the value given."""
    allowed_text = allowed if isinstance(allowed, str) else ", ".join(str(a) for a in allowed)
    message = f"{field}: got {shown(given)}; allowed: {allowed_text}"
    if hint:
        message += f" ({hint})"
    return ConfigError(message)
