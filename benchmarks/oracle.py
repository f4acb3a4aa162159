"""Benchmark ``oracle``: the attainable optimum of a search space, against which sweeps are measured (issue 21).

``python -m experiment.bench oracle [search_space=navi3] [overrides] [--points N] [--reporting-seeds N]
[--workers W] [--smoke] [--out FILE] [--cache-dir DIR]`` searches far harder than any sweep, so that
``bench accuracy`` can say how much
of the revenue that tuning *could* find a sweep actually finds:

1. **Design**: a scrambled Sobol design (``scipy.stats.qmc``) of ``--points`` points over the search space
   (``hydra.sweeper.params`` of the composed config, in the sweeper's own scale: ``tag(log, ...)`` in log),
   each simulated on the tuning week with a few seeds, the same seeds for every point (common random numbers:
   the differences between points are not drowned by week-to-week noise).
2. **Refinement**: from the best few design points, a shrinking pattern search (± a step along each axis in the
   unit cube, move to the best neighbour if it beats the centre, else halve the step) on more seeds.
3. **Finals**: the refined finalists and production on the test week with a *selection* seed set (>= 16 seeds);
   the best finalist is then reported on a second, independent *reporting* seed set (32 seeds by default,
   ``--reporting-seeds``), so its figure is not inflated by having been chosen on the same noise (the winner's
   curse). ``bench accuracy`` measures every candidate on these seeds: more of them, a more precise share.

Simulations run in-process (:func:`experiment.sim.simulate.simulate`, ``--workers`` spawned processes), not
through Hydra per point. Every result is appended to a cache under ``outputs/oracle/`` keyed by the simulator's
fingerprint, so a stopped oracle resumes where it stopped (a torn last line is ignored). The result goes to
``docs/oracle-<search_space>.json`` (``--out`` elsewhere; ``--smoke`` never writes to docs/).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
PROG = "navitune bench oracle"

#: what defines the simulated world an oracle was computed on: the simulator's code and data, and the conf files
#: of the city, production and the windows. A change to any of them changes the fingerprint.
FINGERPRINT_GLOBS = (
    "experiment/sim/**/*.py", "experiment/sim/data/*", "conf/region/*.yaml", "conf/scenario/*.yaml",
    "conf/demand/*.yaml", "conf/policy/production.yaml", "conf/window/tune_week.yaml",
    "conf/window/test_week.yaml", "conf/window/smoke.yaml",
)
#: the simulator's own measurement tools, which simulate() never imports (tests/test_bench_accuracy.py holds that):
#: editing them changes no simulated figure, so they do not invalidate an oracle
FINGERPRINT_EXCLUDE = ("experiment/sim/diagnostics.py", "experiment/sim/defaults.py")
#: keys the oracle sets itself (its windows and seeds define the measurement)
OWN_KEYS = ("window", "window.seed", "window.start", "window.end", "tracking", "paths")
#: seed offsets of the two test-week seed sets, from the test window's own seed (1001): 1101.., 1201..; apart from
#: each other and from the report's replications (1001..1016 by default, 1001..1100 at most: max_replications <= 100)
SELECTION_OFFSET, REPORTING_OFFSET = 100, 200


class OracleError(Exception):
    """Bad input or an oracle that cannot be computed: one line, exit code 2."""


# --------------------------------------------------------------------------------------------- search space
@dataclass(frozen=True)
class Dim:
    """One searched parameter: its range, whether the sweeper searches it in log scale and as an integer."""

    name: str
    lo: float
    hi: float
    log: bool = False
    integer: bool = False

    def value(self, u: float) -> float:
        """The parameter value at ``u`` in [0, 1] of the (log-)range."""
        u = min(max(float(u), 0.0), 1.0)
        x = math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo))) if self.log \
            else self.lo + u * (self.hi - self.lo)
        return float(min(max(round(x), self.lo), self.hi)) if self.integer else float(x)


def parse_space(params: Mapping[str, Any]) -> tuple[list[Dim], dict[str, float]]:
    """The searched dimensions and the fixed values of ``hydra.sweeper.params``. Understood: ``interval(a, b)``,
    ``int(interval(a, b))`` (both ends whole numbers) and either under ``tag(log, ...)``; a plain value is fixed.
    Anything else (``choice``, ``range``, a key outside ``policy.``) is one line (OracleError)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    parser = OverridesParser.create()
    dims: list[Dim] = []
    fixed: dict[str, float] = {}
    allowed = "interval(a, b), int(interval(a, b)), tag(log, ...) of either, or a number"
    for name, raw in params.items():
        if not str(name).startswith("policy."):
            raise OracleError(f"{PROG}: cannot search hydra.sweeper.params.{name}: the oracle varies policy.* "
                              "parameters only")
        try:
            value = parser.parse_overrides([f"{name}={raw}"])[0].value()
        except Exception:
            raise OracleError(f"{PROG}: cannot parse hydra.sweeper.params.{name}={raw!r}; allowed: {allowed}") from None
        if isinstance(value, IntervalSweep):
            lo, hi = value.start, value.end
            log = "log" in value.tags
            if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo < hi) or (log and lo <= 0):
                raise OracleError(f"{PROG}: invalid range hydra.sweeper.params.{name}={raw!r}; allowed: a < b "
                                  "(and a > 0 under tag(log, ...))")
            integer = isinstance(lo, int) and isinstance(hi, int)
            dims.append(Dim(str(name), float(lo), float(hi), log, integer))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            fixed[str(name)] = float(value)
        else:
            raise OracleError(f"{PROG}: cannot search hydra.sweeper.params.{name}={raw!r}; allowed: {allowed}")
    if not dims:
        raise OracleError(f"{PROG}: hydra.sweeper.params has no range to search; allowed: {allowed}")
    return dims, fixed


