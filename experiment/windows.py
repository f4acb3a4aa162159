"""Rolling windows: the tuning span and the held-out test span of one re-tuning cycle, from its ``as_of`` date.

A cycle at ``as_of`` tests on the most recent ``test_days`` before ``as_of`` and tunes on the ``tune_days``
before those, so the two spans never overlap and the test span is the latest the cycle can know. Seeds come
from ``as_of`` too (tuning ``S``, test ``S + TEST_SEED_OFFSET`` and the report's replications above it), so each
cycle draws new days and re-running a cycle draws the same ones. Pure functions (no Hydra): the config group
``window=rolling`` reaches them through the ``navitune.rolling`` OmegaConf resolver, registered on import of
``experiment.config``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Union

SPANS = ("tune", "test")
MIN_AS_OF = dt.date(2000, 1, 1)  # seeds count days from here: they stay >= 0 and below 2**31
MAX_AS_OF = dt.date(2999, 12, 31)
MAX_SPAN_DAYS = 28  # a span is one simulation: the same cap as any window (experiment.config.MAX_WINDOW_DAYS)
SEEDS_PER_DAY = 1000  # seed space of one as_of: tuning S, test S + 500 .. S + 999 (report replications)
TEST_SEED_OFFSET = 500
AS_OF_FORMAT = "a date YYYY-MM-DD"
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
RESOLVER = "navitune.rolling"
TODAY_RESOLVER = "navitune.utc_today"


@dataclass(frozen=True)
class Span:
    """One span of days, ``start`` included and ``end`` excluded (as ``window.start`` / ``window.end``);
    ``name`` is ``window.name``: rolling (the tuning span, the group option's name) or rolling_test."""

    name: str
    start: dt.date
    end: dt.date
    seed: int

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def parse_as_of(value: Union[str, dt.date]) -> dt.date:
    """``as_of`` as a date; ValueError unless it is a real day YYYY-MM-DD within [MIN_AS_OF, MAX_AS_OF]."""
    if isinstance(value, dt.date):
        day = value
    else:
        text = str(value)
        if not _ISO_DAY.fullmatch(text):
            raise ValueError(f"{text!r} is not {AS_OF_FORMAT}")
        day = dt.date.fromisoformat(text)  # ValueError for 2026-02-30
    if not MIN_AS_OF <= day <= MAX_AS_OF:
        raise ValueError(f"{day} is not between {MIN_AS_OF} and {MAX_AS_OF}")
    return day


def check_days(key: str, value: object) -> int:
    """A span length: a whole number of days in [1, MAX_SPAN_DAYS]; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SPAN_DAYS:
        raise ValueError(f"{key}={value!r} is not a whole number of days in [1, {MAX_SPAN_DAYS}]")
    return value


def cycle_seed(as_of: dt.date) -> int:
    """The tuning seed of the cycle at ``as_of``; the test seeds start TEST_SEED_OFFSET above it."""
    return (as_of - MIN_AS_OF).days * SEEDS_PER_DAY


def rolling_windows(as_of: Union[str, dt.date], tune_days: int = 7, test_days: int = 7) -> tuple[Span, Span]:
    """(tuning span, test span) of the cycle at ``as_of``: test = [as_of - test_days, as_of),
    tune = [as_of - test_days - tune_days, as_of - test_days). ``as_of`` itself is in neither (not over yet)."""
    day = parse_as_of(as_of)
    check_days("tune_days", tune_days)
    check_days("test_days", test_days)
    test_start = day - dt.timedelta(days=test_days)
    seed = cycle_seed(day)
    tune = Span("rolling", test_start - dt.timedelta(days=tune_days), test_start, seed)
    test = Span("rolling_test", test_start, day, seed + TEST_SEED_OFFSET)
    return tune, test


def cycle_name(as_of: Union[str, dt.date]) -> str:
    """``window.cycle``: what names the cycle's study, MLflow experiment and KFP experiment."""
    return f"rolling_{parse_as_of(as_of).isoformat()}"


def rolling_field(field: str, as_of: object, tune_days: object, test_days: object, span: object) -> object:
    """One field (name, start, end, seed) of the ``span`` (tune or test) of ``window=rolling`` (the resolver)."""
    if span not in SPANS:
        raise ValueError(f"span={span!r} is not one of {', '.join(SPANS)}")
    tune, test = rolling_windows(str(as_of), tune_days, test_days)  # type: ignore[arg-type]
    chosen = tune if span == "tune" else test
    value = getattr(chosen, field)
    return value.isoformat() if isinstance(value, dt.date) else value


def utc_today() -> dt.date:
    """"Today" of every default ``as_of`` (the CLI, ``retune``, ``window=rolling``): the UTC date, as a
    scheduled cycle's date is, so a cycle run by hand and by the schedule on one day is the same cycle."""
    return dt.datetime.now(dt.timezone.utc).date()


def register_resolver() -> None:
    """``${navitune.rolling:FIELD,${.as_of},${.tune_days},${.test_days},${.span}}`` and
    ``${navitune.utc_today:}`` (the default as_of) in conf/window/rolling.yaml."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_resolver(RESOLVER, rolling_field)
    if not OmegaConf.has_resolver(TODAY_RESOLVER):
        OmegaConf.register_resolver(TODAY_RESOLVER, lambda: utc_today().isoformat())
