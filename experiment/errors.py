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
