"""The Ax peer of ``bench accuracy`` (issue 21): Meta's adaptive-experimentation platform, driven through its own
API (``ax.Client``), tuning the same simulation a sweep's trial runs.

``python -m benchmarks.ax_peer --simulations N --seed S --out DIR [--workers 2] [--smoke] [overrides]``:

* the search space is the composed config's ``hydra.sweeper.params`` (``benchmarks.oracle.parse_space``: the same
  ranges and log scales a navitune sweep searches); each trial is one simulation of the tuning window on its seed
  (``benchmarks.oracle.windows``), production's navigation with the trial's values, as a sweep's job simulates it;
* Ax runs with its defaults (``Client(random_seed=S)``: its quasi-random initialisation, then its BoTorch model),
  ``--workers`` trials at a time, until ``--simulations`` simulations are spent; nothing else is spent;
* its answer is Ax's own recommendation, ``get_best_parameterization()`` (the model's best predicted arm, Ax's
  guard against a lucky observation), written as ``DIR/optimization_results.yaml`` (``best_params``, as a sweep
  writes it, so ``bench accuracy`` takes the candidate the same way) and ``DIR/peer.json`` (every trial, the
  simulations spent, Ax's version).

Ax lives in the optional extra ``pip install -e '.[bench]'``, never in navitune's install.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

PROG = "navitune bench accuracy (ax)"


def run_ax(overrides: Sequence[str], simulations: int, seed: int, out: Path, workers: int, smoke: bool) -> dict[str, Any]:
    """Tune with Ax for ``simulations`` simulations; the recommendation and the trials (also written to ``out``)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from dataclasses import replace

    import ax
    from ax import Client, RangeParameterConfig
    from ax.utils.common.logger import set_ax_logger_levels
    from omegaconf import OmegaConf

    from benchmarks.oracle import _simulate, parse_space, policy_with, windows

    set_ax_logger_levels(logging.WARNING)  # its INFO lines are several per trial
    win = windows(list(overrides), smoke)
    dims, fixed = parse_space(win.describe["_space"])
    # Ax parses names in its objective and constraint strings: plain names, mapped back to policy.* keys
    names = {f"x{i}": d.name for i, d in enumerate(dims)}
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=[
        RangeParameterConfig(name=f"x{i}", bounds=(d.lo, d.hi), parameter_type="int" if d.integer else "float",
                             scaling="log" if d.log else "linear") for i, d in enumerate(dims)])
    client.configure_optimization(objective="revenue")

    def point(p: Any) -> dict[str, float]:
        return {names[k]: float(v) for k, v in p.items()} | fixed

    trials: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        while len(trials) < simulations:  # ends: every pass spends at least one simulation of a fixed budget
            batch = client.get_next_trials(max_trials=min(workers, simulations - len(trials)))
            if not batch:
                raise RuntimeError("Ax proposed no trial")
            jobs = {i: replace(win.tune, policy=policy_with(win.tune.policy, point(p))) for i, p in batch.items()}
            for (i, p), (value, cpu) in zip(batch.items(), pool.map(_simulate, jobs.values())):
                client.complete_trial(trial_index=i, raw_data={"revenue": value})
                trials.append({"trial": i, "params": point(p), "revenue": round(value, 3), "cpu_s": round(cpu, 2)})
            print(f"ax: {len(trials)}/{simulations} simulations, best observed "
                  f"{max(t['revenue'] for t in trials):.1f}", file=sys.stderr, flush=True)
    best, prediction, index, _ = client.get_best_parameterization(use_model_predictions=True)
    best_params = point(best)
    mean = prediction.get("revenue")
    result = {"peer": "ax", "version": ax.__version__, "seed": seed, "simulations": len(trials),
              "best_trial": int(index), "best_params": best_params,
              "predicted_revenue": float(mean[0] if isinstance(mean, tuple) else mean) if mean is not None else None,
              "window": win.describe["tuning"], "trials": trials}
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"name": "ax", "best_params": best_params}), out / "optimization_results.yaml")
    (out / "peer.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ax_peer")
    ap.add_argument("--simulations", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    args, overrides = ap.parse_known_args(list(argv))
    import importlib.util

    from benchmarks.oracle import OracleError

    if importlib.util.find_spec("ax") is None:
        print(f"{PROG}: needs ax-platform: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if not (1 <= args.simulations <= 10000 and 1 <= args.workers <= 64):
        print(f"{PROG}: invalid --simulations or --workers; allowed: 1-10000 and 1-64", file=sys.stderr)
        return 2
    if unknown := [o for o in overrides if o.startswith("-")]:
        print(f"{PROG}: unknown option {unknown[0]!r}; allowed: --simulations, --seed, --out, --workers, --smoke "
              "and config overrides (key=value)", file=sys.stderr)
        return 2
    try:
        result = run_ax(overrides, args.simulations, args.seed, args.out, args.workers, args.smoke)
    except OracleError as err:  # a search space or override it cannot use: its one line
        print(str(err).replace("navitune bench oracle", PROG, 1), file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.items() if k != "trials"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
