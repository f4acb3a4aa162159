"""Bad configs fail before anything runs: one stderr line naming the key and what is allowed, nothing written.

Most tests run the real CLI (``python -m experiment ...``) as a subprocess with ``cwd`` a fresh tmp dir and
``paths.outputs`` pointing into it, so nothing lands in the repository. The rest unit-test
:func:`experiment.config.validate` (and the preflight helpers) on configs composed from ``conf/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from experiment.preflight import check_group_choices, preflight  # registers the schema, as the CLI does
from experiment.config import ConfigError, NavituneConfig, production_policy, validate
from experiment.registration import register_configs

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
GROUPS = ("region", "demand", "window", "policy", "sink")
CLI_TIMEOUT_S = 120

if "navitune_schema.yaml" not in ConfigStore.instance().repo:
    register_configs()  # a second registration would warn (Hydra 1.4) / fail (Hydra 1.5)

ROAD_KEYS = "keys arterial, collector, local, left, straight, right, uturn"

# (id, overrides, key the line must name, allowed values the line must state)
BAD_INPUTS = [
    ("gamma-one", ["policy.gamma=1.0"], "policy.gamma", "0 <= gamma < 1"),
    ("gamma-negative", ["policy.gamma=-0.1"], "policy.gamma", "0 <= gamma < 1"),
    ("gamma-nan", ["policy.gamma=nan"], "policy.gamma", "0 <= gamma < 1"),
    ("max-wait-zero", ["policy.max_wait_min=0"], "policy.max_wait_min", "minutes in (0, 240]"),
    ("max-wait-negative", ["policy.max_wait_min=-3"], "policy.max_wait_min", "minutes in (0, 240]"),
    ("compliance-above-one", ["policy.compliance=1.5"], "policy.compliance", "0 <= compliance <= 1"),
    ("road-weight-unknown-key", ["+policy.road_weights.diagonal=2"], "policy.road_weights.diagonal", ROAD_KEYS),
    ("road-weight-negative", ["policy.road_weights.right=-1"], "policy.road_weights.right", "a weight in [0, 100]"),
    ("road-weight-too-big", ["policy.road_weights.uturn=101"], "policy.road_weights.uturn", "a weight in [0, 100]"),
    ("region-option-unknown", ["region=osaka"], "region", "coquimbo, ring_city, tokyo_central"),
    ("region-name-unknown", ["region.name=osaka"], "region.name", "tokyo_central, ring_city, coquimbo"),
    ("region-drivers-zero", ["region.drivers=0"], "region.drivers", "a whole number in [1, 2000000]"),
    ("region-requests-zero", ["region.requests_per_hour=0"], "region.requests_per_hour", "a number in (0, 1000000]"),
    ("fleet-mix-unknown-key", ["+region.fleet_mix.evening=0.1"], "region.fleet_mix.evening", "keys alternate, day, night"),
    ("fleet-mix-negative", ["region.fleet_mix.day=-0.5"], "region.fleet_mix.day", "a share in [0, 1000000]"),
    (
        "fleet-mix-all-zero",
        ["region.fleet_mix.alternate=0", "region.fleet_mix.day=0", "region.fleet_mix.night=0"],
        "region.fleet_mix", "shares that add up to more than 0",
    ),
    ("demand-source-unknown", ["demand.source=forecast"], "demand.source", "ml, stats"),
    ("demand-option-unknown", ["demand=foo"], "demand", "ml, stats"),
    ("ml-late-prob-above-one", ["demand.ml_late_prob=1.5"], "demand.ml_late_prob", "0 <= ml_late_prob <= 1"),
    ("ml-error-above-two", ["demand.ml_error=3"], "demand.ml_error", "0 <= ml_error <= 2"),
    ("patience-zero", ["demand.patience_median_min=0"], "demand.patience_median_min", "minutes in (0, 240]"),
    ("window-start-not-a-date", ["window.start=yesterday"], "window.start", "an ISO date such as 2026-06-01"),
    ("window-end-not-a-date", ["window.end=soon"], "window.end", "an ISO date such as 2026-06-01"),
    (
        "window-end-before-start", ["window.start=2026-06-10", "window.end=2026-06-01"],
        "window.end", "a date after window.start (2026-06-10)",
    ),
    (
        "window-empty", ["window.start=2026-06-10", "window.end=2026-06-10"],
        "window.end", "a date after window.start (2026-06-10)",
    ),
    (
        "window-longer-than-28-days", ["window.start=2026-06-01", "window.end=2026-06-30"],
        "window.end", "at most 28 days after window.start",
    ),
    ("window-option-unknown", ["window=fortnight"], "window", "rolling, smoke, test_week, tune_week"),
    ("window-drivers-zero", ["window.drivers=0"], "window.drivers", "null or a whole number in [1, 2000000]"),
    ("window-max-shift-30h", ["window.max_shift_h=30"], "window.max_shift_h", "null or hours in (0, 24]"),
    ("window-max-shift-zero", ["window.max_shift_h=0"], "window.max_shift_h", "null or hours in (0, 24]"),
    ("window-seed-negative", ["window.seed=-1"], "window.seed", "a whole number in [0, 9223372036854775807]"),
    ("sink-kind-unknown", ["sink.kind=parquet"], "sink.kind", "duckdb"),
    ("sink-kind-bigquery-without-dataset", ["sink.kind=bigquery", "sink.dataset=null"], "sink.dataset",
     "a BigQuery dataset name"),
    ("sink-bigquery-dataset-not-a-name", ["sink=bigquery", "sink.dataset=a-b"], "sink.dataset",
     "a BigQuery dataset name"),
    ("sink-bigquery-endpoint-not-a-url", ["sink=bigquery", "sink.project=navitune-test",
                                          "sink.api_endpoint=localhost:9050"], "sink.api_endpoint", "http(s)://host"),
    ("sink-bigquery-endpoint-needs-project", ["sink=bigquery", "sink.api_endpoint=http://127.0.0.1:9050"],
     "sink.project", "required with sink.api_endpoint"),
    ("sink-table-not-sql", ["sink.table=bad-name"], "sink.table", "a SQL name"),
    ("max-wait-infinite", ["policy.max_wait_min=inf"], "policy.max_wait_min", "minutes in (0, 240]"),
    ("typo-key-added-with-plus", ["+policy.gama=0.5"], "policy.gama", "keys name, navigation, gamma"),
    ("fleet-mix-nan", ["region.fleet_mix.day=nan"], "region.fleet_mix.day", "a share in [0, 1000000]"),
    ("network-seed-negative", ["region.network_seed=-1"], "region.network_seed", "a whole number in [0, 9223372036854775807]"),
]

# wrong types and unknown keys: Hydra's composition errors, made one line by the CLI's preflight
COMPOSITION_ERRORS = [
    ("gamma-not-a-number", ["policy.gamma=abc"], "policy.gamma", "a value of type float"),
    ("drivers-not-a-number", ["region.drivers=many"], "region.drivers", "a value of type int"),
    ("road-weight-unknown-key-without-plus", ["policy.road_weights.diagonal=2"], "policy.road_weights.diagonal",
     "arterial, collector, local, left, straight, right, uturn"),
    ("fleet-mix-unknown-key-without-plus", ["region.fleet_mix.evening=0.1"], "region.fleet_mix.evening",
     "alternate, day, night"),
    ("policy-unknown-key", ["policy.foo=1"], "policy.foo", "name, navigation, gamma, max_wait_min"),
    ("policy-option-unknown", ["policy=nonexistent"], "policy", "production, random_cruise"),
    ("experiment-option-unknown", ["+experiment=nope"], "experiment", "smoke"),
    ("sink-credentials-key", ["sink=bigquery", "sink.credentials=/tmp/key.json"], "sink.credentials",
     "kind, path, table, project, dataset, location, api_endpoint"),
    ("notify-option-unknown", ["-m", "+notify=email"], "notify", "slack"),
    ("sampler-option-unknown", ["-m", "hydra/sweeper/sampler=nope"], "hydra/sweeper/sampler", "grid, motpe, nsgaii"),
    ("launcher-option-unknown", ["-m", "hydra/launcher=slurm"], "hydra/launcher", "basic"),
    ("sweep-interval-not-numbers", ["-m", "policy.gamma=interval(a,1)"], "policy.gamma=interval(a,1)",
     "mismatch type argument start"),
    ("sweep-interval-one-bound", ["-m", "policy.gamma=interval(0.9)"], "policy.gamma=interval(0.9)",
     "missing a required argument: 'end'"),
]

# Hydra's own composition errors: they fail, but Hydra reports them on several lines (see the report).


def run_cli(tmp_path: Path, overrides: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
    """Run ``python -m experiment`` in ``tmp_path``; a smoke window unless the case picks its own."""
    outputs = tmp_path / "outputs"
    picks_window = any(o.startswith(("window=", "+experiment=")) for o in overrides)
    args = ([] if picks_window else ["window=smoke"]) + list(overrides) + [f"paths.outputs={outputs}"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "experiment", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    return proc, outputs


@pytest.fixture(scope="module")
def cli(request, tmp_path_factory):
    """The CLI runs of every selected case of this module, started together (they are CPU-bound start-ups).

    ``cli(overrides)`` waits for that case's ``(completed process, outputs dir, cwd)``.
    """
    selected = {
        tuple(item.callspec.params["overrides"])
        for item in request.session.items
        if item.module is request.module and "overrides" in getattr(getattr(item, "callspec", None), "params", {})
        and item.originalname.startswith("test_cli_")
    }
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    futures: dict[tuple[str, ...], Future] = {}
    for overrides in sorted(selected):
        cwd = tmp_path_factory.mktemp("cli")
        futures[overrides] = pool.submit(lambda o=overrides, c=cwd: (*run_cli(c, list(o)), c))
    yield lambda overrides: futures[tuple(overrides)].result()
    pool.shutdown(wait=True, cancel_futures=True)


def assert_rejected_cleanly(result, overrides: list[str], key: str, allowed: str) -> None:
    proc, outputs, cwd = result
    assert proc.returncode != 0, f"accepted {overrides}\nstdout: {proc.stdout[-800:]}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line for {overrides}, got {len(lines)}:\n{proc.stderr[-2000:]}"
    line = lines[0]
    assert key in line, line
    assert allowed in line, line
    assert not (outputs / "runs").exists(), "a run directory was created"
    assert not (outputs / "results.duckdb").exists(), "the DuckDB file was written"
    assert not outputs.exists(), f"something was written under outputs: {sorted(outputs.rglob('*'))}"
    assert sorted(cwd.iterdir()) == [], f"something was written in the cwd: {sorted(cwd.iterdir())}"


# ------------------------------------------------------------------------------- CLI, one clean line
CLI_BAD_INPUTS = BAD_INPUTS + COMPOSITION_ERRORS


@pytest.mark.slow  # a CLI process per case (the same checks run in process in test_validate_rejects)
@pytest.mark.parametrize(
    ("overrides", "key", "allowed"), [c[1:] for c in CLI_BAD_INPUTS], ids=[c[0] for c in CLI_BAD_INPUTS]
)
def test_cli_rejects_with_one_line(cli, overrides, key, allowed):
    assert_rejected_cleanly(cli(overrides), overrides, key, allowed)


# ------------------------------------------------------------------------------ validate() directly
def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="config", overrides=list(overrides))


def presets(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_default_config_validates():
    cfg = composed()
    validate(cfg)
    assert (cfg.region.name, cfg.demand.source, cfg.window.name, cfg.policy.name, cfg.sink.kind) == (
        "tokyo_central", "ml", "tune_week", "production", "duckdb"
    )


def test_every_group_has_presets():
    for group in GROUPS:
        assert presets(group), group


@pytest.mark.parametrize(
    ("group", "option"),
    [pytest.param(g, o, marks=[pytest.mark.slow] if (g, o) == ("policy", "champion") else [])  # a registry store
     for g in GROUPS for o in presets(g)],
    ids=lambda v: str(v),
)
def test_every_preset_validates(group, option, tmp_path):
    extra = []
    if (group, option) == ("policy", "champion"):  # read from the Model Registry: a store with a champion
        from experiment.champion import main
        from experiment.registry.resolver import forget

        forget()
        extra = [f"paths.outputs={tmp_path}"]
        assert main(["init", *extra]) == 0
    cfg = composed(f"{group}={option}", *extra)
    validate(cfg)
    option = "champion_v1" if extra else option
    selected = {
        "region": cfg.region.name, "demand": cfg.demand.source, "window": cfg.window.name,
        "policy": cfg.policy.name, "sink": cfg.sink.kind,
    }[group]
    assert selected == option


@pytest.mark.parametrize("option", presets("experiment"))
def test_every_experiment_preset_validates(option):
    validate(composed(f"+experiment={option}"))


def test_schema_defaults_with_production_validate():
    """The schema holds no policy values (they are MISSING); with production.yaml's it validates."""
    assert OmegaConf.is_missing(OmegaConf.structured(NavituneConfig).policy, "gamma")
    validate(OmegaConf.merge(OmegaConf.structured(NavituneConfig), {"policy": production_policy()}))


