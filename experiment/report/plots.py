"""PNG plots of the champion/challenger report: Optuna's own matplotlib visualisation of the study
(optimisation history, parameter importances, parallel coordinates) and the revenue of the four patterns
with their 95 % intervals. Matplotlib runs on the Agg backend (no display; sweeps run headless).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

log = logging.getLogger("navitune.report")

STUDY_PLOTS = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(ax: Any, path: Path) -> None:
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure  # an Axes, or an array of them
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def study_plots(study: Any, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Optuna's plots of ``study`` into ``out_dir``; returns (written files, why others were skipped).
    A plot Optuna cannot draw (e.g. importances from a single finished trial) is skipped, not an error."""
    plt = _pyplot()
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as ovm

    written, skipped = [], []
    # one name for the objective in every plot: the study's metric name (Optuna's default is "Objective Value")
    target_name = (study.metric_names or [None])[0] or "Objective Value"
    for name, func in STUDY_PLOTS.items():
        plot: Callable[..., Any] = getattr(ovm, func)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)
                ax = plot(study, target_name=target_name)
            if func == "plot_parallel_coordinate":
                _readable_parallel_axes(ax, target_name, sorted(_param_names(study)))
            _save(ax, out_dir / name)
            written.append(out_dir / name)
        except Exception as err:  # too few trials, one parameter, ...: the report goes on
            plt.close("all")
            text = str(err).strip()
            skipped.append(f"{name}: {type(err).__name__}: {text.splitlines()[0][:160] if text else ''}")
    return written, skipped


def _param_names(study: Any) -> set[str]:
    return {k for t in study.get_trials(deepcopy=False) for k in t.params}


def _readable_parallel_axes(ax: Any, target_name: str, params: list[str]) -> None:
    """Optuna's parallel plot cuts names of 20 characters or more (``policy.road_weigh...``) and gives a log axis
    (``policy.max_wait_min``) ticks at powers of ten only, i.e. often one: full names, and 1-2-5 ticks written
    as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    labels = [t.get_text() for t in ax.get_xticklabels()]
    if len(labels) == len(params) + 1:
        ax.set_xticks(range(len(labels)), [target_name, *params], rotation=330, ha="left")
    for other in ax.figure.axes:
        if other.get_yscale() == "log":
            other.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            other.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            other.yaxis.set_minor_formatter(NullFormatter())


def revenue_plot(patterns: Sequence[dict[str, Any]], improvements: dict[str, dict[str, Any]], path: Path) -> Path:
    """Revenue per driver-day of the four patterns: mean and 95 % t-interval per parameter set, grouped by
    demand source, each replication's production and tuned values joined by a thin line (the pairs share
    their random numbers), and the paired improvement with its interval written above."""
    plt = _pyplot()
    demands = list(dict.fromkeys(p["demand"] for p in patterns))
    sets = list(dict.fromkeys(p["set"] for p in patterns))
    colors = {"production": "#555555", "tuned": "#1f77b4"}
    with plt.style.context("default"):  # Optuna's plots switch the global style to ggplot
        fig, ax = plt.subplots(figsize=(2.8 + 2.4 * len(demands), 4.2), constrained_layout=True)
        step = 0.5 / max(len(sets) - 1, 1)
        top, bottom = -float("inf"), float("inf")
        for i, demand in enumerate(demands):
            group = {q["set"]: q for q in patterns if q["demand"] == demand}
            xs = {s: i - 0.25 + j * step for j, s in enumerate(sets)}
            reps = [group[s]["per_replication_yen"] for s in sets]
            for pair in zip(*reps):  # one line per replication across the parameter sets
                ax.plot([xs[s] for s in sets], pair, color="#bbbbbb", lw=0.8, zorder=1)
            for s in sets:
                p = group[s]
                mean, (lo, hi) = p["revenue_per_driver_day_yen"], p["ci95_yen"]
                ax.scatter([xs[s]] * len(p["per_replication_yen"]), p["per_replication_yen"], s=12,
                           color=colors.get(s), alpha=0.5, zorder=2)
                ax.errorbar(xs[s], mean, yerr=[[mean - lo], [hi - mean]], fmt="o", ms=8, capsize=5, lw=1.6,
                            color=colors.get(s), zorder=3, label=s if i == 0 else None)
                top = max(top, hi, max(p["per_replication_yen"]))
                bottom = min(bottom, lo, min(p["per_replication_yen"]))
            imp = improvements.get(demand)
            if imp is not None:
                lo, hi = imp["ci95_pct"]
                ax.annotate(f"tuned {imp['improvement_pct']:+.2f} %  (95 % CI {lo:+.2f} .. {hi:+.2f})", (i, top),
                            xytext=(0, 8), textcoords="offset points", ha="center", va="bottom", fontsize=9)
        span = max(top - bottom, 1.0)
        ax.set_ylim(bottom - 0.2 * span, top + 0.18 * span)
        ax.set_xlim(-0.6, len(demands) - 0.4)
        ax.set_xticks(range(len(demands)), [f"{d} demand" for d in demands])
        ax.set_ylabel("revenue per driver-day (yen)")
        ax.set_title("Test window: production vs tuned\n(mean and 95 % CI; grey lines join the paired replications)",
                     fontsize=10)
        ax.legend(loc="lower center", ncol=len(sets), fontsize=9, frameon=False)
        ax.grid(axis="y", alpha=0.3)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return path
