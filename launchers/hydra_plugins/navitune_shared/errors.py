"""How navitune puts an error on one line, written once for the task and the plugins.

* :func:`invalid`: the line of a bad setting, ``<head>: invalid <key>=<value>; allowed: <allowed>``, as an
  exception of the caller's type, returned (the caller writes ``raise invalid(...)``, so every helper built on
  it behaves the same way: none raises by itself);
* :func:`message_line` and :func:`error_line`: an exception's first line, for log lines, Slack messages and
  the one-line errors that wrap a library's many-line message.

Values and messages pass through :func:`~hydra_plugins.navitune_shared.redact.redact`: a bad URL or a driver's
message may carry a password. Standard library only (Hydra imports this package at every start).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from .redact import redact

E = TypeVar("E", bound=BaseException)


def invalid_text(head: str | None, key: str, value: Any, allowed: str) -> str:
    """``<head>: invalid <key>=<value>; allowed: <allowed>`` (no head: from ``invalid``) with the value's
    secrets masked."""
    shown = repr(redact(value)) if isinstance(value, str) else redact(repr(value))
    return f"{head + ': ' if head else ''}invalid {key}={shown}; allowed: {allowed}"


def invalid(error: Callable[[str], E], head: str | None, key: str, value: Any, allowed: str) -> E:
    """The exception (of type ``error``) for a bad setting: one line naming the key, the value and what is
    allowed. Returned, not raised."""
    return error(invalid_text(head, key, value, allowed))


def message_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most ``limit`` characters, secrets masked ('' if none)."""
    return redact((str(err).strip().splitlines() or [""])[0])[:limit]  # masked first: a cut URL is not seen


def error_line(err: BaseException, limit: int = 300) -> str:
    """``<Type>: <first line of its message>`` (just the type when the message is empty), secrets masked."""
    text = message_line(err, limit)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