def test_production_policy_is_the_composed_default():
    """production_policy() (what tunability, benchmarks and tests simulate) is what `policy=production`, the
    default, composes: conf/policy/production.yaml is the one place its values are written."""
    cfg = composed()
    assert OmegaConf.to_container(cfg.policy, resolve=True) == production_policy()
    assert production_policy()["name"] == "production"
    from experiment.tunability import PRODUCTION

    p = production_policy()
    assert (PRODUCTION.gamma, PRODUCTION.max_wait_min, PRODUCTION.compliance) == (
        p["gamma"], p["max_wait_min"], p["compliance"])
    assert PRODUCTION.turn_weights[2] == p["road_weights"]["right"]


DOTTED_BAD_INPUTS = [c for c in BAD_INPUTS if all("." in o.split("=", 1)[0] for o in c[1])]


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"), [c[1:] for c in DOTTED_BAD_INPUTS], ids=[c[0] for c in DOTTED_BAD_INPUTS]
)
def test_validate_rejects(overrides, key, allowed):
    cfg = composed(*overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"navitune: invalid config {key}=")
    assert f"; allowed: {allowed}" in message


@pytest.mark.slow  # a Hydra run of the task
def test_a_config_error_while_hydra_sets_up_is_one_line(tmp_path):
    """Past the CLI's preflight (a plain Hydra run of the task), a ConfigError raised while Hydra sets the run
    up (here the report callback's settings) reaches the user as its one line, no traceback: it is a
    CompactHydraException, which Hydra prints as its message alone."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "from experiment.task import task; task()", "hydra.callbacks.report.replications=1",
         f"paths.outputs={tmp_path / 'outputs'}", "tracking=off"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["navitune.report: invalid hydra.callbacks.report.replications=1; allowed: a whole number in "
                     "2..100"], \
        proc.stderr[-2000:]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        [  # lower bounds
            "policy.gamma=0", "policy.compliance=0", "policy.road_weights.right=0", "policy.max_wait_min=0.01",
            "demand.ml_late_prob=0", "demand.ml_error=0", "region.fleet_mix.night=0", "window.seed=0",
            "window.start=2026-06-01", "window.end=2026-06-02",  # one day
        ],
        [  # upper bounds
            "policy.gamma=0.999", "policy.compliance=1", "policy.road_weights.uturn=100", "demand.ml_late_prob=1",
            "demand.ml_error=2", "window.max_shift_h=24", "window.drivers=null",
            "window.start=2026-06-01", "window.end=2026-06-29",  # exactly 28 days
        ],
        ["policy=random_cruise", "demand=stats", "region=ring_city", "window=test_week"],
    ],
    ids=["lower-bounds", "upper-bounds", "other-presets"],
)
def test_validate_accepts_boundaries(overrides):
    validate(composed(*overrides))


def test_validate_reports_the_first_problem_only():
    cfg = composed("policy.gamma=2", "region.drivers=0")
    with pytest.raises(ConfigError, match=r"^navitune: invalid config region\.drivers="):
        validate(cfg)


# ------------------------------------------------------------------------- preflight, in-process
def test_preflight_in_process():
    assert preflight(["window=smoke"]) is None
    assert preflight([]) is None
    assert preflight(["policy.gamma=1.0"]) == "navitune: invalid config policy.gamma=1.0; allowed: 0 <= gamma < 1"
    assert preflight(["region=osaka"]).startswith("navitune: unknown region 'osaka'")
    assert preflight(["--cfg", "job"]) is None  # info flags are left to Hydra
    assert preflight(["-m", "policy.gamma=0.5,0.9"]) is None  # sweep values are left to the sweeper
    assert preflight(["policy.gamma=abc"]) == (  # wrong types: one line too
        "navitune: invalid config policy.gamma='abc'; allowed: a value of type float"
    )
    assert check_group_choices(["region=ring_city,coquimbo"]) is None
    assert check_group_choices(["-m", "region=ring_city,osaka"]) == (
        "navitune: unknown region 'osaka'; allowed: coquimbo, ring_city, tokyo_central"
    )


@pytest.mark.parametrize("override, line", [
    ("polcy.gamma=0.9", "navitune: unknown config key polcy.gamma (did you mean policy.gamma?); allowed: "),
    ("policy.gamm=0.9", "navitune: unknown config key policy.gamm (did you mean policy.gamma?); allowed: name, "),
    ("region.drivrs=3", "navitune: unknown config key region.drivrs (did you mean region.drivers?); allowed: "),
    ("policy.road_weights.rigth=3", "navitune: unknown config key policy.road_weights.rigth (did you mean "
                                    "policy.road_weights.right?); allowed: arterial, "),
    ("policy.zzz=1", "navitune: unknown config key policy.zzz; allowed: name, "),  # nothing close: no guess
])
def test_a_typo_of_a_key_gets_did_you_mean(override: str, line: str) -> None:
    problem = preflight([override])
    assert problem is not None and problem.startswith(line), problem
    assert "\n" not in problem


def test_a_sampler_whose_dependency_is_missing_is_refused_before_any_trial(monkeypatch) -> None:
    """Optuna imports a sampler's own dependency (GPSampler: PyTorch) only at its first model-based sample, after
    the start-up trials: without the check a sweep failed at trial 11 with a traceback."""
    import importlib.util

    from hydra_plugins.navitune_optuna import validation

    gp = {"_target_": "optuna.samplers.GPSampler", "seed": 0}
    if importlib.util.find_spec("torch") is None:  # navitune's install: PyTorch is not a dependency
        with pytest.raises(validation.SweeperConfigError) as err:
            validation.check_settings(sampler=gp)
        assert str(err.value).startswith("optuna_async: invalid hydra.sweeper.sampler._target_="
                                         "'optuna.samplers.GPSampler'; allowed: ")
        assert "needs PyTorch (pip install torch)" in str(err.value) and "\n" not in str(err.value)
    else:
        validation.check_settings(sampler=gp)
    monkeypatch.setitem(validation.SAMPLER_NEEDS, "optuna.samplers.TPESampler", ("no_such_module_x", "X"))
    with pytest.raises(validation.SweeperConfigError, match="TPESampler needs X"):
        validation.check_settings(sampler={"_target_": "optuna.samplers.TPESampler"})
    validation.check_settings(sampler={"_target_": "optuna.samplers.RandomSampler"})
