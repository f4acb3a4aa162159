"""Benchmark ``accuracy``: how much of the attainable gain does a sweep capture? (issue 21)

``python -m experiment.bench accuracy [--budgets 15,27,60] [--repeats 5] [--configs default,tpe,...]
[--oracle docs/oracle-navi3.json] [--workers 2] [--smoke] [--keep DIR] [--first-seed 1]``:

* each configuration runs ``repeats`` independent sweeps through the real command path (``python -m experiment -m
  ...`` as a subprocess: process_pool with 2 workers, ``hydra.sweeper.sampler.seed=1..repeats``, or from ``--first-seed``, ``tracking=off``,
  its own ``paths.outputs``), the end-of-sweep report included;
* each sweep's chosen candidate is taken as the report and the registry take it (``policy_candidate.yaml``, else
  ``optimization_results.yaml``'s best parameters on production) and simulated on the oracle's test window and
  *reporting* seeds (``bench oracle``), against which the oracle and production were measured;
* **captured share** = (candidate - production) / (oracle - production), mean revenues on the same seeds.

The oracle must come from this simulator (its fingerprint); otherwise one line says how to recompute it.
The last stdout line is one JSON object (``oracle``, ``configs``, ``default``).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.oracle import ROOT, OracleError, fingerprint, policy_with, production_point, windows

PROG = "navitune bench accuracy"


class AccuracyError(Exception):
    """Bad input or an unusable oracle: one line, exit code 2."""


# --------------------------------------------------------------------------------------------- the measure
def captured_share(candidate: Sequence[float], production: Sequence[float], oracle: Sequence[float]) -> float:
    """(candidate - production) / (oracle - production) of the mean revenues, all on the same seeds (paired, so
    the seeds' common noise cancels). 1: the sweep found all the attainable gain; 0: none; negative: it lost
    revenue against production (kept: a sweep that makes things worse must show). Raises ValueError when the
    three differ in length or the oracle holds no gain over production (the share is then undefined)."""
    if not (len(candidate) == len(production) == len(oracle)) or not candidate:
        raise ValueError(f"captured share needs the same seeds for all three: {len(candidate)}, {len(production)}, "
                         f"{len(oracle)} values")
    c, p, o = (statistics.fmean(map(float, xs)) for xs in (candidate, production, oracle))
    if not o > p:
        raise ValueError(f"the oracle ({o:,.2f}) is no better than production ({p:,.2f}): there is no attainable gain "
                         "to capture; recompute the oracle")
    return (c - p) / (o - p)


def captured_share_se(candidate: Sequence[float], production: Sequence[float], oracle: Sequence[float]) -> float:
    """The standard error of :func:`captured_share` from its seeds: SD over the seeds of (oracle - candidate),
    / sqrt(n), / the oracle's mean gain. It is what the evaluation itself leaves uncertain (16 seeds measure a
    share to about +-0.05, docs/accuracy.md), apart from how the sweep went."""
    captured_share(candidate, production, oracle)  # the same checks
    if len(candidate) < 2:
        return math.nan
    gain = statistics.fmean(map(float, oracle)) - statistics.fmean(map(float, production))
    return statistics.stdev(float(o) - float(c) for o, c in zip(oracle, candidate)) / math.sqrt(len(candidate)) / gain


# --------------------------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Config:
    """One way to tune: the sweep's overrides (besides budget, seed, outputs)."""

    name: str
    sampler: str
    search_space: str
    overrides: tuple[str, ...] = ()
    optuna_async: bool = True  # navitune's own sweeper (keys such as hydra.sweeper.progress exist)
    runner: str = "hydra"  # "hydra": python -m experiment -m; "ax": benchmarks.ax_peer (its own API)
    needs: str = ""  # a module of the optional bench extra it needs (torch, ax), checked before any sweep


