#!/usr/bin/env python3
"""Derive a small demand/trip profile from the City of Chicago taxi-trips sample.

The sample ships inside the ``tfx`` wheel (Apache-2.0) at
``tfx/examples/chicago_taxi_pipeline/data/simple/data.csv``. Fetch the wheel
without installing it::

    pip download --no-deps tfx==1.21.0 -d /tmp/tfx
    python scripts/derive_chicago_profile.py /tmp/tfx/tfx-1.21.0-py3-none-any.whl

The CSV is read straight out of the wheel with ``zipfile``; only the Python
standard library is used. Output: ``experiment/sim/data/chicago_profile.json``
(override with ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import zipfile
from pathlib import Path

CSV_IN_WHEEL = "tfx/examples/chicago_taxi_pipeline/data/simple/data.csv"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "experiment" / "sim" / "data" / "chicago_profile.json"

KM_PER_MILE = 1.609344
MAX_MILES = 100.0
MAX_FARE_USD = 500.0
MAX_SPEED_MPH = 80.0
SMOOTH_WEIGHTS = (0.25, 0.5, 0.25)  # weights for hours h-1, h, h+1 (circular)
NDIGITS = 5

CLEANING = (
    "Keep a row only if trip_seconds, trip_miles, fare and trip_start_hour all parse as numbers "
    "(empty fields drop the row), trip_seconds > 0, trip_miles > 0, fare > 0, "
    f"trip_miles <= {MAX_MILES:g}, fare <= {MAX_FARE_USD:g} USD, and average speed "
    f"trip_miles / (trip_seconds / 3600) <= {MAX_SPEED_MPH:g} mph."
)


def _float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_rows(wheel: Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(CSV_IN_WHEEL).decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw)))


def clean(rows: list[dict[str, str]]) -> list[dict[str, float | int | None]]:
    kept = []
    for row in rows:
        secs = _float(row.get("trip_seconds", ""))
        miles = _float(row.get("trip_miles", ""))
        fare = _float(row.get("fare", ""))
        hour = _float(row.get("trip_start_hour", ""))
        if secs is None or miles is None or fare is None or hour is None:
            continue
        if secs <= 0 or miles <= 0 or fare <= 0:
            continue
        if miles > MAX_MILES or fare > MAX_FARE_USD:
            continue
        if miles / (secs / 3600.0) > MAX_SPEED_MPH:
            continue
        day = _float(row.get("trip_start_day", ""))
        kept.append(
            {
                "seconds": secs,
                "miles": miles,
                "fare": fare,
                "hour": int(hour),
                "day": int(day) if day is not None else None,
            }
        )
    return kept


def shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts]


def smooth_circular(values: list[float]) -> list[float]:
    n = len(values)
    w_prev, w_mid, w_next = SMOOTH_WEIGHTS
    out = [w_prev * values[(i - 1) % n] + w_mid * values[i] + w_next * values[(i + 1) % n] for i in range(n)]
    total = sum(out)
    return [v / total for v in out]


def quantile_summary(data: list[float]) -> dict[str, float]:
    # 5 % cut points, "inclusive" = linear interpolation between order statistics
    # (same as numpy's default percentile method).
    cuts = statistics.quantiles(data, n=20, method="inclusive")
    return {
        "p10": cuts[1],
        "p25": cuts[4],
        "p50": cuts[9],
        "p75": cuts[14],
        "p90": cuts[17],
        "mean": statistics.fmean(data),
    }


def rnd(obj):
    if isinstance(obj, float):
        return round(obj, NDIGITS)
    if isinstance(obj, list):
        return [rnd(v) for v in obj]
    if isinstance(obj, dict):
        return {k: rnd(v) for k, v in obj.items()}
    return obj


def build_profile(wheel: Path) -> tuple[dict, int]:
    rows = read_rows(wheel)
    trips = clean(rows)
    if not trips:
        raise SystemExit("no trips left after cleaning")

    hour_counts = [0] * 24
    for t in trips:
        hour_counts[t["hour"]] += 1
    hour_share = shares(hour_counts)

    # Chicago encoding: trip_start_day 1 = Sunday ... 7 = Saturday.
    # Monday-first index = (day - 2) mod 7.
    days = [t["day"] for t in trips]
    if all(d is not None and 1 <= d <= 7 for d in days):
        dow_counts = [0] * 7
        for d in days:
            dow_counts[(d - 2) % 7] += 1
        dow_share = shares(dow_counts)
    else:
        dow_share = None

    km = [t["miles"] * KM_PER_MILE for t in trips]
    minutes = [t["seconds"] / 60.0 for t in trips]
    fares = [t["fare"] for t in trips]

    source = {
        "dataset": "City of Chicago Taxi Trips (sample shipped with TFX chicago_taxi_pipeline example)",
        "data_owner": "City of Chicago (data.cityofchicago.org)",
        "distribution": "tfx wheel (pip download --no-deps tfx==1.21.0)",
        "wheel_file": wheel.name,
        "path_in_wheel": CSV_IN_WHEEL,
        "license": "Apache-2.0 (tfx package)",
        "n_rows_raw": len(rows),
        "hours": "trip_start_hour, 0-23 local Chicago wall-clock time",
        "day_of_week": (
            "trip_start_day uses the Chicago/BigQuery encoding 1 = Sunday ... 7 = Saturday "
            "(checked against trip_start_timestamp); dow_share is re-ordered Monday-first: "
            "index 0 = Monday ... 6 = Sunday"
        ),
        "units": "trip_km_quantiles in km (miles * 1.609344), trip_min_quantiles in minutes, fare in USD",
    }

    profile = {
        "source": source,
        "n_trips": len(trips),
        "cleaning": CLEANING,
        "hour_share": hour_share,
        "hour_share_smoothed": smooth_circular(hour_share),
        "dow_share": dow_share,
        "trip_km_quantiles": quantile_summary(km),
        "trip_min_quantiles": quantile_summary(minutes),
        "fare_usd": {"median": statistics.median(fares), "mean": statistics.fmean(fares)},
    }
    return rnd(profile), len(rows)


def print_summary(p: dict, n_raw: int) -> None:
    hs = p["hour_share"]
    hss = p["hour_share_smoothed"]
    peak, trough = max(range(24), key=hs.__getitem__), min(range(24), key=hs.__getitem__)
    speak, strough = max(range(24), key=hss.__getitem__), min(range(24), key=hss.__getitem__)
    print(f"rows raw: {n_raw}  clean trips: {p['n_trips']}")
    print(f"fare USD: median {p['fare_usd']['median']:.2f}  mean {p['fare_usd']['mean']:.2f}")
    for key, unit in (("trip_km_quantiles", "km"), ("trip_min_quantiles", "min")):
        q = p[key]
        print(f"{key} ({unit}): " + "  ".join(f"{k} {v:.3f}" for k, v in q.items()))
    print(f"hour_share: peak {peak:02d}:00 ({hs[peak]:.4f})  trough {trough:02d}:00 ({hs[trough]:.4f})")
    print(f"hour_share_smoothed: peak {speak:02d}:00 ({hss[speak]:.4f})  trough {strough:02d}:00 ({hss[strough]:.4f})")
    if p["dow_share"] is not None:
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        print("dow_share: " + "  ".join(f"{n} {s:.4f}" for n, s in zip(names, p["dow_share"])))
    else:
        print("dow_share: null (trip_start_day missing)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path, help="path to the downloaded tfx wheel (.whl)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output JSON (default: {DEFAULT_OUT})")
    args = ap.parse_args(argv)

    profile, n_raw = build_profile(args.wheel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    print_summary(profile, n_raw)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
