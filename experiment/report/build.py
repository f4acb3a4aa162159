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
from experiment.report.simulations import SimulationPool
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
    jobs, metrics, looks = simulate_looks(cfgs, settings, test_window)
    result = assemble(sweep, settings, cfgs, jobs, metrics, baseline_source, looks)
    result["study_problem"] = study_problem
    result["selection"] = selection
    files = write_report(sweep, settings, result, cfgs, study)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    (sweep.dir / "report.json").write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    result["files"] = [str(f) for f in files]
    imp = result["improvement_pct"]
    log.info("champion/challenger report: tuned vs production on %s: ml %+.2f %% [%+.2f, %+.2f], "
             "stats %+.2f %% [%+.2f, %+.2f] -> %s after %d replications (%s)", test_window,
             imp["ml"], *result["ci95_pct"]["ml"], imp["stats"], *result["ci95_pct"]["stats"],
             result["decision"], result["replications"], sweep.dir / "report.md")
    return result


def simulate_looks(cfgs: dict[tuple[str, str], dict[str, Any]], settings: ReportSettings, test_window: str,
                   ) -> tuple[list[tuple[str, str, int, Any]], list[dict[str, float]], list[Any]]:
    """Simulate the replications look by look (report.replications, then report.batch more each time) until the
    decision is taken or report.max_replications is reached; the configs keep only the replications used.
    Returns the jobs run, their metrics (same order) and the looks."""
    from experiment.report.stats import paired_pct_differences

    design = settings.design()
    jobs: list[tuple[str, str, int, Any]] = []
    metrics: list[dict[str, float]] = []
    revenue: dict[tuple[str, str], list[float]] = {key: [] for key in cfgs}
    looks: list[Any] = []
    done = 0
    with SimulationPool(min(settings.workers, len(cfgs) * design.looks[0])) as pool:
        for n in design.looks:
            batch = [(s, d, r, runs["sim"][r]) for (s, d), runs in cfgs.items() for r in range(done, n)]
            log.info("champion/challenger report: look %d of at most %d: %d simulations (%s x %s, replications "
                     "%d..%d) on %s, %d process(es)", len(looks) + 1, len(design.looks), len(batch), "/".join(SETS),
                     "/".join(DEMANDS), done + 1, n, test_window, pool.workers)
            batch_metrics = pool.run([p for *_, p in batch])
            for (s, d, _r, _p), m in zip(batch, batch_metrics):
                revenue[(s, d)].append(m["revenue_per_driver_day_yen"])
            jobs += batch
            metrics += batch_metrics
            done = n
            look = design.look({d: paired_pct_differences(revenue[("production", d)], revenue[("tuned", d)])
                                for d in DEMANDS})
            looks.append(look)
            log.info("champion/challenger report: after %d replications: %s -> %s", n, ", ".join(
                f"{d} {iv.mean:+.2f} % [{iv.lo:+.2f}, {iv.hi:+.2f}]" for d, iv in look.intervals.items()),
                look.outcome or "one more look")
            if look.outcome is not None:
                break
    for runs in cfgs.values():
        runs["sim"] = runs["sim"][:done]
    return jobs, metrics, looks