#: what ``make run`` runs: ``python -m experiment -m`` with the config's defaults
DEFAULT = "default"
CONFIGS: dict[str, Config] = {
    DEFAULT: Config(DEFAULT, "tpe", "navi3"),
    **{s: Config(s, s, "navi3", (f"hydra/sweeper/sampler={s}",), needs="torch" if s == "gp" else "")
       for s in ("tpe", "gp", "cmaes", "qmc", "random")},
    # TPE that models the parameters jointly (Optuna's multivariate TPE), with the constant liar for trials in flight
    "tpe-mv": Config("tpe-mv", "tpe", "navi3", ("hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.multivariate=true",
                                                 "hydra.sweeper.sampler.constant_liar=true")),
    "tpe-mv-s5": Config("tpe-mv-s5", "tpe", "navi3", (
        "hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.multivariate=true", "hydra.sweeper.sampler.constant_liar=true",
        "hydra.sweeper.sampler.n_startup_trials=5")),
    "tpe-s5": Config("tpe-s5", "tpe", "navi3", ("hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.n_startup_trials=5")),
    # the report's selection stage with 2 fresh tuning seeds for each of the 3 best trials (6 simulations)
    "select": Config("select", "tpe", "navi3", ("hydra.callbacks.report.selection_top=3",
                                                "hydra.callbacks.report.selection_seeds=2")),
    # the sweep's best trial on its tuning seed, no selection stage (the default before issue 21's last change)
    "best": Config("best", "tpe", "navi3", ("hydra.callbacks.report.selection_top=0",)),
    # the 2 best on 2 fresh seeds each (at --budgets 26: the default's 30 tuning simulations)
    "select2": Config("select2", "tpe", "navi3", ("hydra.callbacks.report.selection_top=2",
                                                  "hydra.callbacks.report.selection_seeds=2")),
    # the same with one fresh seed per finalist (3 simulations): the default's selection stage since issue 21
    "select1": Config("select1", "tpe", "navi3", ("hydra.callbacks.report.selection_top=3",
                                                  "hydra.callbacks.report.selection_seeds=1")),
    # the default with the assumed wait searched on a linear scale instead of navi3's log scale
    "wait-linear": Config("wait-linear", "tpe", "navi3", ("policy.max_wait_min=interval(1.0,60.0)",)),
    # the default with the discount searched over 0.6-0.995, navi3's range before issue 21 narrowed it to 0.85-0.99
    # (measured the other way round, docs/accuracy.md)
    "gamma-0.6": Config("gamma-0.6", "tpe", "navi3", ("policy.gamma=interval(0.6,0.995)",)),
    "navi6": Config("navi6", "tpe", "navi6", ("search_space=navi6",)),
    # Optuna's GP sampler (PyTorch: pip install -e '.[bench]') without a pruner: the GP learns from COMPLETE
    # trials only (its start-up count too), so pruned trials are lost to it; the control is TPE without a pruner.
    # (pruner=null is no pruning since issue 21; before, Optuna put its MedianPruner(5 start-up trials, no warm-up)
    # in its place, which tpe-median-s5w0 names)
    "gp-nopr": Config("gp-nopr", "gp", "navi3", ("hydra/sweeper/sampler=gp", "hydra.sweeper.pruner=null"),
                      needs="torch"),
    "tpe-nopr": Config("tpe-nopr", "tpe", "navi3", ("hydra.sweeper.pruner=null",)),
    "tpe-median-s5w0": Config("tpe-median-s5w0", "tpe", "navi3", (
        "hydra.sweeper.pruner={_target_: optuna.pruners.MedianPruner, n_startup_trials: 5, n_warmup_steps: 0}",)),
    # hydra-optuna-sweeper with its defaults (TPE, batches of n_jobs), navi3's ranges; it enqueues no baseline
    "hydra-optuna": Config("hydra-optuna", "tpe", "navi3", ("~search_space", "hydra/sweeper=optuna",
                                                             "hydra.sweeper.direction=maximize"), optuna_async=False),
    # Ax (pip install -e '.[bench]') through its own API on the same simulation, with its defaults, spending what
    # the default spends at the same budget: its trials, its selection stage and the report's replications
    "ax": Config("ax", "ax", "navi3", optuna_async=False, runner="ax", needs="ax"),
}
#: peers named by the issue, not built yet (they would live in the optional ``bench`` extra)
NOT_YET = ("smac",)
#: what the default's end-of-sweep report spent when the table of docs/accuracy.md was measured (5 replications x 4
#: patterns; 2 x 4 in a smoke run), given to a peer that has no report so it spends as much as the default
REPORT_SIMULATIONS = {False: 20, True: 8}
#: the optional bench extra's distributions, by the module a configuration needs
EXTRA = {"torch": "PyTorch", "ax": "ax-platform"}


