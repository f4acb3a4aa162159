"""Benchmark ``kfp-scale``: where is the bottleneck beyond 5 parallel trials? (``python -m experiment.bench kfp-scale``)

The real sweeper (``optuna_async`` with a MedianPruner) launches the real kfp launcher
(``hydra/launcher=kfp hydra.launcher.backend=remote``) against the executing KFP stand-in
(``tools/standins``: every run is executed from its compiled pipeline as local processes), with the study in
a throw-away MariaDB reached by every job through its pod's Cloud SQL proxy sidecar (``socat``). The job is
``benchmarks/apps/kfp_scale/app.py``: it sleeps a log-normal duration (CV 0.5, the spread of simulator
runs, scaled down) in 7 "days" and reports each day to the pruner.

Levels: 5, 20, 50 and 100 runs in flight (``hydra.launcher.n_jobs`` = ``hydra.sweeper.n_jobs``), ``waves`` x
level trials each. The mean job duration is ``slot_s`` x level, so every level asks the machine for the same
number of trials per minute (job start-up costs CPU here, where pods share 2 cores): what grows from level to
level is what the sweeper, the API and the database carry per run in flight.

Per level (the last stdout line: ``{"levels": [...], ...}``; these key names are a contract):

* ``trials_per_min``: job ends per minute in the steady window (from the moment the first ``in_flight`` jobs
  have all started to the last job's start: the sweeper keeps every slot busy then); ``ideal_trials_per_min``:
  ``in_flight`` x 60 / mean job duration (perfect packing, no gap between a job's end and the next start);
* ``utilisation``: job time inside the window / (``in_flight`` x window): the share of slots running a job;
* ``sweeper_cpu_core_frac``: the sweeper process's CPU seconds (``wait4`` rusage) / its wall seconds;
* ``api_requests_per_min``: requests the stand-in API served while the sweeper ran (creates, polls, lists);
* ``db_connections_peak``: MariaDB's ``Max_used_connections`` after ``FLUSH STATUS`` at the level's start
  (the bench's own monitoring connection included), with ``Threads_connected`` sampled beside it; the process
  list, sampled every 0.25 s, splits the jobs' connections (through their pods' proxies, which reach MariaDB
  over its unix socket) from the sweeper's (TCP): ``db_connections_per_job`` = jobs' peak / ``in_flight``;
* ``prune_latency_ms_median``: inside the job, from a day's ``report`` call to the pruner's decision.

Options (``key=value`` after the name): ``levels=5,20,50,100``, ``waves=2`` (trials per level = waves x level),
``slot_s=2.0``, ``poll_interval=1.0`` (the launcher's, scaled down like the durations), ``days=7``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from benchmarks.machine import describe
from benchmarks.mariadb import Server, binaries, free_port, throwaway_mariadb

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "benchmarks" / "apps" / "kfp_scale"
JOB_IMAGE = "navitune-bench-job:standin"
INSTANCE = "navitune-bench:asia-northeast1:studies"  # the app config's proxy.instance
DB_USER, DB_NAME = "navitune", "navitune_optuna"
DEFAULTS: dict[str, Any] = {"levels": [5, 20, 50, 100], "waves": 2.0, "slot_s": 2.0, "poll_interval": 1.0,
                            "days": 7, "cv": 0.5}
TARGETS = {"utilisation": 0.9, "sweeper_cpu_core_frac": 0.25, "db_connections_per_job": 1.0}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_options(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` options over :data:`DEFAULTS`; a bad one exits 2 with one line naming key and values."""
    opts = dict(DEFAULTS)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            print(f"kfp-scale: unknown option {item!r}; allowed: {', '.join(f'{k}=...' for k in DEFAULTS)}",
                  file=sys.stderr)
            raise SystemExit(2)
        try:
            if key == "levels":
                opts[key] = [int(v) for v in value.split(",") if v.strip()]
                ok = bool(opts[key]) and all(1 <= v <= 200 for v in opts[key])
            elif key == "days":
                opts[key] = int(value)
                ok = 1 <= opts[key] <= 30
            else:
                opts[key] = float(value)
                ok = 0 < opts[key] <= (10 if key == "waves" else 600)
        except ValueError:
            ok = False
        if not ok:
            allowed = {"levels": "comma-separated whole numbers 1..200", "days": "a whole number 1..30",
                       "waves": "a number in (0, 10]"}.get(key, "a number of seconds in (0, 600]")
            print(f"kfp-scale: bad {key}={value!r}; allowed: {allowed}", file=sys.stderr)
            raise SystemExit(2)
    return opts


# ------------------------------------------------------------------------------------------ MariaDB
class _DB:
    def __init__(self, server: Server, password: str) -> None:
        self.port, self.password, self.sock = server.port, password, server.sock
        self.root = server.root


