"""Names, paths, sizes and settings are checked before anything is written (issue 10, sections 4 and 5).

Each case runs the real CLI (``python -m experiment ...``) in a fresh tmp dir and asserts: exit code != 0, ONE
stderr line naming the key and what is allowed, and no new file anywhere under the tmp dir (the cwd and the
outputs). ``{tmp}`` in an override is the tmp dir, ``{out}`` its ``outputs`` directory; ``paths.outputs={out}``
is added unless the case sets ``paths.outputs`` itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from experiment.preflight import CONF_DIR, jobs_at_once, preflight
from experiment.config import MAX_DRIVERS, MAX_SEED
from experiment.memory_budget import job_size
from hydra_plugins.navitune_optuna.validation import STUDY_NAME, quote

ROOT = Path(__file__).resolve().parent.parent
CLI_TIMEOUT_S = 120
SM = ["-m", "+experiment=smoke", "hydra.callbacks.report.enabled=false"]
CORES = len(os.sched_getaffinity(0))
STUDY_ALLOWED = "null or 1-100 characters of A-Z a-z 0-9 . _ - starting with a letter or a digit"
CORRUPT_DUCKDB = b"not a database " * 300

# (id, overrides, env, key the line must name, allowed values the line must state)
CASES = [
    # --- section 4: names and paths
    ("outputs-empty", ["window=smoke", "paths.outputs="], {}, "paths.outputs=''", "a directory path"),
    ("outputs-dev-null", ["window=smoke", "paths.outputs=/dev/null"], {}, "paths.outputs='/dev/null'",
     "a directory path"),
    ("outputs-under-a-file", ["window=smoke", "paths.outputs=/dev/null/outputs"], {}, "paths.outputs",
     "a directory path"),
    ("sink-path-a-directory", ["window=smoke", "sink.path={tmp}"], {}, "sink.path",
     "a file path for the DuckDB results file (not a directory"),
    ("tracking-sqlite-memory", ["window=smoke", "tracking.uri=sqlite:///:memory:"], {}, "tracking.uri",
     "sqlite:///PATH of a store file (not :memory:"),
    ("journal-a-directory", [*SM, "hydra.sweeper.storage=journal://{tmp}"], {}, "hydra.sweeper.storage",
     "journal:///PATH of a journal file (not a directory"),
    ("study-name-escapes-with-kfp-local", [*SM, "hydra/launcher=kfp", "hydra.launcher.backend=local",
                                           "hydra.sweeper.study_name=../../../../ESCAPE"], {},
     "hydra.sweeper.study_name='../../../../ESCAPE'", STUDY_ALLOWED),
    ("study-name-shell", [*SM, "hydra.sweeper.study_name='a;touch X'"], {}, "hydra.sweeper.study_name",
     STUDY_ALLOWED),
    ("study-name-non-ascii", [*SM, "hydra.sweeper.study_name='ストア_💥'"], {}, "hydra.sweeper.study_name",
     STUDY_ALLOWED),
    ("study-name-empty", [*SM, "hydra.sweeper.study_name="], {}, "hydra.sweeper.study_name=''", STUDY_ALLOWED),
    ("study-name-too-long", [*SM, "hydra.sweeper.study_name=" + "s" * 101], {}, "hydra.sweeper.study_name",
     STUDY_ALLOWED),
    # --- section 5: sizes have limits (the message states the real one)
    ("drivers-ten-million", ["region.drivers=10000000"], {}, "region.drivers=10000000",
     f"a whole number in [1, {MAX_DRIVERS}]"),
    ("drivers-ten-million-smoke", ["window=smoke", "region.drivers=10000000"], {}, "region.drivers=10000000",
     f"a whole number in [1, {MAX_DRIVERS}]"),
    ("window-drivers-ten-million", ["window.drivers=10000000"], {}, "window.drivers=10000000",
     f"null or a whole number in [1, {MAX_DRIVERS}]"),
    ("requests-per-hour-1e9", ["region.requests_per_hour=1e9"], {}, "region.requests_per_hour",
     "a number in (0, 1000000]"),
    ("run-over-memory", [f"region.drivers={MAX_DRIVERS}", "region.requests_per_hour=1e6", "window.end=2026-06-29"],
     {}, "region.drivers or window.drivers", "allowed: a run of at most"),
    ("smoke-over-a-memory-budget", ["window=smoke"], {"NAVITUNE_MEMORY_LIMIT_MIB": "100"},
     "region=tokyo_central with 120 drivers", "allowed: a run of at most 100 MiB"),
    ("jobs-over-a-memory-budget", [*SM, "hydra.sweeper.n_jobs=3", "hydra.launcher.n_jobs=3"],
     {"NAVITUNE_MEMORY_LIMIT_MIB": "600"}, "hydra.launcher.n_jobs=3", "allowed: at most 2 jobs at once"),
    ("sweeper-jobs-over-a-memory-budget", [*SM, "hydra.sweeper.n_jobs=3", "hydra.launcher.n_jobs=4"],
     {"NAVITUNE_MEMORY_LIMIT_MIB": "600"}, "hydra.sweeper.n_jobs=3", "allowed: at most 2 jobs at once"),
    ("search-range-over-a-memory-budget", [*SM, "window.drivers=null", "region.requests_per_hour=choice(100,1000000)"],
     {"NAVITUNE_MEMORY_LIMIT_MIB": "2000"}, "region.requests_per_hour=1000000", "allowed: a run of at most 2,000 MiB"),
    ("memory-budget-not-a-number", ["window=smoke"], {"NAVITUNE_MEMORY_LIMIT_MIB": "lots"},
     "NAVITUNE_MEMORY_LIMIT_MIB='lots'", "MiB > 0"),
    ("launcher-200-jobs", [*SM, "hydra.sweeper.n_jobs=200", "hydra.launcher.n_jobs=200"], {},
     "hydra.launcher.n_jobs=200", f"a whole number in [1, {4 * CORES}]"),
    ("seed-too-big", ["window=smoke", "window.seed=99999999999999999999"], {}, "window.seed",
     f"a whole number in [0, {MAX_SEED}]"),
    # --- section 5: settings fail in one line
    ("launcher-n-jobs-zero", [*SM, "hydra.launcher.n_jobs=0"], {}, "hydra.launcher.n_jobs=0",
     "a whole number in [1, "),
    ("launcher-timeout-zero", [*SM, "hydra.launcher.timeout_s=0"], {}, "hydra.launcher.timeout_s=0",
     "null (no limit) or seconds > 0"),
    ("launcher-prepare-ahead-negative", [*SM, "hydra.launcher.prepare_ahead=-1"], {},
     "hydra.launcher.prepare_ahead=-1", "null (1 + n_jobs // 4) or a whole number in [0, "),
    ("direction-maximise", [*SM, "hydra.sweeper.direction=maximise"], {}, "hydra.sweeper.direction='maximise'",
     "minimize, maximize"),
    ("direction-list-with-typo", [*SM, "hydra.sweeper.direction=[maximize,minimise]"], {},
     "hydra.sweeper.direction", "minimize, maximize"),
    ("pruner-blocked", [*SM, "hydra.sweeper.pruner._target_=subprocess.call"], {},
     "hydra.sweeper.pruner._target_='subprocess.call'", "optuna.pruners.*"),
    ("policy-empty-choice", ["window=smoke", "policy="], {}, "policy", "production, random_cruise"),
    ("policy-empty-choice-sweep", [*SM, "policy="], {}, "policy", "production, random_cruise"),
    ("search-range-outside-schema", [*SM, "policy.gamma=interval(0.5,1.0)"], {}, "policy.gamma=1.0",
     "0 <= gamma < 1"),
    ("search-choice-outside-schema", [*SM, "policy.road_weights.right=choice(1,200)"], {},
     "policy.road_weights.right=200", "a weight in [0, 100]"),
    ("enqueued-baseline-outside-schema", [*SM, "hydra.sweeper.enqueue=[{policy.gamma: 1.5}]"], {},
     "hydra.sweeper.enqueue[0]: policy.gamma=1.5", "0 <= gamma < 1"),
    ("corrupt-duckdb", ["window=smoke"], {}, "sink.path", "a DuckDB database file"),
    ("corrupt-duckdb-sweep", [*SM], {}, "sink.path", "a DuckDB database file"),
]


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def run_case(tmp: Path, case_id: str, overrides: list[str], env_extra: dict[str, str]) -> tuple:
    """Run the CLI for one case in ``tmp``; returns (completed process, files before, files after)."""
    out = tmp / "outputs"
    if case_id.startswith("corrupt-duckdb"):
        out.mkdir()
        (out / "results.duckdb").write_bytes(CORRUPT_DUCKDB)
    args = [o.replace("{tmp}", str(tmp)).replace("{out}", str(out)) for o in overrides]
    if not any(a.startswith("paths.outputs=") for a in args):
        args.append(f"paths.outputs={out}")
    return run_cli(tmp, args, env_extra)


def run_cli(tmp: Path, args: list[str], env_extra: dict[str, str], drop: tuple[str, ...] = (),
            timeout_s: float = CLI_TIMEOUT_S) -> tuple[subprocess.CompletedProcess, set, set]:
    """``python -m experiment <args>`` in ``tmp`` without the variables that would change its answer (and
    ``drop``), with ``env_extra``; returns (completed process, files before, files after)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "NAVITUNE_MEMORY_LIMIT_MIB", *drop)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(env_extra)
    before = files_under(tmp)
    proc = subprocess.run([sys.executable, "-m", "experiment", *args], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=timeout_s)
    return proc, before, files_under(tmp)