def selection_simulations() -> int:
    """What the default's selection stage spends (finalists x fresh seeds, the report's defaults, which
    conf/config.yaml repeats: tested), given to a peer too: it has no selection stage, so it spends them on trials."""
    from experiment.report.settings import ReportSettings

    s = ReportSettings()
    return s.selection_top * s.selection_seeds if s.selection_top >= 2 else 0


def installed(module: str) -> bool:
    """Whether a configuration's optional module is importable ("" needs nothing)."""
    import importlib.util

    return not module or importlib.util.find_spec(module) is not None


def config_space(config: Config) -> dict[str, str]:
    """The ranges a configuration searches: its search space's ``hydra.sweeper.params`` (hydra-optuna-sweeper is
    handed them as overrides), whatever the oracle it is measured against."""
    from benchmarks.oracle import compose, search_space_params

    return {k: str(v) for k, v in search_space_params(compose([f"search_space={config.search_space}"])).items()}


def sweep_command(config: Config, budget: int, seed: int, outputs: Path, space: Mapping[str, str],
                  smoke: bool) -> list[str]:
    """The sweep's command line: the real CLI, 2 trials at a time in process_pool, its own outputs (a peer with its
    own API: its driver, as many simulations as the default spends, 2 at a time)."""
    if config.runner == "ax":
        return [sys.executable, "-m", "benchmarks.ax_peer", "--simulations",
                str(budget + selection_simulations() + REPORT_SIMULATIONS[smoke]),
                "--seed", str(seed), "--out", f"{outputs}/sweep", "--workers", "2", *(["--smoke"] if smoke else []),
                f"search_space={config.search_space}", *config.overrides]
    cmd = [sys.executable, "-m", "experiment", "-m", *config.overrides, f"hydra.sweeper.n_trials={budget}",
           f"hydra.sweeper.sampler.seed={seed}", "hydra.sweeper.n_jobs=2", "hydra/launcher=process_pool",
           "hydra.launcher.n_jobs=2", "tracking=off", f"paths.outputs={outputs}", f"hydra.sweep.dir={outputs}/sweep"]
    if not config.optuna_async:  # hydra-optuna-sweeper: the search space as overrides
        cmd += [f"{k}={v}" for k, v in space.items()]
    else:
        cmd += ["hydra.sweeper.progress=false"]
    if smoke:
        cmd += ["window=smoke", "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed", "hydra.callbacks.report.plots=false"]
    return cmd


def run_sweep(cmd: list[str], log_path: Path) -> float:
    """Run one sweep; its CPU seconds (this process's waited-for children: the sweep, its jobs, report workers)."""
    import os
    import signal

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w") as fh:
        # its own process group, ended with the bench: a bench stopped (Ctrl-C, kill, timeout) leaves no sweep behind
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt("SIGTERM")))
        try:
            proc.wait(timeout=6 * 3600)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = log_path.read_text()[-1200:]
        raise RuntimeError(f"sweep failed (exit {proc.returncode}; log {log_path}):\n{tail}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def report_simulations(sweep_dir: Path) -> int:
    """The simulations of the sweep's report: its selection stage and its replications (0 without a report)."""
    report = sweep_dir / "report.json"
    if not report.is_file():
        return 0
    r = json.loads(report.read_text())
    return sum(int(p.get("replications", 0)) for p in r.get("patterns", [])) + \
        int((r.get("selection") or {}).get("simulations", 0))


def sweep_simulations(sweep_dir: Path) -> int:
    """Every simulation a sweep spent: its jobs (trials, baseline, retries, pruned ones counted whole), the
    report's selection stage and its replications; a peer's own count (``peer.json``)."""
    peer = sweep_dir / "peer.json"
    if peer.is_file():
        return int(json.loads(peer.read_text())["simulations"])
    return sum(1 for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()) + report_simulations(sweep_dir)


def simulation_equivalents(outputs: Path, sweep_dir: Path, days: int) -> float | None:
    """What a sweep spent in whole simulations when a pruned trial counts by the days it simulated (its
    intermediate values: one per day) and every other job and the report's runs count whole; None when the
    study cannot be read (a sweeper without navitune's journal)."""
    journal = outputs / "optuna" / "studies.journal"
    if not journal.is_file():
        return None
    import optuna
    from hydra_plugins.navitune_shared.protocol import OVER_BUDGET

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    spent = 0.0
    for summary in optuna.get_all_study_summaries(storage):
        for t in optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False):
            if t.user_attrs.get(OVER_BUDGET):  # asked past the budget and failed at once, never run
                continue
            if t.state == optuna.trial.TrialState.PRUNED:
                spent += min(len(t.intermediate_values), days) / days
            elif t.state.is_finished():
                spent += 1.0
    return spent + report_simulations(sweep_dir)