@contextlib.contextmanager
def _mariadb(tmp: Path) -> Iterator[_DB]:
    """A throw-away MariaDB in ``tmp`` with the study database and a user with a random password."""
    try:
        binaries()
    except RuntimeError as err:
        raise RuntimeError(f"kfp-scale needs MariaDB: {err}") from None
    with throwaway_mariadb(tmp, "--max-connections=1000") as server:
        password = "Nv" + secrets.token_hex(12)
        root = server.root()
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME}")
            cur.execute(f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1'")
            # the pods' proxies come in over the unix socket (host 'localhost'), the sweeper over TCP: the
            # process list tells the jobs' connections from the sweeper's
            cur.execute(f"CREATE USER '{DB_USER}'@'localhost' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON {DB_NAME}.* TO '{DB_USER}'@'localhost'")
        root.close()
        yield _DB(server, password)


class _ConnectionSampler:
    """``Threads_connected`` every 0.25 s while a level runs (the peak beside ``Max_used_connections``)."""

    def __init__(self, db: _DB) -> None:
        self.conn = db.root()
        self.samples: list[int] = []
        self.jobs: list[int] = []  # connections through the pods' proxies
        self.sweeper: list[int] = []  # direct (TCP) connections of the study's user: the sweeper's
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _status(self, name: str) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
            return int(cur.fetchone()[1])

    def __enter__(self) -> "_ConnectionSampler":
        with self.conn.cursor() as cur:
            cur.execute("FLUSH STATUS")  # Max_used_connections starts again from the connections open now
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            self.samples.append(self._status("Threads_connected"))
            with self.conn.cursor() as cur:
                cur.execute("SELECT COALESCE(SUM(HOST = 'localhost'), 0), COALESCE(SUM(HOST LIKE '127.0.0.1:%%'), 0) "
                            "FROM information_schema.PROCESSLIST WHERE USER = %s", (DB_USER,))
                jobs, sweeper = cur.fetchone()
            self.jobs.append(int(jobs))
            self.sweeper.append(int(sweeper))

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.max_used = self._status("Max_used_connections")
        self.conn.close()


# ----------------------------------------------------------------------------------- stand-in images
class _PodPorts:
    """Each pod's own proxy port. Pods of the stand-in share this machine's network (a real pod has its own),
    so the proxy image listens on a port chosen per pod and the job image tells the job that port (``DB_PORT``,
    which the app's ``proxy.port`` and storage URL read): 100 sidecars in flight, none colliding."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self.lock = threading.Lock()

    def of(self, pod: Any) -> int:
        key = str(pod.dir)
        with self.lock:
            if key not in self.ports:
                self.ports[key] = free_port()
            return self.ports[key]


def _registry(db_port: int, db_socket: str) -> Any:
    from tools.standins.kfp_images import PROXY_IMAGE, Image, Registry, job_image, proxy_image

    ports = _PodPorts()
    job, proxy = job_image(JOB_IMAGE, workdir=APP_DIR), proxy_image({INSTANCE: db_port})

    def prepare_job(c: Any, pod: Any) -> Any:
        c = job.prepare(c, pod)
        c.env["DB_PORT"] = str(ports.of(pod))
        if os.environ.get("PYTHONPATH"):  # the image is the code the bench runs (e.g. an older launcher, to compare)
            c.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return c

    def prepare_proxy(c: Any, pod: Any) -> Any:
        args = list(c.argv)
        for i, arg in enumerate(args[:-1]):
            if arg in ("--port", "-p"):
                args[i + 1] = str(ports.of(pod))
        c.argv = args
        c = proxy.prepare(c, pod)
        c.argv = [f"UNIX-CONNECT:{db_socket}" if a == f"TCP:127.0.0.1:{db_port}" else a for a in c.argv]
        return c

    registry = Registry()
    registry.add(Image(JOB_IMAGE, prepare_job, env=dict(job.env)))
    registry.add(Image(PROXY_IMAGE, prepare_proxy, env=dict(proxy.env)))
    return registry


# -------------------------------------------------------------------------------------------- a level
def _sweep(tmp: Path, server: Any, db: _DB, level: int, opts: dict[str, Any]) -> dict[str, Any]:
    """One sweep at ``level`` runs in flight; the jobs' records and the sweeper's, API's and DB's figures."""
    n_trials = max(level, int(round(opts["waves"] * level)))
    mean_s = opts["slot_s"] * level
    work = tmp / f"level-{level}"
    out = work / "jobs"
    out.mkdir(parents=True)
    study = f"kfp_scale_{level}_{secrets.token_hex(3)}"
    storage = f"mysql+pymysql://{DB_USER}:${{oc.env:DB_PW}}@127.0.0.1:${{oc.env:DB_PORT}}/{DB_NAME}"
    cmd = [sys.executable, "app.py", "-m",
           "hydra.launcher.backend=remote", f"hydra.launcher.host={server.url}", f"hydra.launcher.image={JOB_IMAGE}",
           f"hydra.launcher.poll_interval={opts['poll_interval']}", f"hydra.launcher.n_jobs={level}",
           f"hydra.sweeper.n_jobs={level}", f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.study_name={study}",
           f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={work / 'sweep'}",
           "hydra.launcher.secrets=[{secret_name: navitune-db, secret_key_to_env: {password: DB_PW}}]",
           f"out_dir={out}", f"mean_s={mean_s}", f"cv={opts['cv']}", f"days={opts['days']}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVITUNE_", "HYDRA_"))}
    env.update(DB_PW=db.password, DB_PORT=str(db.port))
    first_request = len(server.requests)
    cpu0 = os.times()
    with _ConnectionSampler(db) as conns, open(work / "sweeper.log", "wb") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=APP_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    cpu1 = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"level {level}: the sweep failed ({proc.returncode}):\n"
                           f"{(work / 'sweeper.log').read_text()[-3000:]}")
    requests = server.requests[first_request:]
    jobs = sorted((json.loads(p.read_text()) for p in out.glob("*.json")), key=lambda j: j["start"])
    return {"level": level, "n_trials": n_trials, "mean_s": mean_s, "study": study, "jobs": jobs, "wall_s": wall,
            "sweeper_cpu_s": usage.ru_utime + usage.ru_stime, "sweeper_maxrss_mib": usage.ru_maxrss / 1024,
            "requests": requests, "max_used": conns.max_used, "threads_connected": conns.samples,
            "job_conns": conns.jobs, "sweeper_conns": conns.sweeper,
            "standin_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "study_counts": _study_counts(db, study)}


def _study_counts(db: _DB, study: str) -> dict[str, int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.load_study(study_name=study, storage=f"mysql+pymysql://{DB_USER}:{db.password}@127.0.0.1:{db.port}/"
                                                    f"{DB_NAME}")
    counts: dict[str, int] = {}
    for t in s.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _gaps(jobs: list[dict[str, Any]], requests: list[Any], level: int) -> dict[str, float | None]:
    """Where a slot's idle time goes: from a job's end (inside its pod) to the create request of the run that
    takes its slot (``refill_s``: the job's exit, the pod's teardown, the run's end state reaching the
    sweeper's poll, tell, ask, compose, create), and from a run's create to its job's start (``pod_start_s``:
    the pod's start, the interpreter and imports, the proxy)."""
    created: dict[int, float] = {}
    for q in requests:
        if q.method == "POST" and q.path.endswith("/runs") and q.status == 200 and isinstance(q.body, dict):
            m = re.search(r"-t(\d+)-a(\d+)$", str(q.body.get("display_name", "")))
            if m and int(m.group(2)) == 0:
                created.setdefault(int(m.group(1)), q.at)
    starts = [j["start"] - created[j["trial"]] for j in jobs if j.get("trial") in created]
    creates = sorted(created.values())
    ends = sorted(j["end"] for j in jobs)
    refill = [creates[k] - ends[k - level] for k in range(level, min(len(creates), len(ends) + level))]
    med = lambda xs: round(statistics.median(xs), 3) if xs else None  # noqa: E731
    return {"pod_start_s_median": med(starts), "refill_s_median": med(refill),
            "refill_s_p90": round(sorted(refill)[int(0.9 * (len(refill) - 1))], 3) if refill else None}


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def summarise(r: dict[str, Any]) -> dict[str, Any]:
    """The level's contract figures (and a few more) from the sweep's raw records."""
    jobs, level = r["jobs"], r["level"]
    starts = sorted(j["start"] for j in jobs)
    lo = starts[min(level, len(starts)) - 1]  # the first wave is up
    hi = starts[-1]  # the sweeper launches no more after the last start: the drain begins
    if hi - lo < 1.0:  # too few waves for a steady window: first start to last end
        lo, hi = starts[0], max(j["end"] for j in jobs)
    window = hi - lo
    busy = sum(_overlap(j["start"], j["end"], lo, hi) for j in jobs)
    ends = sum(1 for j in jobs if lo < j["end"] <= hi)
    mean_job = statistics.fmean(j["end"] - j["start"] for j in jobs)
    latencies = [ms for j in jobs for ms in j["prune_latency_ms"]]
    reqs = r["requests"]
    minutes = r["wall_s"] / 60

    def count(method: str, pred: Any) -> int:
        return sum(1 for q in reqs if q.method == method and pred(q.path))

    creates = count("POST", lambda p: p.endswith("/runs"))
    polls = count("GET", lambda p: "/runs/" in p)
    lists = count("GET", lambda p: p.endswith("/runs"))
    return {
        "in_flight": level,
        "trials_per_min": round(ends / window * 60, 2),
        "ideal_trials_per_min": round(level * 60 / mean_job, 2),
        "utilisation": round(busy / (level * window), 3),
        "sweeper_cpu_core_frac": round(r["sweeper_cpu_s"] / r["wall_s"], 3),
        "api_requests_per_min": round(len(reqs) / minutes, 1),
        "db_connections_peak": int(max([r["max_used"], *r["threads_connected"]])),
        "prune_latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
        # beyond the contract
        "n_trials": r["n_trials"],
        "job_records": len(jobs),
        "pruned": sum(1 for j in jobs if j["pruned"]),
        "study_trials": r["study_counts"],
        "mean_job_s": round(mean_job, 2),
        "requested_mean_s": r["mean_s"],
        "steady_window_s": round(window, 1),
        "sweeper_wall_s": round(r["wall_s"], 1),
        "sweeper_cpu_s": round(r["sweeper_cpu_s"], 1),
        "sweeper_cpu_ms_per_trial": round(r["sweeper_cpu_s"] * 1000 / r["n_trials"], 1),
        "sweeper_maxrss_mib": round(r["sweeper_maxrss_mib"], 1),
        "api_requests": {"create": creates, "get_run": polls, "list_runs": lists, "total": len(reqs)},
        "threads_connected_max": max(r["threads_connected"], default=0),
        "db_connections_jobs_peak": max(r["job_conns"], default=0),
        "db_connections_sweeper_peak": max(r["sweeper_conns"], default=0),
        "db_connections_per_job": round(max(r["job_conns"], default=0) / level, 2),
        "prune_latency_ms_p90": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 1) if latencies else None,
        "job_ready_s_median": round(statistics.median(j["ready"] - j["start"] for j in jobs), 3),
        "standin_cpu_core_frac": round(r["standin_cpu_s"] / r["wall_s"], 3),
        **_gaps(jobs, reqs, level),
    }



def bench_kfp_scale(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    opts = parse_options(overrides)
    if shutil.which("socat") is None:
        raise RuntimeError("kfp-scale needs socat (the Cloud SQL proxy stand-in): apt-get install -y socat")
    from tools.standins.kfp_api_server import FakeKFP
    from tools.standins.kfp_executor import Executor

    levels: list[dict[str, Any]] = []
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="navitune-bench-kfp-scale-") as d:
        tmp = Path(d)
        with _mariadb(tmp) as db:
            executor = Executor(_registry(db.port, db.sock), secrets={"navitune-db": {"password": db.password}},
                                root=tmp / "pods")
            with FakeKFP(executor=executor) as server:
                for level in opts["levels"]:
                    _log(f"{level} in flight: {max(level, int(round(opts['waves'] * level)))} trials, mean job "
                         f"{opts['slot_s'] * level:g} s ...")
                    load = os.getloadavg()[0]
                    entry = summarise(_sweep(tmp, server, db, level, opts))
                    entry["load_average_1m_before"] = round(load, 2)
                    levels.append(entry)
                    _log(f"  {entry['trials_per_min']} trials/min of {entry['ideal_trials_per_min']} ideal, "
                         f"utilisation {entry['utilisation']}, sweeper {entry['sweeper_cpu_core_frac']} core, "
                         f"{entry['api_requests_per_min']} API req/min, DB peak {entry['db_connections_peak']}, "
                         f"prune {entry['prune_latency_ms_median']} ms")
    top = levels[-1]
    return {
        "bench": "kfp-scale",
        "levels": levels,
        "options": opts,
        "targets": {"utilisation": f">= {TARGETS['utilisation']} at the largest level",
                    "sweeper_cpu_core_frac": f"< {TARGETS['sweeper_cpu_core_frac']}",
                    "db_connections_per_job": f"<= {TARGETS['db_connections_per_job']:g}"},
        "met": {"utilisation": top["utilisation"] >= TARGETS["utilisation"],
                "sweeper_cpu_core_frac": top["sweeper_cpu_core_frac"] < TARGETS["sweeper_cpu_core_frac"],
                "db_connections_per_job": top["db_connections_per_job"] <= TARGETS["db_connections_per_job"]},
        "bench_wall_s": round(time.monotonic() - t_all, 1),
        "machine": describe(),
        "load_average_1m_end": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


if __name__ == "__main__":
    print(json.dumps(bench_kfp_scale(sys.argv[1:])))
