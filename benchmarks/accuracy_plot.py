"""The convergence plot of ``bench accuracy``: captured share of the attainable gain against simulations spent,
one line per configuration (the median over its repeats, the band from the worst to the best sweep).

``python -m benchmarks.accuracy_plot RESULTS.json [...] --out docs/accuracy.png``: each file is a ``bench accuracy``
output line (``{"configs": [...]}``) or a collection of them (``{"runs": [{"configs": [...]}, ...]}``, as
``docs/accuracy-navi3.json`` keeps them). Entries of one configuration at several budgets make its line; entries
of one configuration and budget are pooled (their sweeps together).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence


def entries(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every configuration entry of the given bench outputs or collections."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        for run in doc.get("runs", [doc]) if "configs" not in doc else [doc]:
            out.extend(run.get("configs", []))
    return out


def lines(configs: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per configuration name: (median simulations, worst, median, best captured share) by budget, in order."""
    by_name: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for c in configs:  # measurements of one budget are pooled (a later call with --first-seed extends one)
        by_name[c["name"]][int(c["budget"])].extend(c["runs"])
    out = {}
    for name, budgets in by_name.items():
        pts = []
        for budget in sorted(budgets):
            shares = [r["captured_share"] for r in budgets[budget]]
            pts.append((float(statistics.median(r["simulations"] for r in budgets[budget])), min(shares),
                        statistics.median(shares), max(shares)))
        out[name] = pts
    return out


def plot(data: dict[str, list[tuple[float, float, float, float]]], path: Path, default: str = "default") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    names = sorted(data, key=lambda n: (n != default, n))
    for i, name in enumerate(names):
        pts = data[name]
        xs = [p[0] + 0.6 * (i - (len(names) - 1) / 2) for p in pts]  # side by side at a shared budget
        med = [p[2] for p in pts]
        ax.errorbar(xs, med, yerr=[[p[2] - p[1] for p in pts], [p[3] - p[2] for p in pts]], marker="o", capsize=3,
                    lw=2.4 if name == default else 1.2, label=name)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.axhline(0.95, color="grey", lw=0.8, ls=":")
    ax.axhline(0.90, color="grey", lw=0.8, ls=":")
    ax.text(ax.get_xlim()[0], 1.0, " oracle", va="bottom", fontsize=8)
    ax.text(ax.get_xlim()[0], 0.90, " targets 0.95 (median), 0.90 (worst)", va="top", fontsize=8, color="grey")
    ax.set_xlabel("Simulations per sweep (its trials and the report's replications)")
    ax.set_ylabel("Captured share of the attainable held-out gain")
    ax.set_title("What a navi3 sweep finds on test_week: the median of its sweeps, bars from the worst to the best",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right", title="configuration", title_fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.accuracy_plot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    docs = []
    for f in args.results:
        try:
            docs.append(json.loads(f.read_text()))
        except (OSError, ValueError) as err:
            ap.error(f"{f}: not a bench accuracy result ({err})")
    data = lines(entries(docs))
    if not data:
        ap.error("no configuration entries in the given files")
    print(plot(data, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
