"""One report, end to end: read the sweep, compose, simulate, decide, write."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from experiment.report._util import _json_default, _select
from experiment.report.assemble import assemble
from experiment.report.compose import compose_patterns
from experiment.report.files import write_report
from experiment.report.selection import select_candidate
from experiment.report.settings import DEMANDS, SETS, ReportSettings
from experiment.report.simulations import run_simulations
from experiment.study import baseline as _baseline, load_study as _load_study, load_sweep

log = logging.getLogger("navitune.report")


def build_report(
    sweep_dir: str | Path,
    overrides: Sequence[str] = (),
    settings: ReportSettings | None = None,
    config: DictConfig | None = None,
) -> dict[str, Any]:
    """Evaluate, decide, write the files; returns the ``report.json`` content (plus ``files``: the paths
    written). ``config`` is the sweep's config when called from the sweep itself; without it the sweep is read
    from its directory. Raises :class:`ReportError` for input that is not a finished sweep."""
    t0 = time.perf_counter()
    settings = (settings or ReportSettings()).check()
    sweep = load_sweep(sweep_dir, config)
    study, study_problem = _load_study(sweep)
    baseline, baseline_source = _baseline(study, sweep)
    selection = select_candidate(sweep, study, settings)
    if selection is not None:  # the candidate every later step takes (report, policy_candidate.yaml, registry)
        sweep.best_params = dict(selection["chosen_params"])
        sweep.best_value = float(selection["chosen_tuning_value"])
    tuning_window = _select(sweep.config, "window.name")
    cfgs = compose_patterns(sweep, settings, baseline, overrides)
    test_window = str(next(iter(cfgs.values()))["cfg"].window.name)  # report.window=auto: chosen by the sweep's
    if tuning_window == test_window:
        log.warning("champion/challenger report: report.window=%s is the sweep's tuning window, not a held-out "
                    "one", test_window)
    jobs = [(s, d, r, p) for (s, d), runs in cfgs.items() for r, p in enumerate(runs["sim"])]
    n_workers = min(settings.workers, len(jobs))
    log.info("champion/challenger report: %d simulations (%s x %s x %d replications) on %s, %d process(es)",
             len(jobs), "/".join(SETS), "/".join(DEMANDS), settings.replications, test_window, n_workers)
    metrics = run_simulations([p for *_, p in jobs], n_workers)
    result = assemble(sweep, settings, cfgs, jobs, metrics, baseline_source)
    result["study_problem"] = study_problem
    result["selection"] = selection
    files = write_report(sweep, settings, result, cfgs, study)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    (sweep.dir / "report.json").write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    result["files"] = [str(f) for f in files]
    imp = result["improvement_pct"]
    log.info("champion/challenger report: tuned vs production on %s: ml %+.2f %% [%+.2f, %+.2f], "
             "stats %+.2f %% [%+.2f, %+.2f] -> %s (%s)", test_window,
             imp["ml"], *result["ci95_pct"]["ml"], imp["stats"], *result["ci95_pct"]["stats"],
             result["decision"], sweep.dir / "report.md")
    return result
