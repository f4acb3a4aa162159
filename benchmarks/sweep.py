"""Benchmark ``sweep``: the asynchronous sweeper and the process-pool launcher on small generic Hydra apps.

``python -m experiment.bench sweep`` prints progress to stderr and one JSON object as its last stdout line
(registered as ``python -m experiment.bench sweep``). The app is ``benchmarks/apps/sweep_app.py``; every
sweep runs it as a subprocess (``sys.executable``) in a fresh temporary directory, and every job writes its
own start and end times (CLOCK_MONOTONIC, one clock for all processes), so durations are measured inside
the jobs, not taken from the requested sleeps.

1. **Stragglers**: job durations log-normal, mean 0.4 s, coefficient of variation 0.5; the duration is a
   deterministic function of the trial's parameter ``x`` (its log-normal quantile), and the random sampler
   has a fixed seed, so both sweepers draw the same 100 durations (checked: ``same_durations``). n_jobs=5,
   the ``process_pool`` launcher for both. ``hydra/sweeper=optuna_async`` (journal storage) against
   hydra-optuna-sweeper's ``hydra/sweeper=optuna`` (batches of n_jobs; it takes an RDB URL only, so it gets
   SQLite in the same temporary directory). ``makespan_s`` = first job start to last job end;
   ``speedup_vs_batch`` = makespan(optuna) / makespan(optuna_async) (target >= 1.25);
   ``utilization`` = sum of job durations / (n_jobs x makespan) of optuna_async (target >= 0.90).
2. **Per-trial overhead** of sweeper + launcher: a no-op job, 60 trials, n_jobs=1, journal storage.
   ``overhead_ms_per_trial`` = median over consecutive jobs of (next job's start - this job's end), i.e.
   the time between consecutive job starts minus the job's own runtime (target: median <= 50 ms); the
   mean over the whole run, (makespan - sum of job time) / (trials - 1), is reported beside it.
3. The same with MySQL storage (a throw-away MariaDB server started in the temporary directory), or null
   with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.mariadb import throwaway_mariadb

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "benchmarks" / "apps" / "sweep_app.py"

SEED = 1234
STRAGGLER = {"n_trials": 100, "n_jobs": 5, "mean_s": 0.4, "cv": 0.5}
OVERHEAD = {"n_trials": 60, "n_jobs": 1}
TARGETS = {"speedup_vs_batch": 1.25, "utilization": 0.90, "overhead_ms_per_trial": 50.0}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sweep(tmp: Path, name: str, sweeper: str, storage: str | None, n_trials: int, n_jobs: int,
           noop: bool, mean_s: float = 0.4, cv: float = 0.5) -> dict:
    """Run one sweep of the app in its own directory; return the jobs' records and the timings."""
    work = tmp / name
    out = work / "jobs"
    out.mkdir(parents=True)
    cmd = [
        sys.executable, str(APP), "-m",
        f"hydra/sweeper={sweeper}", "hydra/sweeper/sampler=random", f"hydra.sweeper.sampler.seed={SEED}",
        f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.n_jobs={n_jobs}",
        f"hydra.sweeper.study_name=bench_{name}", "hydra/launcher=process_pool", f"hydra.launcher.n_jobs={n_jobs}",
        f"hydra.sweep.dir={work / 'sweep'}", f"out_dir={out}", f"noop={str(noop).lower()}",
        f"mean_s={mean_s}", f"cv={cv}", "x=interval(0.0,1.0)",
    ]
    if storage is not None:
        cmd.append(f"hydra.sweeper.storage='{storage}'")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sweep {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    jobs = sorted((json.loads(p.read_text()) for p in out.glob("*.json")), key=lambda j: j["start"])
    if len(jobs) != n_trials:
        raise RuntimeError(f"sweep {name}: {len(jobs)} job records, expected {n_trials}")
    first, last = jobs[0]["start"], max(j["end"] for j in jobs)
    busy = sum(j["end"] - j["start"] for j in jobs)
    return {
        "jobs": jobs,
        "process_wall_s": wall,
        "startup_s": first - t0,  # sweeper process start to the first job's start (Python, Hydra, study)
        "makespan_s": last - first,
        "job_time_s": busy,
        "utilization": busy / (n_jobs * (last - first)),
        "stderr_tail": proc.stderr[-2000:],
    }


def _refill_gaps_ms(jobs: list[dict], n_jobs: int) -> list[float]:
    """For every job after the first n_jobs: its start minus the end that freed its slot (the k-th end)."""
    ends = sorted(j["end"] for j in jobs)
    return [(jobs[k]["start"] - ends[k - n_jobs]) * 1e3 for k in range(n_jobs, len(jobs))]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _straggler(tmp: Path) -> dict:
    n, k = STRAGGLER["n_trials"], STRAGGLER["n_jobs"]
    runs = {}
    for name, sweeper, storage in (
        ("async", "optuna_async", f"journal://{tmp / 'async.journal'}"),
        ("batch", "optuna", f"sqlite:///{tmp / 'batch.db'}"),
    ):
        _log(f"stragglers: hydra/sweeper={sweeper}, {n} trials, n_jobs={k}, log-normal "
             f"mean {STRAGGLER['mean_s']} s, CV {STRAGGLER['cv']} ...")
        r = _sweep(tmp, f"straggler_{name}", sweeper, storage, n, k, noop=False,
                   mean_s=STRAGGLER["mean_s"], cv=STRAGGLER["cv"])
        _log(f"  makespan {r['makespan_s']:.2f} s (process {r['process_wall_s']:.2f} s), "
             f"utilization {r['utilization']:.3f}")
        runs[name] = r
    a, b = runs["async"], runs["batch"]
    durations = [j["end"] - j["start"] for j in a["jobs"]]
    xs_a = sorted(j["x"] for j in a["jobs"])
    xs_b = sorted(j["x"] for j in b["jobs"])
    gaps = _refill_gaps_ms(a["jobs"], k)
    # batches never overlap: the jobs in start order, k at a time, are the batches
    bj = b["jobs"]
    batch_gaps = [(bj[i]["start"] - max(j["end"] for j in bj[i - k:i])) * 1e3 for i in range(k, len(bj), k)]
    ideal = a["job_time_s"] / k  # perfect packing with no overhead and no tail
    return {
        "speedup_vs_batch": b["makespan_s"] / a["makespan_s"],
        "utilization": a["utilization"],
        "async": {
            "makespan_s": a["makespan_s"], "process_wall_s": a["process_wall_s"], "startup_s": a["startup_s"],
            "job_time_s": a["job_time_s"], "ideal_makespan_s": ideal,
            "first_wave_start_spread_ms": (a["jobs"][k - 1]["start"] - a["jobs"][0]["start"]) * 1e3,
            "refill_gap_ms": {"median": statistics.median(gaps), "mean": statistics.fmean(gaps),
                              "p90": _pct(gaps, 0.9), "max": max(gaps)},
            "storage": "journal file",
        },
        "batch": {
            "makespan_s": b["makespan_s"], "process_wall_s": b["process_wall_s"], "startup_s": b["startup_s"],
            "job_time_s": b["job_time_s"], "utilization": b["utilization"],
            "between_batches_ms": {"median": statistics.median(batch_gaps), "mean": statistics.fmean(batch_gaps),
                                   "max": max(batch_gaps)},
            "batch_start_spread_ms_median": statistics.median(
                (bj[min(i + k, len(bj)) - 1]["start"] - bj[i]["start"]) * 1e3 for i in range(0, len(bj), k)),
            "storage": "sqlite file (hydra-optuna-sweeper takes an RDB URL only, no journal)",
        },
        "job_duration_s": {"mean": statistics.fmean(durations), "cv": statistics.pstdev(durations)
                           / statistics.fmean(durations), "min": min(durations), "max": max(durations)},
        "same_durations": len(xs_a) == len(xs_b) and all(abs(p - q) < 1e-12 for p, q in zip(xs_a, xs_b)),
    }


def _overhead(tmp: Path, name: str, storage: str) -> dict:
    n = OVERHEAD["n_trials"]
    r = _sweep(tmp, name, "optuna_async", storage, n, OVERHEAD["n_jobs"], noop=True)
    jobs = r["jobs"]
    gaps = [(jobs[i + 1]["start"] - jobs[i]["end"]) * 1e3 for i in range(n - 1)]
    return {
        "median_ms": statistics.median(gaps),
        "mean_ms": (r["makespan_s"] - r["job_time_s"]) * 1e3 / (n - 1),
        "p10_ms": _pct(gaps, 0.1),
        "p90_ms": _pct(gaps, 0.9),
        "max_ms": max(gaps),
        "job_runtime_ms_median": statistics.median((j["end"] - j["start"]) * 1e3 for j in jobs),
        "process_wall_s": r["process_wall_s"],
        "startup_s": r["startup_s"],
    }


def _mysql_overhead(tmp: Path) -> tuple[dict | None, str | None]:
    """Start a throw-away MariaDB in tmp, measure the overhead with it as storage, stop it."""
    if importlib.util.find_spec("pymysql") is None:
        return None, "pymysql is not installed in this environment (pip install pymysql==1.2.4)"
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(throwaway_mariadb(tmp))
        except RuntimeError as err:  # not installed, or did not start: the figure is left out, with the reason
            return None, str(err)
        root = server.root()
        with root.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
        root.close()
        server_version = subprocess.run([server.binary, "--version"], capture_output=True, text=True).stdout.strip()
        result = _overhead(tmp, "overhead_mysql", f"mysql+pymysql://root@127.0.0.1:{server.port}/bench")
    result["server"] = server_version
    return result, None


def _versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("hydra-core", "hydra-optuna-sweeper", "optuna", "SQLAlchemy")}


