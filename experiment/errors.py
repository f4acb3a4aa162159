"""The task's one-line errors. This module imports nothing of the project, so any module may raise them without
an import cycle (config, tracking, sinks, report)."""

from __future__ import annotations

from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException):
    """A config value outside what navitune accepts; Hydra prints just this one line."""


class SinkError(CompactHydraException):
    """The sink could not be reached or written; Hydra prints just this one line."""


class ReportError(Exception):
    """Bad input to the report or a sweep reader (not a finished sweep, a bad setting): the CLI prints this one
    line and exits with 2."""


# OmegaConf re-raises a resolver's error "from None" (policy=champion's lookup): its one line is kept here for
# the check that resolves the policy (experiment.config.validate) to report
_RESOLVER_ERRORS: list[str] = []


def keep_resolver_error(text: str) -> None:
    _RESOLVER_ERRORS[:] = [text]


def take_resolver_error() -> str | None:
    """The last resolver error's line, once (None if none since)."""
    return _RESOLVER_ERRORS.pop() if _RESOLVER_ERRORS else None
