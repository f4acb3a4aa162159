"""The scale a revenue figure was measured at: how many drivers, how many days, which shift cap.

Why: a 1-day, 120-driver report said +16 % for parameters that earn −2.6 % at full scale. A promotion decided on
a report is only as good as the conditions it measured, so the champion carries the scale it is evaluated at
(set by ``navitune champion init``, the registered model's tag ``eval_scale``) and a report measured at any other
scale cannot promote automatically (the decision's ``scale`` guard). Pure functions over configs and report
records: no MLflow, no Hydra.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

FULL_TEST_DAYS = 7  # the held-out test week (conf/window/test_week.yaml), what a champion is evaluated on
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _get(node: Any, key: str) -> Any:
    try:
        return OmegaConf.select(node, key, default=None) if OmegaConf.is_config(node) else _dig(node, key)
    except Exception:  # noqa: BLE001 - an unresolvable value counts as absent
        return None


def _dig(node: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def fleet(region_drivers: Any, window_drivers: Any) -> int | None:
    """Drivers simulated: the region's fleet, capped by ``window.drivers``."""
    if region_drivers is None:
        return None
    n = int(region_drivers)
    return min(n, int(window_drivers)) if window_drivers is not None else n


def days(window: Any) -> int | None:
    """Operating days of a window (``start`` included, ``end`` excluded)."""
    try:
        start, end = dt.date.fromisoformat(str(_get(window, "start"))), dt.date.fromisoformat(str(_get(window, "end")))
    except (TypeError, ValueError):
        return None
    return (end - start).days


def _hours(value: Any) -> float | None:
    return None if value is None else float(value)


def of_config(cfg: Any) -> dict[str, Any]:
    """The scale a config's champion/challenger report runs at: the report's test window takes the tuning
    window's days, ``window.drivers`` and ``window.max_shift_h`` (``report.match_scale``), so it is the config's
    own window's."""
    window = _get(cfg, "window")
    return {"fleet": fleet(_get(cfg, "region.drivers"), _get(cfg, "window.drivers")), "days": days(window),
            "max_shift_h": _hours(_get(cfg, "window.max_shift_h"))}


def of_report(report: dict[str, Any], config: Any = None) -> dict[str, Any]:
    """The scale a report's held-out evaluation ran at (``windows.test``); the fleet from the sweep's config
    for reports written before ``windows.test.fleet`` existed."""
    test = (report.get("windows") or {}).get("test") or {}
    n = test.get("fleet")
    if n is None:
        n = fleet(_get(config, "region.drivers"), test.get("drivers"))
    return {"fleet": None if n is None else int(n), "days": days(test), "max_shift_h": _hours(test.get("max_shift_h"))}


def region_default(region: str) -> dict[str, Any]:
    """The full scale of a region as its config option defines it (for registries from before ``eval_scale``):
    its whole fleet, the test week, no shift cap."""
    try:
        drivers = OmegaConf.load(CONF_DIR / "region" / f"{region}.yaml").get("drivers")
    except OSError:
        drivers = None
    return {"fleet": None if drivers is None else int(drivers), "days": FULL_TEST_DAYS, "max_shift_h": None}


def _cap(hours: Any) -> str:
    return "no shift cap" if hours is None else f"shifts capped at {float(hours):g} h"


def describe(scale: dict[str, Any]) -> str:
    cap = "" if scale.get("max_shift_h") is None else f", shifts capped at {scale['max_shift_h']:g} h"
    return f"{scale.get('fleet')} drivers, {scale.get('days')} day(s){cap}"


def shortfall(measured: dict[str, Any], required: dict[str, Any]) -> str | None:
    """Why ``measured`` is not the champion's evaluation scale ``required`` (None: it is). The same fleet, at
    least as many days, the same shift cap."""
    problems = []
    if required.get("fleet") is not None and measured.get("fleet") != required["fleet"]:
        problems.append(f"{measured.get('fleet')} drivers, not the fleet of {required['fleet']}")
    if required.get("days") is not None and (measured.get("days") or 0) < required["days"]:
        problems.append(f"{measured.get('days')} test day(s), fewer than {required['days']}")
    if measured.get("max_shift_h") != required.get("max_shift_h"):
        problems.append(f"{_cap(measured.get('max_shift_h'))} (the champion's: {_cap(required.get('max_shift_h'))})")
    if not problems:
        return None
    return (f"the report measured a smaller world than the champion is evaluated in ({'; '.join(problems)}; "
            f"the champion's scale: {describe(required)})")