def point_of(dims: Sequence[Dim], u: Sequence[float]) -> dict[str, float]:
    return {d.name: d.value(x) for d, x in zip(dims, u)}


def sobol(dims: Sequence[Dim], points: int, seed: int) -> Any:
    """A scrambled Sobol design of ``points`` (a power of 2) rows in the unit cube of ``dims``: the oracle's
    first stage and the hindsight search of ``bench retune`` share it."""
    from scipy.stats import qmc

    return qmc.Sobol(d=len(dims), scramble=True, seed=seed).random_base2(int(math.log2(points)))


# --------------------------------------------------------------------------------------------- fingerprint
def fingerprint(root: Path = ROOT) -> str:
    """SHA-256 over the relative paths and bytes of FINGERPRINT_GLOBS (less FINGERPRINT_EXCLUDE) under ``root``
    (sorted): the simulator an
    oracle was computed on. A changed byte in any of those files gives another fingerprint."""
    files = sorted({p for g in FINGERPRINT_GLOBS for p in root.glob(g) if p.is_file() and "__pycache__" not in p.parts
                    and p.relative_to(root).as_posix() not in FINGERPRINT_EXCLUDE})
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- composition
def compose(overrides: Sequence[str]) -> Any:
    """The navitune config as ``python -m experiment <overrides>`` composes it, with its hydra node (the sweeper's
    params); a bad override or value is one line."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    try:
        from experiment.registration import register_configs
    except ImportError:  # before the app layer's move
        from experiment.config import register_configs  # type: ignore[no-redef]
    from experiment.config import ConfigError, validate

    register_configs()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
                cfg = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
        validate(cfg)
    except ConfigError as err:
        raise OracleError(str(err).splitlines()[0]) from None
    except Exception as err:
        text = str(err.__cause__ or err).strip().splitlines()
        raise OracleError(f"{PROG}: cannot compose the config with {list(overrides)}: "
                          f"{text[0] if text else type(err).__name__}") from None
    return cfg


def search_space_params(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    if node is None:
        raise OracleError(f"{PROG}: the composed config has no hydra.sweeper.params; allowed: a search_space option "
                          "(navi3, navi6)")
    return dict(OmegaConf.to_container(node, resolve=False))  # type: ignore[arg-type]


@dataclass
class Windows:
    """The tuning and test windows as plain simulator parameters (production's policy), with how they were made."""

    tune: Any
    test: Any
    describe: dict[str, Any]


def windows(overrides: Sequence[str], smoke: bool) -> Windows:
    """``tune_week`` and ``test_week`` (``--smoke``: the smoke window and a test week of its size: 1 day, its fleet
    cap and shift length, as the report's ``match_scale`` gives a smoke sweep)."""
    from experiment.app import sim_params
    from experiment.config import parse_day

    tune_cfg = compose(["window=smoke" if smoke else "window=tune_week", *overrides])
    test_cfg = compose(["window=test_week", *overrides])
    if smoke:
        days = (parse_day("window.end", tune_cfg.window.end) - parse_day("window.start", tune_cfg.window.start)).days
        test_cfg.window.end = (parse_day("window.start", test_cfg.window.start) + dt.timedelta(days=days)).isoformat()
        test_cfg.window.drivers = tune_cfg.window.drivers
        test_cfg.window.max_shift_h = tune_cfg.window.max_shift_h
    tune, test = sim_params(tune_cfg), sim_params(test_cfg)
    if tune.policy is None:
        raise OracleError(f"{PROG}: the composed policy has no navigation to tune; allowed: a policy with "
                          "navigation: true (production)")

    def describe(cfg: Any, p: Any) -> dict[str, Any]:
        return {"name": str(cfg.window.name), "start": str(cfg.window.start), "end": str(cfg.window.end),
                "days": int(p.n_days), "drivers": int(p.n_drivers), "seed": int(cfg.window.seed),
                "region": str(cfg.region.name), "demand": str(cfg.demand.source),
                "scenario": str(cfg.scenario.name) if cfg.get("scenario") is not None else "stationary"}

    return Windows(tune, test, {"tuning": describe(tune_cfg, tune), "test": describe(test_cfg, test),
                                "_space": search_space_params(tune_cfg),
                                "_search_space": str(tune_cfg.hydra.runtime.choices.get("search_space") or "")})


def policy_with(base: Any, point: Mapping[str, float]) -> Any:
    """``base`` NavigationParams with the point's ``policy.*`` values (what ``OmegaConf.update`` + ``sim_params``
    would build, without composing a config per point)."""
    from experiment.tunability import with_param

    policy = base
    for name, value in point.items():
        policy = with_param(policy, name.removeprefix("policy."), float(value))
    return policy


def production_point(base: Any, names: Iterable[str]) -> dict[str, float]:
    """Production's values of the searched parameters (the composed policy's)."""
    from experiment.sim.navigation import ROAD_CLASSES, TURN_TYPES

    out = {}
    for name in names:
        key = name.removeprefix("policy.")
        if key.startswith("road_weights."):
            w = key.split(".", 1)[1]
            out[name] = float(base.turn_weights[TURN_TYPES.index(w)] if w in TURN_TYPES
                              else base.class_weights[ROAD_CLASSES.index(w)])
        else:
            out[name] = float(getattr(base, key))
    return out


# --------------------------------------------------------------------------------------------- evaluation
def _simulate(params: Any) -> tuple[float, float]:
    """(objective, CPU seconds) of one simulation, in a worker process."""
    from experiment.sim.simulate import simulate

    t0 = time.process_time()
    value = float(simulate(params).metrics["objective"])
    return value, time.process_time() - t0


def job_key(window: str, point: Mapping[str, float], seed: int) -> str:
    """The cache key of one simulation: window role, the point (sorted, floats exactly), seed."""
    return json.dumps([window, sorted((k, float(v)) for k, v in point.items()), int(seed)])


class Cache:
    """An append-only JSON-lines file of evaluated (window, point, seed) -> objective. A line cut short by a stop
    (the last one) is ignored on reading, and the next append starts on a fresh line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, tuple[float, float]] = {}
        self.torn = 0
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.values[row["k"]] = (float(row["v"]), float(row.get("cpu_s", 0.0)))
                except (ValueError, KeyError, TypeError):
                    self.torn += 1

    def add(self, key: str, value: float, cpu_s: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab+") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell():
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
            fh.write((json.dumps({"k": key, "v": value, "cpu_s": round(cpu_s, 4)}) + "\n").encode())
        self.values[key] = (value, cpu_s)


class Evaluator:
    """Simulates (window, point, seed) jobs not yet in the cache, ``workers`` at a time, with progress lines."""

    def __init__(self, cache: Cache, bases: Mapping[str, Any], workers: int,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True), name: str = "oracle",
                 pool: Any = None) -> None:
        """``pool``: a process pool the caller owns and shuts down (else one of ``workers`` is started on need)."""
        self.cache, self.bases, self.workers, self.log, self.name = cache, bases, workers, log, name
        self.new = 0  # simulations run by this process
        self.used: set[str] = set()  # every key the oracle's result rests on
        self._pool: Any = pool
        self._owns_pool = pool is None

    def params(self, window: str, point: Mapping[str, float], seed: int) -> Any:
        base = self.bases[window]
        return replace(base, seed=int(seed), policy=policy_with(base.policy, point))

    def mean(self, window: str, points: Sequence[Mapping[str, float]], seeds: Sequence[int],
             stage: str) -> list[list[float]]:
        """Per point, the objective on each seed (simulating what the cache lacks)."""
        values = self.values([(window, p, s) for p in points for s in seeds], stage)
        n = len(seeds)
        return [values[i * n:(i + 1) * n] for i in range(len(points))]

    def values(self, jobs: Sequence[tuple[str, Mapping[str, float], int]], stage: str) -> list[float]:
        """The objective of each (window, point, seed) job, in order: the cache's, or simulated together."""
        keys = [job_key(*j) for j in jobs]
        self.used.update(keys)
        todo = {k: j for k, j in zip(keys, jobs) if k not in self.cache.values}
        if todo:
            self._run(todo, stage, len(set(keys)) - len(todo))
        return [self.cache.values[k][0] for k in keys]

    def _run(self, todo: dict[str, tuple], stage: str, cached: int) -> None:
        t0, done, last = time.perf_counter(), 0, 0.0
        total = len(todo)
        self.log(f"{self.name} {stage}: {total} simulations to run ({cached} cached)")

        def report(force: bool = False) -> None:
            nonlocal last
            now = time.perf_counter() - t0
            if force or now - last >= 15 or done == total:
                last = now
                eta = now / done * (total - done) if done else float("nan")
                self.log(f"{self.name} {stage}: {done}/{total} simulations ({now:.0f} s, ETA {eta:.0f} s)")

        if self.workers <= 1:
            for key, job in todo.items():
                value, cpu = _simulate(self.params(*job))
                self.cache.add(key, value, cpu)
                self.new += 1
                done += 1
                report()
            return
        from concurrent.futures import as_completed

        pool = self.pool()
        futures = {pool.submit(_simulate, self.params(*job)): key for key, job in todo.items()}
        try:
            for fut in as_completed(futures):
                value, cpu = fut.result()
                self.cache.add(futures[fut], value, cpu)
                self.new += 1
                done += 1
                report()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def pool(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawned, not forked: this process has loaded Hydra and may hold threads
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None and self._owns_pool:
            self._pool.shutdown(cancel_futures=True)
        self._pool = None

    def cpu_s(self) -> float:
        return sum(self.cache.values[k][1] for k in self.used)

    def spent(self, t_start: float) -> dict[str, Any]:
        """What a bench's result rested on and what this run cost, for its JSON (``t_start``: perf_counter)."""
        return {"simulations": len(self.used), "simulations_this_run": self.new, "cpu_s": round(self.cpu_s(), 1),
                "wall_s_this_run": round(time.perf_counter() - t_start, 1), "machine": _machine(),
                "date": time.strftime("%Y-%m-%d")}


# --------------------------------------------------------------------------------------------- the search
@dataclass(frozen=True)
class Budget:
    """How hard the oracle searches (``--smoke``: tiny, for the test suite)."""

    points: int = 256  # Sobol design points (a power of 2)
    tune_seeds: int = 3  # tuning-week seeds per design point
    refine_seeds: int = 6  # tuning-week seeds per refinement point (the first tune_seeds are the design's)
    starts: int = 4  # design points the refinement starts from
    step: float = 0.08  # the pattern search's first step, as a share of each (log-)range
    min_step: float = 0.01  # it stops below this step
    max_iters: int = 10  # and after this many iterations
    finalists: int = 4  # refined points taken to the test week
    test_seeds: int = 16  # test-week selection seeds (the finalists are chosen on them)
    # test-week reporting seeds: the oracle's figure and every bench accuracy candidate are measured on them;
    # 32 measure a captured share to about +-0.04 (16: +-0.05 to 0.06; docs/accuracy.md)
    reporting_seeds: int = 32
    seed: int = 0  # the Sobol scramble


FULL = Budget()
SMOKE = Budget(points=8, tune_seeds=2, refine_seeds=2, starts=1, step=0.1, min_step=0.1, max_iters=1, finalists=2,
               test_seeds=3, reporting_seeds=3)
#: bounds of --reporting-seeds: at least the 16 a share needs (about +-0.05); at most 256, so the reporting seeds
#: (test seed + 200 ..: 1201..1456) stay below the decision bench's (3001..)
MIN_REPORTING_SEEDS, MAX_REPORTING_SEEDS = 16, 256


def refine(ev: Evaluator, dims: Sequence[Dim], fixed: Mapping[str, float], starts: Sequence[Sequence[float]],
           seeds: Sequence[int], budget: Budget) -> list[tuple[list[float], float]]:
    """Shrinking pattern search from each start, all starts' neighbours simulated together: (centre, mean)."""
    import numpy as np

    def evaluate(us: Sequence[Sequence[float]], stage: str) -> list[float]:
        rows = ev.mean("tune", [fixed | point_of(dims, u) for u in us], seeds, stage)
        return [float(np.mean(r)) for r in rows]

    centres = [list(map(float, u)) for u in starts]
    values = evaluate(centres, "stage 2 (refinement, starting points)")
    steps = [budget.step] * len(centres)
    for it in range(budget.max_iters):
        active = [i for i, s in enumerate(steps) if s >= budget.min_step]
        if not active:
            break
        batch: list[tuple[int, list[float]]] = []
        for i in active:
            for d in range(len(dims)):
                for sign in (-1.0, 1.0):
                    u = list(centres[i])
                    u[d] = min(max(u[d] + sign * steps[i], 0.0), 1.0)
                    if u != centres[i]:
                        batch.append((i, u))
        vals = evaluate([u for _, u in batch], f"stage 2 (refinement, iteration {it + 1})")
        for i in active:
            mine = [(v, u) for (j, u), v in zip(batch, vals) if j == i]
            best_v, best_u = max(mine, key=lambda t: t[0]) if mine else (-math.inf, centres[i])
            if best_v > values[i]:
                centres[i], values[i] = best_u, best_v
            else:
                steps[i] /= 2.0
    return list(zip(centres, values))


def run_oracle(overrides: Sequence[str], budget: Budget, workers: int, cache_dir: Path, smoke: bool,
               log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Search, select, report: the oracle's JSON document."""
    import numpy as np

    from experiment.report.stats import mean_interval, paired_improvement

    t_start = time.perf_counter()
    win = windows(overrides, smoke)
    space = win.describe.pop("_space")
    search_space = win.describe.pop("_search_space") or "custom"
    dims, fixed = parse_space(space)
    names = [d.name for d in dims]
    prod = production_point(win.tune.policy, [*names, *fixed])
    fp = fingerprint()
    tag = hashlib.sha256(json.dumps([fp, list(overrides), smoke]).encode()).hexdigest()[:16]
    cache = Cache(cache_dir / f"{search_space}-{tag}.jsonl")
    log(f"oracle {search_space}: {len(dims)} parameters ({', '.join(names)}); simulator {fp[:12]}; cache "
        f"{cache.path} ({len(cache.values)} results" + (f", {cache.torn} torn line ignored)" if cache.torn else ")"))
    ev = Evaluator(cache, {"tune": win.tune, "test": win.test}, workers, log)
    tune_seed, test_seed = int(win.describe["tuning"]["seed"]), int(win.describe["test"]["seed"])
    tune_seeds = [tune_seed + r for r in range(budget.tune_seeds)]
    refine_seeds = [tune_seed + r for r in range(max(budget.refine_seeds, budget.tune_seeds))]
    selection = [test_seed + SELECTION_OFFSET + r for r in range(budget.test_seeds)]
    reporting = [test_seed + REPORTING_OFFSET + r for r in range(budget.reporting_seeds)]
    try:
        # stage 1: the design
        design = sobol(dims, budget.points, budget.seed)
        rows = ev.mean("tune", [fixed | point_of(dims, u) for u in design], tune_seeds, "stage 1 (Sobol design)")
        design_means = np.array([np.mean(r) for r in rows])
        order = np.argsort(-design_means)
        log(f"oracle stage 1: best design point {point_of(dims, design[order[0]])}: {design_means[order[0]]:,.0f} "
            "yen/driver-day (tuning week)")
        # stage 2: refinement around the best few
        refined = refine(ev, dims, fixed, [design[i] for i in order[:budget.starts]], refine_seeds, budget)
        refined.sort(key=lambda t: -t[1])
        finalists: list[dict[str, float]] = []
        for u, _ in refined + [(list(design[i]), 0.0) for i in order]:
            p = fixed | point_of(dims, u)
            if p not in finalists:
                finalists.append(p)
            if len(finalists) == budget.finalists:
                break
        # stage 3: finalists and production on the test week; choose on one seed set, report on another
        sel = ev.mean("test", [*finalists, prod], selection, "stage 3 (finalists, selection seeds)")
        prod_sel = sel[-1]
        gains = [paired_improvement(prod_sel, r).mean for r in sel[:-1]]
        best = int(np.argmax([np.mean(r) for r in sel[:-1]]))
        chosen = finalists[best]
        rep = ev.mean("test", [chosen, prod], reporting, "stage 3 (chosen and production, reporting seeds)")
    finally:
        ev.close()
    cand, base = rep
    revenue, production = mean_interval(cand), mean_interval(base)
    gain = paired_improvement(base, cand)
    log(f"oracle {search_space}: {chosen}: {revenue.mean:,.0f} yen/driver-day vs production {production.mean:,.0f}: "
        f"{gain.mean:+.2f} % [{gain.lo:+.2f}, {gain.hi:+.2f}] ({len(ev.used)} simulations, {ev.new} new)")
    r6 = lambda x: round(float(x), 6)  # noqa: E731
    return {
        "bench": "oracle",
        "search_space": search_space,
        # the searched ranges as the sweeper reads them: bench accuracy refuses this oracle for another space
        "space": {str(k): str(v) for k, v in space.items()},
        "params": {k: r6(v) for k, v in chosen.items()},
        "revenue": round(revenue.mean, 2),
        "revenue_ci95": [round(revenue.lo, 2), round(revenue.hi, 2)],
        "production_params": {k: r6(v) for k, v in prod.items()},
        "production_revenue": round(production.mean, 2),
        "production_revenue_ci95": [round(production.lo, 2), round(production.hi, 2)],
        "gain_pct": round(gain.mean, 4),
        "gain_ci95_pct": [round(gain.lo, 4), round(gain.hi, 4)],
        "revenue_per_seed": [round(v, 4) for v in cand],
        "production_per_seed": [round(v, 4) for v in base],
        "seeds": {"tuning": tune_seeds, "refinement": refine_seeds, "selection": selection, "reporting": reporting},
        "finalists": [{"params": {k: r6(v) for k, v in p.items()}, "selection_revenue": round(float(np.mean(r)), 2),
                       "selection_gain_pct": round(g, 4)} for p, r, g in zip(finalists, sel[:-1], gains)],
        "windows": win.describe,
        "method": method_text(budget, len(dims)),
        "settings": {**dataclasses.asdict(budget), "overrides": list(overrides), "smoke": smoke, "workers": workers},
        "fingerprint": fp,
        "fingerprint_files": list(FINGERPRINT_GLOBS),
        **ev.spent(t_start),
    }


def method_text(b: Budget, d: int) -> str:
    return (f"Stage 1: a scrambled Sobol design of {b.points} points over the {d}-parameter search space (the "
            f"sweeper's scales), each on the tuning week with seeds {b.tune_seeds} (common random numbers). Stage 2: "
            f"a shrinking pattern search (step {b.step} of each range, halved on no improvement, stopped below "
            f"{b.min_step} or after {b.max_iters} iterations) from the best {b.starts} design points on "
            f"{max(b.refine_seeds, b.tune_seeds)} tuning-week seeds. Stage 3: the {b.finalists} best refined points "
            f"and production on the test week with {b.test_seeds} selection seeds; the best is reported with "
            f"production on {b.reporting_seeds} independent reporting seeds (no winner's curse); intervals are "
            "two-sided "
            "95 % Student-t, the gain paired per seed.")


def _machine() -> str:
    try:
        from benchmarks.machine import describe

        return describe()
    except Exception:
        return f"{os.cpu_count()} cores"


# --------------------------------------------------------------------------------------------- command line
def _whole(option: str, raw: str, lo: int, hi: int, extra: str = "") -> int:
    from benchmarks.args import whole

    return whole(OracleError, PROG, option, raw, lo, hi, extra)


def parse(argv: Sequence[str]) -> tuple[list[str], Budget, int, bool, Path | None, Path]:
    """(overrides, budget, workers, smoke, --out, --cache-dir); OracleError (one line) on bad input."""
    ap = argparse.ArgumentParser(prog="python -m experiment.bench oracle", add_help=False)
    ap.add_argument("--points")
    ap.add_argument("--reporting-seeds")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--cache-dir", default=str(ROOT / "outputs" / "oracle"))
    args, rest = ap.parse_known_args(list(argv))
    overrides: list[str] = []
    for item in rest:
        if item.startswith("-") or "=" not in item:
            raise OracleError(f"{PROG}: unknown option {item!r}; allowed: --points N, --reporting-seeds N, "
                              "--workers W, --smoke, --out FILE, --cache-dir DIR, overrides KEY=VALUE "
                              "(search_space=navi3|navi6, ...)")
        key = item.split("=", 1)[0].lstrip("+~")
        if key in OWN_KEYS or key.startswith("paths."):
            raise OracleError(f"{PROG}: {key} is set by the oracle (its windows, seeds and outputs); allowed: any "
                              "other override")
        overrides.append(item)
    budget = SMOKE if args.smoke else FULL
    if args.points is not None:
        points = _whole("--points", args.points, 4, 16384, ", a power of 2")
        if points & (points - 1):
            raise OracleError(f"{PROG}: invalid --points {args.points!r}; allowed: a power of 2 in [4, 16384]")
        budget = replace(budget, points=points)
    if args.reporting_seeds is not None:
        if args.smoke:
            raise OracleError(f"{PROG}: --reporting-seeds is fixed by --smoke ({SMOKE.reporting_seeds}); allowed: "
                              "--smoke or --reporting-seeds N (16-256), not both")
        budget = replace(budget, reporting_seeds=_whole("--reporting-seeds", args.reporting_seeds,
                                                        MIN_REPORTING_SEEDS, MAX_REPORTING_SEEDS))
    workers = _whole("--workers", args.workers, 1, 64)
    out = Path(args.out) if args.out else None
    if args.smoke and out is None:
        raise OracleError(f"{PROG}: --smoke needs --out FILE (a smoke oracle never goes to docs/)")
    if out is not None and not out.parent.is_dir():
        raise OracleError(f"{PROG}: invalid --out {args.out!r}; allowed: a file in an existing directory")
    if args.smoke and out is not None and out.resolve().parent == (ROOT / "docs").resolve():
        raise OracleError(f"{PROG}: invalid --out {args.out!r} with --smoke; allowed: a file outside docs/")
    return overrides, budget, workers, bool(args.smoke), out, Path(args.cache_dir)


def bench_oracle(argv: Sequence[str]) -> dict[str, Any]:
    """The bench entry: run, write the oracle file, return its summary (the last stdout line)."""
    try:
        overrides, budget, workers, smoke, out, cache_dir = parse(argv)
        result = run_oracle(overrides, budget, workers, cache_dir, smoke)
    except OracleError as err:
        print(str(err), file=sys.stderr)
        raise SystemExit(2) from None
    path = out or ROOT / "docs" / f"oracle-{result['search_space']}.json"
    from experiment.atomic_file import write_text_atomic

    try:  # atomically: a stop or a full disk leaves the former oracle as it was
        write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    except OSError as err:
        print(f"{PROG}: cannot write {path} ({err.strerror or type(err).__name__}); the simulations are cached: fix "
              "that and run the same command again", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"oracle written to {path}", file=sys.stderr)
    return {k: result[k] for k in ("bench", "search_space", "params", "revenue", "production_revenue", "gain_pct",
                                   "gain_ci95_pct", "simulations", "simulations_this_run", "cpu_s", "fingerprint")} \
        | {"path": str(path)}