def candidate_policy(sweep_dir: Path, production: Any, names: Sequence[str]) -> tuple[Any, dict[str, float], str]:
    """The sweep's candidate as the report and the registry take it: (NavigationParams, its tuned values, source)."""
    from omegaconf import OmegaConf

    from experiment.sim.navigation import NavigationParams

    path = sweep_dir / "policy_candidate.yaml"
    if path.is_file():
        p = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        nav = NavigationParams.from_road_weights(float(p["gamma"]), float(p["max_wait_min"]), dict(p["road_weights"]),
                                                 compliance=float(p["compliance"]))
        return nav, production_point(nav, names), path.name
    results = sweep_dir / "optimization_results.yaml"
    if not results.is_file():
        raise RuntimeError(f"{sweep_dir} holds neither policy_candidate.yaml nor optimization_results.yaml")
    best = {str(k): float(v) for k, v in OmegaConf.to_container(OmegaConf.load(results))["best_params"].items()}
    return policy_with(production, best), best, results.name


# --------------------------------------------------------------------------------------------- the oracle
def load_oracle(path: Path, smoke: bool) -> dict[str, Any]:
    """The oracle file, refused in one line if it is missing, of another simulator or of the other size."""
    if not path.is_file():
        raise AccuracyError(f"{PROG}: no oracle at {path}; compute it with: python -m experiment.bench oracle "
                            "search_space=navi3" + (" --smoke --out FILE" if smoke else ""))
    try:
        oracle = json.loads(path.read_text())
        space = oracle["search_space"]
        oracle["fingerprint"], oracle["seeds"]["reporting"], oracle["revenue_per_seed"]  # noqa: B018
    except (ValueError, KeyError, TypeError):
        raise AccuracyError(f"{PROG}: {path} is not an oracle file (bench oracle writes one)") from None
    if oracle["fingerprint"] != fingerprint():
        raise AccuracyError(f"{PROG}: {path} was computed on another simulator (fingerprint {oracle['fingerprint'][:12]},"
                            f" now {fingerprint()[:12]}); recompute it: python -m experiment.bench oracle "
                            f"search_space={space}" + (" --smoke --out FILE" if smoke else ""))
    if bool(oracle.get("settings", {}).get("smoke")) != smoke:
        raise AccuracyError(f"{PROG}: {path} is a {'smoke' if not smoke else 'full'}-sized oracle; allowed: "
                            + ("a --smoke oracle with --smoke" if smoke else "a full oracle (without --smoke)"))
    return oracle


def check_oracle_space(oracle: Mapping[str, Any], win: Any, path: Path, smoke: bool) -> None:
    """An oracle of other ranges than its search space has now is not the attainable optimum of these (the ranges
    live in conf/search_space, outside the simulator's fingerprint): one line saying how to recompute it."""
    space = {k: str(v) for k, v in win.describe["_space"].items()}
    if oracle.get("space") != space:
        raise AccuracyError(f"{PROG}: {path} was computed for other ranges of search_space="
                            f"{oracle['search_space']} than the config's ({', '.join(f'{k}={v}' for k, v in space.items())}"
                            f"); recompute it: python -m experiment.bench oracle search_space={oracle['search_space']}"
                            + (" --smoke --out FILE" if smoke else ""))


# --------------------------------------------------------------------------------------------- command line
@dataclass
class Options:
    budgets: list[int]
    repeats: int
    configs: list[str]
    oracle: Path
    workers: int
    smoke: bool
    keep: Path | None
    all_configs: bool = False  # --configs not given: every installed configuration
    first_seed: int = 1  # sampler seeds first_seed .. first_seed + repeats - 1 (a later call extends a measurement)