def bench_sweep() -> dict:
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="navitune-bench-sweep-") as d:
        tmp = Path(d)
        strag = _straggler(tmp)
        _log(f"  speedup vs batch {strag['speedup_vs_batch']:.2f}x, utilization {strag['utilization']:.3f}, "
             f"refill gap median {strag['async']['refill_gap_ms']['median']:.0f} ms")
        _log(f"per-trial overhead: no-op job, {OVERHEAD['n_trials']} trials, n_jobs=1, journal storage ...")
        journal = _overhead(tmp, "overhead_journal", f"journal://{tmp / 'overhead.journal'}")
        _log(f"  median {journal['median_ms']:.1f} ms, mean {journal['mean_ms']:.1f} ms")
        _log("per-trial overhead with MySQL storage (throw-away MariaDB) ...")
        try:
            mysql, why = _mysql_overhead(tmp)
        except Exception as err:  # report, do not fail the other measurements
            mysql, why = None, f"{type(err).__name__}: {str(err)[-500:]}"
        _log(f"  median {mysql['median_ms']:.1f} ms, mean {mysql['mean_ms']:.1f} ms" if mysql else f"  skipped: {why}")
    return {
        "bench": "sweep",
        "speedup_vs_batch": round(strag["speedup_vs_batch"], 3),
        "utilization": round(strag["utilization"], 3),
        "overhead_ms_per_trial": round(journal["median_ms"], 1),
        "overhead_ms_per_trial_mysql": round(mysql["median_ms"], 1) if mysql else None,
        "overhead_ms_per_trial_mysql_reason": why,
        "straggler": _rounded(strag),
        "overhead_journal": _rounded(journal),
        "overhead_mysql": _rounded(mysql) if mysql else None,
        "definitions": {
            "makespan_s": "first job start to last job end, both measured inside the jobs",
            "speedup_vs_batch": "makespan(hydra/sweeper=optuna, batches of n_jobs) / makespan(optuna_async)",
            "utilization": "sum of job durations measured inside the jobs / (n_jobs * makespan), optuna_async",
            "refill_gap_ms": "optuna_async: a job's start minus the job end that freed its slot",
            "between_batches_ms": "optuna (batch): a batch's first job start minus the previous batch's last end",
            "batch_start_spread_ms_median": "optuna (batch): last job start minus first job start within a batch",
            "overhead_ms_per_trial": "n_jobs=1, no-op job: median over consecutive jobs of (next start - end); "
                                     "mean_ms = (makespan - sum of job time) / (trials - 1)",
            "job_durations": f"log-normal quantile of the trial's x ~ U(0,1) (random sampler, seed {SEED}): "
                             "a deterministic function of the parameter, so both sweepers get the same durations",
        },
        "targets": {"speedup_vs_batch": f">= {TARGETS['speedup_vs_batch']}",
                    "utilization": f">= {TARGETS['utilization']}",
                    "overhead_ms_per_trial": f"median <= {TARGETS['overhead_ms_per_trial']:g}"},
        "met": {
            "speedup_vs_batch": strag["speedup_vs_batch"] >= TARGETS["speedup_vs_batch"],
            "utilization": strag["utilization"] >= TARGETS["utilization"],
            "overhead_ms_per_trial": journal["median_ms"] <= TARGETS["overhead_ms_per_trial"],
            "overhead_ms_per_trial_mysql": mysql["median_ms"] <= TARGETS["overhead_ms_per_trial"] if mysql else None,
        },
        "trials": {"straggler": STRAGGLER["n_trials"], "overhead": OVERHEAD["n_trials"]},
        "n_jobs": {"straggler": STRAGGLER["n_jobs"], "overhead": OVERHEAD["n_jobs"]},
        "job_duration": {"distribution": "log-normal", "mean_s": STRAGGLER["mean_s"], "cv": STRAGGLER["cv"]},
        "launcher": "hydra/launcher=process_pool (both sweepers)",
        "sampler": f"random, seed {SEED}",
        "versions": _versions(),
        "bench_wall_s": round(time.monotonic() - t_all, 1),
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, 4)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


if __name__ == "__main__":
    print(json.dumps(bench_sweep()))
