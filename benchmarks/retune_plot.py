"""The picture of ``bench retune`` (docs/retune.png): revenue per service period of every policy (production,
frozen, re-tuned and the hindsight references), and per period the re-tuned policy's uplift over frozen and
production with the per-period oracle's over frozen, each with its 95 % interval.

``python -m benchmarks.retune_plot RESULT.json --out docs/retune.png`` redraws it from a ``--json`` file of the
bench (its result with the per-period rows), without running anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any, Sequence


def plot(rows: Sequence[dict[str, Any]], result: dict[str, Any], path: str) -> None:
    """Revenue per service period of every policy, and the uplifts per period with their intervals."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    import matplotlib.dates as mdates

    days = int(result["settings"]["period_days"])
    xs = [dt.date.fromisoformat(r["start"]) + dt.timedelta(days=days / 2) for r in rows]
    colors = {"retuned": "#1f77b4", "frozen": "#ff7f0e", "production": "#555555", "best_fixed": "#9467bd",
              "period_oracle": "#17becf"}
    labels = {"retuned": "re-tuned every 4 weeks (champion)", "frozen": "tuned in January, frozen",
              "production": "production", "best_fixed": "best single setting in hindsight",
              "period_oracle": "each period's own best (hindsight)"}
    with plt.style.context("default"):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.5, 6.4), sharex=True, constrained_layout=True,
                                          gridspec_kw={"height_ratios": [3, 2]})
        for role in ("production", "frozen", "best_fixed", "period_oracle", "retuned"):
            if all(role in r["revenue_yen"] for r in rows):
                top.plot(xs, [r["revenue_yen"][role] for r in rows], "o-" if role in ("retuned", "frozen",
                         "production") else "x--", color=colors[role], label=labels[role], ms=4,
                         lw=1.6 if role == "retuned" else 1.0)
        for r, x in zip(rows, xs):
            if r["cycle"]["promoted"]:
                for ax in (top, bottom):
                    ax.axvline(dt.date.fromisoformat(r["start"]), color="#2ca02c", lw=0.8, ls=":")
                top.annotate(f"v{r['cycle']['version']}", (dt.date.fromisoformat(r["start"]), 1.0),
                             xycoords=("data", "axes fraction"), xytext=(2, -10), textcoords="offset points",
                             fontsize=7, color="#2ca02c")
        top.set_ylabel("revenue per driver-day (yen)")
        top.legend(fontsize=8, loc="lower right", frameon=False)
        top.grid(alpha=0.3)
        top.set_title(f"scenario {result['scenario']}: {len(rows)} service periods of {result['settings']['period_days']}"
                      f" days (dotted: a promotion)", fontsize=10)
        series = (("frozen", "retuned_vs_frozen", -3, "re-tuned vs frozen"),
                  ("period_oracle", "period_oracle_vs_frozen", 0, "each period's own best vs frozen"),
                  ("production", "retuned_vs_production", 3, "re-tuned vs production"))
        for role, key, off, label in series:
            if not all(key in r for r in rows):
                continue
            ys = [r[key]["pct"] for r in rows]
            lo = [r[key]["pct"] - r[key]["ci95"][0] for r in rows]
            hi = [r[key]["ci95"][1] - r[key]["pct"] for r in rows]
            bottom.errorbar([x + dt.timedelta(days=off * days / 28) for x in xs], ys, yerr=[lo, hi], fmt="o", ms=4,
                            capsize=3, color=colors[role], label=f"{label} (95 % CI)")
        bottom.axhline(0, color="grey", lw=0.8)
        bottom.set_ylabel("uplift (%)")
        bottom.legend(fontsize=8, frameon=False)
        bottom.grid(alpha=0.3)
        locator = mdates.AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        fig.savefig(path, dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.retune_plot")
    ap.add_argument("result", help="a bench retune --json file")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    doc = json.loads(open(args.result).read())
    plot(doc["periods"], doc, args.out)