def parse(argv: Sequence[str]) -> Options:
    """The options; AccuracyError (one line naming the option and what it allows) on bad input."""
    ap = argparse.ArgumentParser(prog="python -m experiment.bench accuracy", add_help=False)
    ap.add_argument("--budgets", default=None)
    ap.add_argument("--repeats", default=None)
    ap.add_argument("--configs", default=None)
    ap.add_argument("--oracle", default=str(ROOT / "docs" / "oracle-navi3.json"))
    ap.add_argument("--workers", default="2")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--keep", default=None)
    ap.add_argument("--first-seed", default="1")
    args, rest = ap.parse_known_args(list(argv))
    if rest:
        raise AccuracyError(f"{PROG}: unknown option {rest[0]!r}; allowed: --budgets, --repeats, --configs, --oracle, "
                            "--workers, --smoke, --keep, --first-seed")
    names = sorted(CONFIGS) + list(NOT_YET)

    def whole(option: str, raw: str, lo: int, hi: int) -> int:
        from benchmarks.args import whole as checked

        return checked(AccuracyError, PROG, option, raw, lo, hi)

    budgets_raw = args.budgets or ("3" if args.smoke else "15,27,60")
    budgets = [whole("--budgets", b.strip(), 3, 10000) for b in budgets_raw.split(",")]
    if len(set(budgets)) != len(budgets):
        raise AccuracyError(f"{PROG}: invalid --budgets {budgets_raw!r}; allowed: distinct whole numbers in [3, 10000], "
                            "comma-separated")
    repeats = whole("--repeats", args.repeats or ("1" if args.smoke else "5"), 1, 50)
    # every configuration by default, but those whose optional module is not installed (named in the log)
    everything = ",".join(n for n in CONFIGS if installed(CONFIGS[n].needs))
    configs = [c.strip() for c in (args.configs or (DEFAULT if args.smoke else everything)).split(",")]
    for c in configs:
        if c in NOT_YET:
            raise AccuracyError(f"{PROG}: --configs {c}: not implemented yet (issue 21; the peer would live in the "
                                f"optional bench extra); allowed: {', '.join(CONFIGS)}")
        if c not in CONFIGS:
            raise AccuracyError(f"{PROG}: invalid --configs {c!r}; allowed: {', '.join(names)} (comma-separated)")
        if not installed(CONFIGS[c].needs):
            raise AccuracyError(f"{PROG}: --configs {c} needs {EXTRA[CONFIGS[c].needs]}: pip install -e '.[bench]'; "
                                f"allowed without it: {', '.join(n for n in CONFIGS if installed(CONFIGS[n].needs))}")
    workers = whole("--workers", args.workers, 1, 64)
    first_seed = whole("--first-seed", args.first_seed, 1, 10000)
    keep = Path(args.keep) if args.keep else None
    if keep is not None and not keep.parent.is_dir():
        raise AccuracyError(f"{PROG}: invalid --keep {args.keep!r}; allowed: a directory whose parent exists")
    return Options(budgets, repeats, configs, Path(args.oracle), workers, bool(args.smoke), keep,
                   all_configs=args.configs is None and not args.smoke, first_seed=first_seed)


# --------------------------------------------------------------------------------------------- the bench
def evaluate(test: Any, policies: Sequence[Any], seeds: Sequence[int], workers: int) -> list[list[float]]:
    """Per policy, its revenue on each seed (test window, common random numbers)."""
    from dataclasses import replace

    from benchmarks.oracle import _simulate

    params = [replace(test, seed=int(s), policy=p) for p in policies for s in seeds]
    if workers <= 1 or len(params) <= 1:
        values = [_simulate(x)[0] for x in params]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            values = [v for v, _ in pool.map(_simulate, params)]
    n = len(seeds)
    return [values[i * n:(i + 1) * n] for i in range(len(policies))]


