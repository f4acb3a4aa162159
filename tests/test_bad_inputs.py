"""Everything the new commands (``retune``, ``submit``, ``schedule``) and the sweep take is bounded and checked, and
secrets stay out of what they compile (issue 18, items 4 and 5).

The table runs the real command (``python -m experiment ...``, as ``navitune`` does) in a fresh directory and
asserts: exit code 2, ONE stderr line naming the key or option and what is allowed, no traceback, and no new file
anywhere under that directory (no outputs, no lock, no retune record, no compiled pipeline). ``{tmp}`` in an
argument is that directory, ``{out}`` its ``outputs`` (``paths.outputs={out}`` is added to app and retune rows). A
row with a secret asserts the literal appears nowhere in stdout or stderr either.

Below the table: what the checks must still accept (so a refusal is not everything refused), the memory estimate's
scenario factor, the unreachable KFP API (exit 1, one line, seconds), and MLflow's own logger on a full disk.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.tmpfs import tmpfs
from tests.test_validation_limits import files_under, run_cli

ROOT = Path(__file__).resolve().parent.parent
CLI_TIMEOUT_S = 180
CANARY = "cnry" + uuid.uuid4().hex[:16]
SM = ["-m", "+experiment=smoke", "hydra.callbacks.report.enabled=false"]
RETUNE = ["retune", "--as-of", "2026-06-04"]
CRON = ["--cron", "0 3 * * MON"]
IMAGE = "registry.example/acme/navitune-job:0.1.0"
# a complete kfp remote command line (submit / schedule): nothing in it is wrong but the row's own argument
KFP = ["hydra.launcher.host=http://127.0.0.1:9", f"hydra.launcher.image={IMAGE}", "tracking=server",
       "tracking.uri=http://mlflow.kubeflow:5000", "hydra.sweeper.storage=mysql+pymysql://navitune@db:3306/optuna"]
CRON_ALLOWED = "that fires at most once an hour"
SWEEP_ALLOWED = "allowed: one value for region, scenario, demand and window.*"
ENV_ALLOWED = "allowed: NOPE_PW set in the environment"
SECRET_ENV_ALLOWED = "pass it with hydra.launcher.secrets"

# (id, arguments after ``python -m experiment``, extra environment, what the line must hold, secret or None)
CASES: list[tuple[str, list[str], dict[str, str], list[str], str | None]] = [
    # --- item 4: sweep syntax over what fixes a cycle (retune; schedule runs retune's own check)
    ("retune-region-list", [*RETUNE, "region=tokyo_central,coquimbo"], {},
     ["navitune retune: invalid region=tokyo_central,coquimbo", SWEEP_ALLOWED], None),
    ("retune-scenario-glob", [*RETUNE, "scenario=glob(*)"], {}, ["invalid scenario=glob(*)", SWEEP_ALLOWED], None),
    ("retune-demand-choice", [*RETUNE, "demand=choice(ml,stats)"], {},
     ["invalid demand=choice(ml,stats)", SWEEP_ALLOWED], None),
    ("retune-window-range", [*RETUNE, "window.tune_days=range(3,8)"], {},
     ["invalid window.tune_days=range(3,8)", SWEEP_ALLOWED], None),
    ("schedule-scenario-list", ["schedule", "create", *CRON, "-m", *KFP, "scenario=drifting,stationary"], {},
     ["navitune schedule: invalid scenario=drifting,stationary", SWEEP_ALLOWED], None),
    # --- item 4: dates and scenario values inside the simulator's range
    ("retune-as-of-2999", ["retune", "--as-of", "2999-12-31"], {},
     ["window.as_of='2999-12-31'", "allowed: windows whose daily demand factor stays in [0.2, 5]",
      "to 2103-11-30"], None),
    ("run-as-of-2999", ["window=rolling", "window.as_of=2999-12-31"], {},
     ["window.as_of='2999-12-31'", "allowed: windows whose daily demand factor stays in [0.2, 5]"], None),
    ("trend-minus-200", ["window=smoke", "scenario.trend_pct_per_year=-200"], {},
     ["scenario.trend_pct_per_year=-200.0", "allowed: percent a year in [-50, 50]"], None),
    ("retune-trend-100000", [*RETUNE, "scenario.trend_pct_per_year=100000"], {},
     ["scenario.trend_pct_per_year=100000.0", "allowed: percent a year in [-50, 50]"], None),
    ("hotspot-weight", ["window=smoke", "scenario=stationary", "scenario.changes=[{label: district, start: "
                        "'2026-01-01', hotspot: {name: d, kind: office, x: 0.0, y: 0.0, sigma_m: 300.0, weight: 1e9}}]"],
     {}, ["scenario.changes[0].hotspot.weight=1000000000.0", "allowed: a weight in (0, 10]"], None),
    ("memory-counts-the-scenario", ["window=rolling", "window.as_of=2100-06-04"],
     {"NAVITUNE_MEMORY_LIMIT_MIB": "450"}, ["the scenario's busiest day: 4.32 x demand", "allowed: a run of at most"],
     None),
    # --- item 4: triggers and options of schedule / submit
    ("cron-every-second", ["schedule", "create", "--cron", "* * * * * *", "-m", *KFP], {},
     ["invalid --cron '* * * * * *': it fires every 1 s", CRON_ALLOWED], None),
    ("cron-never-fires", ["schedule", "create", "--cron", "0 3 31 2 *", "-m", *KFP], {},
     ["invalid --cron '0 3 31 2 *': it never fires", CRON_ALLOWED], None),
    ("cron-non-ascii-digit", ["schedule", "create", "--cron", "0 ³ * * *", "-m", *KFP], {},
     ["invalid --cron '0 ³ * * *': characters outside ASCII", CRON_ALLOWED], None),
    ("every-30-minutes", ["schedule", "create", "--every", "30m", "-m", *KFP], {},
     ["invalid --every '30m'", "(1 h .. 366 days)"], None),
    ("start-overflows", ["schedule", "create", *CRON, "--start", "9999-12-31T23:59:59-14:00", "-m", *KFP], {},
     ["invalid --start '9999-12-31T23:59:59-14:00'", "to 2999-12-31T23:59:59Z"], None),
    ("submit-output-a-directory", ["submit", "--output", "{tmp}", "--dry-run", "-m", *KFP], {},
     ["navitune submit: invalid --output", "a file path (not a directory)"], None),
    ("schedule-output-a-directory", ["schedule", "create", *CRON, "--output", "{tmp}", "--dry-run", "-m", *KFP], {},
     ["navitune schedule create: invalid --output", "a file path (not a directory)"], None),
    # --- item 4: budgets and the report
    ("n-trials-absurd", [*SM, "hydra.sweeper.n_trials=99999999999999999999"], {},
     ["hydra.sweeper.n_trials=99999999999999999999", "allowed: a whole number > 0, at most 100000"], None),
    ("retune-replications-0", [*RETUNE, "hydra.callbacks.report.replications=0"], {},
     ["navitune retune: invalid hydra.callbacks.report.replications=0", "allowed: a whole number in 2..100"], None),
    ("sweep-report-rule", [*SM[:2], "hydra.callbacks.report.rule=bayes"], {},
     ["navitune: invalid hydra.callbacks.report.rule='bayes'", "allowed: sequential, fixed"], None),
    ("retune-max-replications-below-first", [*RETUNE, "hydra.callbacks.report.max_replications=3"], {},
     ["navitune retune: invalid hydra.callbacks.report.max_replications=3", "at least hydra.callbacks.report.replications, the first look"], None),
    ("sweep-selection-top-50", [*SM[:2], "hydra.callbacks.report.selection_top=50"], {},
     ["navitune: invalid hydra.callbacks.report.selection_top=50", "allowed: a whole number in 0..20"], None),
    ("retune-selection-seeds-0", [*RETUNE, "hydra.callbacks.report.selection_seeds=0"], {},
     ["navitune retune: invalid hydra.callbacks.report.selection_seeds=0", "allowed: a whole number in 1..20"], None),
    # --- item 4: an unset ${oc.env:VAR} names VAR and its key, wherever it is resolved
    ("env-unset-run", ["window=smoke", "tracking=server", "tracking.uri=http://navi:${oc.env:NOPE_PW}@127.0.0.1:9"],
     {}, ["config tracking.uri reads environment variable NOPE_PW, which is not set", ENV_ALLOWED], None),
    ("env-unset-sweep-storage", [*SM, "hydra.sweeper.storage=mysql+pymysql://u:${oc.env:NOPE_PW}@127.0.0.1:9/optuna"],
     {}, ["config hydra.sweeper.storage reads environment variable NOPE_PW", ENV_ALLOWED], None),
    ("env-unset-submit", ["submit", "-m", *KFP, "hydra.sweeper.storage=mysql+pymysql://u:${oc.env:NOPE_PW}@db/optuna"],
     {}, ["hydra.sweeper.storage reads environment variable NOPE_PW", ENV_ALLOWED], None),
    ("env-unset-retune", [*RETUNE, "tracking=server", "tracking.uri=http://navi:${oc.env:NOPE_PW}@127.0.0.1:9"], {},
     ["navitune retune: config tracking.uri reads environment variable NOPE_PW", ENV_ALLOWED], None),
    ("env-unset-champion", ["champion", "show", "tracking=server",
                            "tracking.uri=http://navi:${oc.env:NOPE_PW}@127.0.0.1:9"], {},
     ["config tracking.uri reads environment variable NOPE_PW", ENV_ALLOWED], None),
    # --- item 4: odd digits and unknown commands
    ("retune-as-of-arabic-digits", ["retune", "--as-of", "٢٠٢٦-٠٦-٠٤"], {},
     ["invalid --as-of '٢٠٢٦-٠٦-٠٤'", "allowed: a date YYYY-MM-DD"], None),
    ("submit-retries-superscript", ["submit", "--retries", "²", "-m", *KFP], {},
     ["argument --retries: '²' is not a whole number in 0..10"], None),
    ("unknown-command", ["frobnicate"], {},
     ["navitune: unknown command 'frobnicate'", "allowed: champion, retune, submit, schedule"], None),
    ("schedule-unknown-subcommand", ["schedule", "frobnicate"], {},
     ["invalid choice: 'frobnicate'", "'create', 'list', 'pause', 'resume', 'delete'"], None),
    # --- item 5: secrets
    ("submit-driver-host-token", ["submit", "--driver-host", f"http://ml-pipeline:8888/?token={CANARY}", "-m", *KFP],
     {}, ["navitune submit: invalid --driver-host='http://ml-pipeline:8888/?token=***'", "without credentials"],
     CANARY),
    ("schedule-driver-host-password", ["schedule", "create", *CRON, "--driver-host",
                                       f"http://navi:{CANARY}@ml-pipeline:8888", "-m", *KFP], {},
     ["navitune schedule: invalid --driver-host='http://***@ml-pipeline:8888'", "without credentials"], CANARY),
    ("kfp-env-token-literal", [*SM, "hydra/launcher=kfp", "hydra.launcher.backend=local",
                               f"+hydra.launcher.env.NAVITUNE_API_TOKEN={CANARY}"], {},
     ["kfp: invalid hydra.launcher.env.NAVITUNE_API_TOKEN='***'", SECRET_ENV_ALLOWED], CANARY),
    ("submit-env-password-literal", ["submit", "-m", *KFP, f"+hydra.launcher.env.db_password={CANARY}"], {},
     ["hydra.launcher.env.db_password='***'", SECRET_ENV_ALLOWED], CANARY),
    ("schedule-env-key-from-environment", ["schedule", "create", *CRON, "-m", *KFP,
                                           "+hydra.launcher.env.API_KEY=${oc.env:CANARY_ENV}"],
     {"CANARY_ENV": CANARY}, ["hydra.launcher.env.API_KEY='***'", SECRET_ENV_ALLOWED], CANARY),
]


def run_case(tmp: Path, args: list[str], env_extra: dict[str, str]) -> tuple[subprocess.CompletedProcess, set, set]:
    """Run ``python -m experiment <args>`` in ``tmp``; (process, files before, files after)."""
    out = tmp / "outputs"
    args = [a.replace("{tmp}", str(tmp)).replace("{out}", str(out)) for a in args]
    if args[0] not in ("submit", "schedule", "champion"):
        args.append(f"paths.outputs={out}")
    return run_cli(tmp, args, env_extra, drop=("MLFLOW_TRACKING_URI", "NOPE_PW"), timeout_s=CLI_TIMEOUT_S)


@pytest.fixture(scope="module")
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The selected rows' commands, started two at a time (CPU-bound start-ups); ``cli(id)`` waits for one."""
    selected = {item.callspec.id for item in request.session.items
                if item.module is request.module and item.originalname == "test_bad_input_is_one_line_and_writes_nothing"}
    pool = ThreadPoolExecutor(max_workers=2)
    futures: dict[str, Future] = {case_id: pool.submit(run_case, tmp_path_factory.mktemp("bad"), args, env)
                                  for case_id, args, env, _, _ in CASES if case_id in selected}
    yield lambda case_id: futures[case_id].result()
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow  # a CLI process per row
@pytest.mark.parametrize(("args", "env", "expected", "secret"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(cli, request: pytest.FixtureRequest, args: list[str],
                                                  env: dict[str, str], expected: list[str], secret: str | None) -> None:
    proc, before, after = cli(request.node.callspec.id)
    assert proc.returncode == 2, f"exit {proc.returncode} for {args}\nstdout: {proc.stdout[-800:]}\nstderr: {proc.stderr[-2000:]}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line for {args}, got {len(lines)}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr
    for text in expected:
        assert text in lines[0], f"{text!r} not in: {lines[0]}"
    assert after == before, f"files written: {sorted(after - before)}"
    if secret is not None:
        assert secret not in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------ what is still accepted
def test_retune_accepts_one_value_and_policy_sweeps() -> None:
    from experiment.retune.checks import split_args

    day = dt.date(2026, 6, 4)
    kept = ["region=coquimbo", "scenario=stationary", "window.tune_days=5", "policy.gamma=interval(0.5,0.9)",
            "policy.max_wait_min=choice(5,10)", "region.drivers=500"]
    assert split_args(kept, day) == ("2026-06-04", kept)
    assert split_args(["region='a,b'"], day)[1] == ["region='a,b'"]  # quoted: one value (the region check names it)


def test_triggers_inside_the_limits_are_accepted() -> None:
    from hydra_plugins.navitune_kfp.recurring import MIN_PERIOD_S, check_period, normalize_cron

    assert MIN_PERIOD_S == 3600
    assert check_period(cron=normalize_cron("0 * * * *")) == 3600  # hourly: the fastest allowed
    assert check_period(cron=normalize_cron("0 3 * * MON")) == 7 * 86400
    assert check_period(cron="@hourly") == 3600
    assert check_period(cron=normalize_cron("0 3 29 2 *")) > 366 * 86400  # leap days only: rare, but it fires
    assert check_period(every_s=3600) == 3600


def test_start_times_inside_the_range_are_accepted() -> None:
    from experiment.cluster.schedule import start_time

    assert start_time("2026-12-07T03:00:00Z") == "2026-12-07T03:00:00Z"
    assert start_time("2026-12-07T12:00:00+09:00") == "2026-12-07T03:00:00Z"
    assert start_time("2999-12-31T23:59:59Z") == "2999-12-31T23:59:59Z"


def test_a_driver_host_without_credentials_and_plain_env_values_are_accepted() -> None:
    from experiment.cluster.plan import DEFAULT_DRIVER_HOST, check_driver_host
    from hydra_plugins.navitune_kfp.settings import check

    check_driver_host("submit", DEFAULT_DRIVER_HOST)
    check_driver_host("submit", "https://kfp.internal:8443/pipeline?namespace=ml")
    settings = check({"env": {"LOG_LEVEL": "info", "DB_PORT": 3306, "NAVITUNE_API_TOKEN": ""}})
    assert settings.env == {"LOG_LEVEL": "info", "DB_PORT": "3306", "NAVITUNE_API_TOKEN": ""}


def test_n_trials_up_to_the_bound_is_accepted() -> None:
    from omegaconf import OmegaConf

    from hydra_plugins.navitune_optuna.validation import MAX_N_TRIALS, check_node

    node = lambda n: OmegaConf.create({"_target_": "hydra_plugins.navitune_optuna.x", "n_trials": n})  # noqa: E731
    assert check_node(node(MAX_N_TRIALS)) is None
    assert "at most 100000" in str(check_node(node(MAX_N_TRIALS + 1)))


def composed(*overrides: str):
    from hydra import compose, initialize_config_dir

    from experiment.preflight import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(config_name="config", overrides=list(overrides))


def test_dates_whose_demand_stays_in_range_are_accepted_and_the_range_is_the_one_stated() -> None:
    """drifting's +2 %/year reaches 5 x demand (December's 1.08 included) late in 2103: the stated range's last
    window is accepted, the next month's refused."""
    from experiment.config import ConfigError, validate

    for as_of in ("2026-06-04", "2000-01-15", "2103-11-30"):
        validate(composed("window=rolling", f"window.as_of={as_of}"))
    with pytest.raises(ConfigError, match="to 2103-11-30"):
        validate(composed("window=rolling", "window.as_of=2103-12-31"))


def test_the_memory_estimate_includes_the_scenarios_busiest_day() -> None:
    from experiment.memory_budget import job_size
    from experiment.sim.memory import estimate_peak_bytes

    cfg = composed("window=rolling", "window.as_of=2026-06-15")
    rph, drivers = float(cfg.region.requests_per_hour), int(cfg.region.drivers)
    june = job_size(cfg)
    assert june.demand_factor == 1.0 and june.requests_per_hour == rph
    far = job_size(composed("window=rolling", "window.as_of=2100-06-15"))
    assert far.demand_factor == pytest.approx(1.02 ** 74, rel=0.01)  # 74 years of +2 %, June's factor 1
    assert far.mib == estimate_peak_bytes("tokyo_central", drivers, 7, rph * far.demand_factor) / 2**20
    assert far.mib > june.mib


# ------------------------------------------------------------------------------------------- KFP unreachable
@pytest.fixture
def refused_port() -> Iterator[int]:
    """A local port that refuses connections (bound, not listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def silent_kfp() -> Iterator[int]:
    """A local port that accepts connections and never answers: a hung KFP API."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)  # the kernel completes the handshakes; nobody reads
        yield int(s.getsockname()[1])


def schedule_command(tmp_path: Path, command: str, port: int) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "experiment", "schedule", command, "-m",
                           f"hydra.launcher.host=http://127.0.0.1:{port}", f"hydra.launcher.image={IMAGE}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - started


def test_schedule_pause_with_the_kfp_api_down_is_one_line_in_seconds(tmp_path: Path, refused_port: int) -> None:
    proc, took = schedule_command(tmp_path, "pause", refused_port)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("navitune schedule pause: kfp: cannot use the KFP API"), lines
    assert "Connection refused (after 3 attempts)" in lines[0]
    assert took < 30, took  # was 71 s and 7 lines: 7 attempts with a doubling backoff, a warning each
    assert files_under(tmp_path) == set()


def test_schedule_list_with_a_kfp_api_that_never_answers_is_one_line_in_seconds(tmp_path: Path,
                                                                                silent_kfp: int) -> None:
    """kfp's client sends its requests without a timeout: the command's own probe gives up after 10 s."""
    proc, took = schedule_command(tmp_path, "list", silent_kfp)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].endswith("connect: no answer within 10 s"), lines
    assert took < 40, took


# ------------------------------------------------------------------------------------- MLflow on a full disk
@pytest.fixture
def two_mib_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: room for the MLflow store and the first trials, not for a whole sweep (root may mount one)."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        yield disk


def test_mlflow_is_quiet_when_the_disk_fills_mid_sweep(tmp_path: Path, two_mib_disk: Path) -> None:
    """The sweep's outputs (journal, MLflow store, results) on a small disk: the disk fills mid-sweep. MLflow's
    own logger printed a 50-line SQLAlchemy traceback per failed write around the sweeper's one-line stop; now
    navitune's one tracking warning per trial and the stop line are all."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "experiment", *SM, f"paths.outputs={two_mib_disk / 'out'}",
                           "hydra.sweeper.n_trials=20"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "disk is full" in proc.stderr, text[-3000:]  # the sweeper's one-line stop
    assert "database or disk is full" in proc.stdout, text[-3000:]  # MLflow did meet the full disk
    assert "Traceback" not in text and "mlflow.store.db.utils" not in text, text[-3000:]
    assert "[SQL:" not in text, text[-3000:]
