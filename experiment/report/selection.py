"""The selection stage: the sweep's best few trials simulated again on fresh seeds of the tuning window before
one of them is named the candidate.

Why: every trial of a sweep runs the same tuning seed, so the best of the sweep is partly the best luck on that
seed (the winner's curse). Among the points near the optimum, the rank on the tuning seed says nothing about the
rank held out, while the tuning week's other seeds rank them as the test week does (``bench tuning-seeds``,
docs/accuracy.md). On by default: the 3 best on 1 fresh seed, after 27 trials instead of 30.
Re-ranking the top ``selection_top`` trials on ``selection_seeds`` seeds none of them was tuned on (common
random numbers: every finalist runs the same fresh seeds) picks the one that is good, not lucky. The held-out
test window is never used here: it stays for the champion/challenger report, which must not choose what it
judges.
"""

from __future__ import annotations

import copy
import logging
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from experiment.report.compose import _compose, _last_wins
from experiment.report.settings import ReportSettings
from experiment.report.simulations import run_simulations
from experiment.study import Sweep

log = logging.getLogger("navitune.report")

#: fresh seeds are the tuning window's seed + SEED_OFFSET + j: apart from the tuning seed (+0) and from the
#: report's replications of the test window (its own seed + r)
SEED_OFFSET = 100


@dataclass
class Finalist:
    trial: int
    params: dict[str, Any]
    tuning_value: float
    fresh: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        return statistics.fmean(self.fresh)


def finalists(trials: Sequence[Any], k: int, maximize: bool = True) -> list[Finalist]:
    """The ``k`` best COMPLETE trials by value (distinct parameters: a retry or a re-enqueued point counts once),
    best first; ties keep the earlier trial."""
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    done.sort(key=lambda t: (-t.value if maximize else t.value, t.number))
    out: list[Finalist] = []
    seen: set[tuple] = set()
    for t in done:
        key = tuple(sorted((name, repr(value)) for name, value in t.params.items()))
        if key in seen:
            continue
        seen.add(key)
        out.append(Finalist(t.number, dict(t.params), float(t.value)))  # named by their override keys
        if len(out) == k:
            break
    return out


def choose(finals: Sequence[Finalist], maximize: bool = True) -> Finalist:
    """The finalist with the best mean over the fresh seeds; a tie goes to the better tuning value."""
    if not finals or any(not f.fresh for f in finals):
        raise ValueError("every finalist needs its fresh-seed values")
    sign = 1.0 if maximize else -1.0
    return max(finals, key=lambda f: (sign * f.score, sign * f.tuning_value))


def select_candidate(sweep: Sweep, study: Any, settings: ReportSettings) -> dict[str, Any] | None:
    """Run the stage; the record for ``report.json`` (``selection``), or None when it does not apply (turned off,
    no study, fewer than two distinct complete trials, a multi-objective study). The chosen parameters are in
    ``record["chosen_params"]``."""
    if settings.selection_top < 2 or study is None or len(study.directions) != 1:
        return None
    import optuna

    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    finals = finalists(study.get_trials(deepcopy=False), settings.selection_top, maximize)
    if len(finals) < 2:
        return None
    tuning = tuning_config(sweep)
    seeds = [int(tuning.window.seed) + SEED_OFFSET + j for j in range(settings.selection_seeds)]
    params = [_sim_params(tuning, f.params, seed) for f in finals for seed in seeds]
    log.info("selection stage: the %d best trials (%s) on %d fresh seed%s of %s: %d simulations", len(finals),
             ", ".join(str(f.trial) for f in finals), len(seeds), "" if len(seeds) == 1 else "s",
             tuning.window.name, len(params))
    metrics = run_simulations(params, min(settings.workers, len(params)))
    for i, f in enumerate(finals):
        f.fresh = [float(m["objective"]) for m in metrics[i * len(seeds):(i + 1) * len(seeds)]]
    chosen = choose(finals, maximize)
    log.info("selection stage: trial %d chosen (%.1f on the fresh seeds; the sweep's best, trial %d: %.1f)",
             chosen.trial, chosen.score, finals[0].trial, finals[0].score)
    return {
        "method": f"the {len(finals)} best complete trials simulated on {len(seeds)} fresh "
                  f"seed{'' if len(seeds) == 1 else 's'} of the tuning window (common random numbers); the best mean "
                  "is the candidate",
        "window": str(tuning.window.name),
        "seeds": seeds,
        "simulations": len(params),
        "finalists": [{"trial": f.trial, "params": f.params, "tuning_value": round(f.tuning_value, 2),
                       "fresh_values": [round(v, 2) for v in f.fresh], "fresh_mean": round(f.score, 2)}
                      for f in finals],
        "chosen_trial": chosen.trial,
        "chosen_params": dict(chosen.params),
        "chosen_tuning_value": chosen.tuning_value,
        "sweep_best_trial": finals[0].trial,
    }


def tuning_config(sweep: Sweep) -> Any:
    """The config the sweep's trials ran with, policy aside: its overrides composed with the window and demand
    options it chose (the report's overrides leave those out: it chooses its own test window), then the window and
    demand values it saved (a rolling window's dates and seed, a cycle's fleet cap)."""
    from omegaconf import OmegaConf

    from experiment.study import select

    groups = [f"{g}={c}" for g in ("window", "demand") if (c := select(sweep.config, f"hydra.runtime.choices.{g}"))]
    cfg = _compose(_last_wins([*sweep.overrides, *groups]))
    for key in ("window", "demand"):
        node = OmegaConf.select(sweep.config, key)
        if node is not None:
            cfg[key] = OmegaConf.merge(cfg[key], OmegaConf.to_container(node, resolve=True))
    return cfg


def _sim_params(tuning: Any, params: dict[str, Any], seed: int) -> Any:
    from omegaconf import OmegaConf

    from experiment.app import sim_params
    from experiment.config import ConfigError, validate
    from experiment.errors import ReportError

    cfg = copy.deepcopy(tuning)
    for key, value in params.items():
        OmegaConf.update(cfg, key, value, merge=False)
    cfg.window.seed = seed
    try:
        validate(cfg)
    except ConfigError as err:
        raise ReportError(str(err)) from None
    return sim_params(cfg)