def run_accuracy(opts: Options, log: Any = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    oracle = load_oracle(opts.oracle, opts.smoke)
    seeds = [int(s) for s in oracle["seeds"]["reporting"]]
    try:
        win = windows(list(oracle.get("settings", {}).get("overrides", [])), opts.smoke)
    except OracleError as err:
        raise AccuracyError(str(err)) from None
    check_oracle_space(oracle, win, opts.oracle, opts.smoke)
    production = win.test.policy
    # the sweeps' own objective (the tuning window on its seed): the oracle's value there tells a search shortfall
    # (the sweep never reached a point as good on its own objective) from overfitting (it beat the oracle there)
    tune_seed = [int(win.tune.seed)]
    oracle_tune = evaluate(win.tune, [policy_with(win.tune.policy, oracle["params"])], tune_seed, 1)[0][0]
    left_out = [n for n in CONFIGS if n not in opts.configs and not installed(CONFIGS[n].needs)]
    if left_out and opts.all_configs:
        log(f"accuracy: left out, their optional modules not installed (pip install -e '.[bench]'): "
            f"{', '.join(left_out)}")
    entries = []
    with tempfile.TemporaryDirectory(prefix="navitune-accuracy-") as tmp:
        root = opts.keep or Path(tmp)
        for name in opts.configs:
            config = CONFIGS[name]
            searched = config_space(config)
            for budget in opts.budgets:
                shares, sims, cpus, rows, equiv = [], [], [], [], []
                for seed in range(opts.first_seed, opts.first_seed + opts.repeats):
                    out = root / f"{name}-b{budget}-s{seed}"
                    out.mkdir(parents=True, exist_ok=True)
                    t0 = time.perf_counter()
                    log(f"accuracy: {name}, budget {budget}, sampler seed {seed}: sweeping ...")
                    cpu = run_sweep(sweep_command(config, budget, seed, out, searched, opts.smoke),
                                    out / "sweep.log")
                    nav, tuned, source = candidate_policy(out / "sweep", production, list(searched))
                    cand = evaluate(win.test, [nav], seeds, opts.workers)[0]
                    tuning_gap = 100.0 * (evaluate(win.tune, [nav], tune_seed, 1)[0][0] / oracle_tune - 1.0)
                    share = captured_share(cand, oracle["production_per_seed"], oracle["revenue_per_seed"])
                    share_se = captured_share_se(cand, oracle["production_per_seed"], oracle["revenue_per_seed"])
                    n_sims = sweep_simulations(out / "sweep")
                    equivalents = simulation_equivalents(out, out / "sweep", int(win.tune.n_days))
                    log(f"accuracy: {name}, budget {budget}, seed {seed}: captured share {share:.3f} "
                        f"({n_sims} simulations, {cpu:.0f} cpu s, {time.perf_counter() - t0:.0f} s; candidate from "
                        f"{source})")
                    shares.append(share)
                    sims.append(n_sims)
                    cpus.append(cpu)
                    equiv.append(equivalents)
                    rows.append({"seed": seed, "captured_share": round(share, 4),
                                 "captured_share_se": None if math.isnan(share_se) else round(share_se, 4),
                                 "simulations": n_sims,
                                 "simulation_equivalents": None if equivalents is None else round(equivalents, 2),
                                 "cpu_s": round(cpu, 1), "revenue": round(statistics.fmean(cand), 2),
                                 "candidate_source": source,
                                 # % against the oracle on the sweep's own objective: < 0 a search shortfall
                                 "tuning_vs_oracle_pct": round(tuning_gap, 3),
                                 "params": {k: float(v) for k, v in tuned.items()}})
                entries.append({
                    "name": name, "sampler": config.sampler, "search_space": config.search_space, "budget": budget,
                    "repeats": opts.repeats, "captured_share_median": round(statistics.median(shares), 4),
                    "captured_share_min": round(min(shares), 4), "simulations_median": statistics.median(sims),
                    "simulation_equivalents_median": None if None in equiv else round(statistics.median(equiv), 2),
                    "cpu_s": round(statistics.median(cpus), 1), "runs": rows,
                })
    return {
        "bench": "accuracy",
        "oracle": {k: oracle[k] for k in ("params", "revenue", "production_revenue", "gain_pct", "gain_ci95_pct")}
        | {"search_space": oracle["search_space"], "path": str(opts.oracle)},
        "configs": entries,
        "default": DEFAULT,
        "evaluation": {"window": oracle["windows"]["test"], "seeds": seeds},
        "smoke": opts.smoke,
        "date": time.strftime("%Y-%m-%d"),
    }


def bench_accuracy(argv: Sequence[str]) -> dict[str, Any]:
    try:
        return run_accuracy(parse(argv))
    except (AccuracyError, ValueError) as err:
        print(str(err).splitlines()[0] if str(err).startswith("navitune") else f"{PROG}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
