"""Which override Hydra cannot parse, and why, in one line.

Hydra's parser reports a bad override on four lines about the whole list and names the real reason (e.g.
a missing argument of ``interval()``) only on the third; the sweeper and navitune's CLI say it on one.
Light on purpose (no Optuna import): the CLI calls it before anything starts.
"""

from __future__ import annotations

from typing import Iterable


def first_bad_override(overrides: Iterable[str]) -> tuple[str, str] | None:
    """``(override, reason)`` for the first override Hydra cannot parse, or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except Exception as err:
            cause = err.__cause__
            return override, str(cause) if cause is not None else str(err).strip().splitlines()[-1]
    return None