@pytest.fixture(scope="module")
def cli(request, tmp_path_factory):
    """The CLI runs of every selected case, started together (CPU-bound start-ups); ``cli(id)`` waits for one."""
    selected = {item.callspec.id for item in request.session.items
                if item.module is request.module and item.originalname == "test_cli_refuses_in_one_line"}
    pool = ThreadPoolExecutor(max_workers=max(2, CORES))
    futures: dict[str, Future] = {}
    for case_id, overrides, env, _, _ in CASES:
        if case_id in selected:
            futures[case_id] = pool.submit(run_case, tmp_path_factory.mktemp("cli"), case_id, overrides, env)
    yield lambda case_id: futures[case_id].result()
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow  # a CLI process per case
@pytest.mark.parametrize(("overrides", "env", "key", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_refuses_in_one_line(cli, request, overrides, env, key, allowed):
    proc, before, after = cli(request.node.callspec.id)
    assert proc.returncode != 0, f"accepted {overrides}\nstdout: {proc.stdout[-800:]}\nstderr: {proc.stderr[-800:]}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line for {overrides}, got {len(lines)}:\n{proc.stderr[-3000:]}"
    assert key in lines[0], lines[0]
    assert allowed in lines[0], lines[0]
    assert after == before, f"files written: {sorted(after - before)}"


# ------------------------------------------------------------------------------------- in-process
def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


@pytest.mark.parametrize("name", ["navitune_tokyo_central_tune_week_ml", "a", "Study-2.v3", "0abc", "s" * 100])
def test_study_names_in_the_documented_set_are_accepted(name):
    assert STUDY_NAME.fullmatch(name)
    assert preflight([*SM, f"hydra.sweeper.study_name={name}", "paths.outputs=/tmp/navitune-unused"]) is None


@pytest.mark.parametrize("value", ["1e5", "null", "true", "007", "a,b", "it's", "back\\slash", "end\\", "q\\'x", "ストア"])
def test_quote_reads_back_as_the_same_string(value):
    """The sweeper passes the study name to each job as ``++hydra.job.env_set.NAVITUNE_OPTUNA_STUDY=<quoted>``:
    Hydra must read back exactly the string (unquoted, ``1e5`` became the float 100000.0)."""
    override = OverridesParser.create().parse_overrides([f"++hydra.job.env_set.X={quote(value)}"])[0]
    assert override.value() == value


def test_kfp_remote_may_run_more_jobs_than_this_machine():
    """The cap applies to jobs on this machine: a remote kfp backend runs none here, kfp local as many as n_jobs."""
    remote = composed("hydra/launcher=kfp", "hydra.launcher.backend=remote", "hydra.launcher.n_jobs=200",
                      "hydra.sweeper.n_jobs=200", hydra=True)
    local = composed("hydra/launcher=kfp", "hydra.launcher.backend=local", "hydra.launcher.n_jobs=3",
                     "hydra.sweeper.n_jobs=5", hydra=True)
    pool = composed("hydra.launcher.n_jobs=4", "hydra.sweeper.n_jobs=2", hydra=True)
    assert [jobs_at_once(c)[0] for c in (remote, local, pool)] == [0, 3, 2]
    assert jobs_at_once(pool)[1] == "hydra.sweeper.n_jobs"  # the sweeper keeps only 2 trials in flight


def test_the_config_check_uses_the_simulators_memory_estimate():
    """One estimate (experiment.sim.memory, measured against real runs in tests/test_sim_memory.py): a config's
    job size is that estimate for its region, fleet, days and demand (scaled with window.drivers)."""
    from experiment.sim.memory import estimate_peak_bytes

    size = job_size(composed("window=tune_week"))
    assert (size.region, size.drivers, size.days, size.requests_per_hour) == ("tokyo_central", 1000, 7, 1000.0)
    assert size.mib == estimate_peak_bytes("tokyo_central", 1000, 7, 1000.0) / 2**20
    capped = job_size(composed("window=smoke"))  # 120 of 1,000 drivers: 12 % of the demand
    assert capped.requests_per_hour == pytest.approx(1000.0 * 120 / 1000)
    assert capped.mib == estimate_peak_bytes("tokyo_central", 120, 1, 120.0) / 2**20


@pytest.mark.slow
def test_study_name_that_looks_like_a_number_reaches_the_jobs(tmp_path):
    """A study named ``1e5`` (quoted on the command line) is the study of every job's rows, not ``100000.0``."""
    from experiment.sinks.duckdb_sink import query_duckdb

    out = tmp_path / "outputs"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "experiment", *SM, "tracking=off", "hydra.sweeper.study_name='1e5'",
         "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "hydra.launcher.n_jobs=1",
         "hydra.sweeper.progress=false", f"paths.outputs={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = query_duckdb(str(out / "results.duckdb"), "SELECT DISTINCT study FROM driver_days")
    assert rows == [{"study": "1e5"}]


# ---------------------------------------------------------- the plugins alone (a plain Hydra app, no preflight)
PLUGIN_BAD_INPUT = [
    ("direction-maximise", ("hydra.sweeper.direction=maximise",), "hydra.sweeper.direction='maximise'"),
    ("pruner-blocked", ("hydra.sweeper.pruner={_target_: subprocess.call}",),
     "hydra.sweeper.pruner._target_='subprocess.call'"),
    ("study-name-shell", ("hydra.sweeper.study_name='a;touch X'",), "hydra.sweeper.study_name='a;touch X'"),
    ("journal-a-directory", ("hydra.sweeper.storage=journal://{tmp}",), "hydra.sweeper.storage"),
    ("launcher-n-jobs-zero", ("hydra.launcher.n_jobs=0",), "hydra.launcher.n_jobs=0"),
    ("launcher-timeout-zero", ("hydra.launcher.timeout_s=0",), "hydra.launcher.timeout_s=0"),
    ("launcher-too-many-jobs", (f"hydra.launcher.n_jobs={4 * CORES + 1}",), f"hydra.launcher.n_jobs={4 * CORES + 1}"),
]


@pytest.mark.parametrize(("overrides", "mentions"), [c[1:] for c in PLUGIN_BAD_INPUT],
                         ids=[c[0] for c in PLUGIN_BAD_INPUT])
def test_plugins_refuse_bad_settings_in_one_line(tmp_path, overrides, mentions):
    """The sweeper's and the launcher's own checks, for apps without navitune's preflight: one line, no trial."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from tests.test_optuna_async_sweeper import journal, run

    store = tmp_path / "study.journal"
    args = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
    done = run("sphere", tmp_path, "sweep", *([] if "storage" in mentions else [journal(store)]), *args,
               timeout=60.0)
    assert done.rc != 0, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done
    assert mentions in lines[0] and "allowed: " in lines[0], lines[0]
    assert not store.exists() or all(
        s.n_trials == 0 for s in optuna.get_all_study_summaries(JournalStorage(JournalFileBackend(str(store)))))


@pytest.mark.parametrize("overrides", [
    ["search_space=navi6"],
    ["hydra/sweeper=optuna"],
    ["+experiment=smoke", "region=ring_city,coquimbo"],  # a sweep over group options, not over values
    ["+experiment=smoke", "policy=production,random_cruise"],
    ["+experiment=smoke", "policy.gamma=0.5,0.99", "policy.road_weights.right=range(0,100,25)"],
    ["+experiment=smoke", "policy.max_wait_min=tag(log, interval(0.5, 240))"],
    ["+experiment=smoke", "hydra/launcher=basic"],
    ["+experiment=smoke", "hydra.sweeper.direction=[maximize,minimize]"],
])
def test_sweeps_inside_the_schema_are_accepted(overrides):
    assert preflight(["-m", *overrides, "paths.outputs=/tmp/navitune-unused"]) is None


@pytest.mark.parametrize(("study", "expected"), [
    ("navitune_tokyo_central_tune_week_ml", "navitune_tokyo_central_tune_week_ml-t3-a1"),
    ("../../../../ESCAPE", "ESCAPE-t3-a1"),
    ("a;touch X", "a-touch-X-t3-a1"),
])
def test_kfp_run_names_are_safe_file_names(study, expected):
    """kfp.local names each run's directory after the run: whatever study name reaches the launcher (the sweeper
    refuses names outside the documented set first), the name cannot leave that directory."""
    from omegaconf import OmegaConf

    from hydra_plugins.navitune_kfp.jobspec import run_name

    env = {"NAVITUNE_OPTUNA_STUDY": study, "NAVITUNE_OPTUNA_TRIAL": "5", "NAVITUNE_OPTUNA_ORIGIN": "3",
           "NAVITUNE_OPTUNA_ATTEMPT": "1"}
    config = OmegaConf.create({"hydra": {"job": {"env_set": env, "name": "app"}, "sweep": {"dir": "/tmp/s"}}})
    assert run_name(config, 0) == expected
