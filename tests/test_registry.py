"""The champion in MLflow's Model Registry (experiment/registry, issue 13 §3), against a real SQLite store and
a real ``mlflow server``:

* ``navitune champion init|show|history|promote|rollback`` on both backends (init idempotent, rollback follows
  the recorded history, bad input one line);
* ``policy=champion``: one line without a champion (nothing written), and a real sweep whose jobs run
  ``champion_v<N>`` and whose baseline trial 0 is the champion;
* the decision at the end of a real small sweep (a deliberately poor champion, the known-good parameters as
  the second trial, so the promotion rule holds on the test window): manual -> challenger, idempotent replay,
  auto -> promoted, and each guard (champion changed, another region, failure limit, baseline not the
  champion, another scenario) blocks auto-promotion with its tag;
* MLflow down at the sweep: one warning, sweep and report kept, ``navitune champion decide`` replays.
* the champion at the start kept in the study (journal and MariaDB): a resumed start never overwrites it, and
  a sweep directory without ``registry_start.json`` (a retried driver pod's empty disk) still decides right.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from experiment.config import production_policy

ROOT = Path(__file__).resolve().parent.parent
REGION = "tokyo_central"
KNOWN_GOOD = {"policy.gamma": 0.96, "policy.max_wait_min": 7.5, "policy.road_weights.right": 4.3}
POOR = {"gamma": 0.6, "max_wait_min": 0.3, "right": 10.0}  # plans 2 steps ahead, expects no waiting customer
#: ``champion init`` at the smoke sweeps' scale (1 day, 120 drivers, 8-hour shifts): the champion is evaluated at
#: the scale these tests' sweeps report at, so the scale guard lets their promotions through (issue 18)
SMOKE_SCALE = ["window=smoke"]


def cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiment", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def champion(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``navitune champion ARGS`` in this process (the console script's own entry point)."""
    from experiment.champion import main

    code = main(args)
    out = capsys.readouterr()
    return code, out.out.strip(), out.err.strip()


def local_backend(tmp: Path) -> tuple[str, list[str]]:
    uri = f"sqlite:///{tmp / 'outputs' / 'mlflow.db'}"
    return uri, [f"paths.outputs={tmp / 'outputs'}"]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    from experiment.registry.resolver import forget

    forget()


def register_poor(uri: str, artifacts: str | None) -> int:
    """A poor policy registered and made champion (what a bad manual promotion would leave)."""
    from experiment.registry.store import Registry, policy_yaml

    reg = Registry.at(uri, REGION, artifacts)
    prod = reg.champion().policy
    poor = {**prod, "name": "poor", "gamma": POOR["gamma"], "max_wait_min": POOR["max_wait_min"],
            "road_weights": {**prod["road_weights"], "right": POOR["right"]}}
    v = reg.register(policy_yaml(poor), {"study": "test", "decision": "test", "reason": "a poor policy"})
    reg.set_champion(v.number, "test: a poor champion")
    return v.number


# ----------------------------------------------------------------------------------- the CLI, both backends
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "server"])
def test_init_show_history_promote_rollback(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            request: pytest.FixtureRequest) -> None:
    from experiment.registry.store import Registry

    region = "ring_city" if backend == "server" else REGION  # the session's server may hold other tests' models
    if backend == "server":
        server = request.getfixturevalue("mlflow_server")
        uri, overrides = server.uri, ["tracking=server", f"tracking.uri={server.uri}"]
    else:
        uri, overrides = local_backend(tmp_path)
    overrides = [*overrides, f"region={region}"]
    code, _, err = champion(["show", *overrides], capsys)
    assert code == 2 and err.count("\n") == 0 and f"navitune champion init region={region}" in err, err

    code, out, _ = champion(["init", *overrides], capsys)
    assert code == 0 and "v1 (conf/policy/production.yaml) is the champion" in out, out
    code, out, _ = champion(["init", *overrides], capsys)  # idempotent
    assert code == 0 and "already v1" in out
    reg = Registry.at(uri, region, str(tmp_path / "outputs" / "mlartifacts") if backend == "local" else None)
    assert [int(v.version) for v in reg.versions()] == [1]
    prod = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "policy" / "production.yaml"))
    first = reg.champion().policy
    assert first["gamma"] == prod["gamma"] and first["road_weights"] == prod["road_weights"]
    assert reg.champion().tags["decision"] == "init"

    code, out, _ = champion(["show", "--json", *overrides], capsys)
    shown = json.loads(out)
    assert shown["uri"] == f"models:/navitune-policy-{region}@champion" and shown["champion"]["version"] == 1

    v2 = register_poor(uri, reg.settings.artifact_location) if region == REGION else None
    if v2 is None:  # same steps on the other region
        from experiment.registry.store import policy_yaml

        v = reg.register(policy_yaml({**reg.champion().policy, "gamma": 0.9}), {"decision": "test"})
        v2 = v.number
        code, out, _ = champion(["promote", str(v2), "--reason", "trying", *overrides], capsys)
        assert code == 0 and f"v{v2} is the champion (was v1)" in out, out
    assert reg.champion().number == v2 and reg.history() == [1, v2]
    code, out, _ = champion(["history", "--json", *overrides], capsys)
    hist = json.loads(out)
    assert hist["champion_history"] == [1, v2] and [v["version"] for v in hist["versions"]] == [1, v2]

    code, out, _ = champion(["rollback", *overrides], capsys)
    assert code == 0 and f"rolled back from v{v2} to v1" in out
    assert reg.champion().number == 1 and reg.history() == [1]
    assert "replaced by v1" in reg.version(v2).tags["rolled_back"]
    code, _, err = champion(["rollback", *overrides], capsys)
    assert code == 2 and "no previous champion" in err and err.count("\n") == 0
    code, _, err = champion(["promote", "99", *overrides], capsys)
    assert code == 2 and "has no version 99" in err and err.count("\n") == 0
    assert reg.champion().number == 1


@pytest.mark.slow
def test_cli_with_mlflow_down_is_one_line(tmp_path: Path, closed_port: int,  # noqa: F811
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = champion(["show", "tracking=server", f"tracking.uri=http://127.0.0.1:{closed_port}"], capsys)
    assert code == 1 and err.count("\n") == 0 and "MLflow unreachable" in err, err


# ----------------------------------------------------------------------------------- policy=champion
@pytest.mark.slow
def test_policy_champion_without_a_champion_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    proc = cli(tmp_path, "+experiment=smoke", "policy=champion", f"paths.outputs={out}")
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "no champion" in err and f"navitune champion init region={REGION}" in err, err
    assert not (out / "runs").exists()
    proc = cli(tmp_path, "+experiment=smoke", "policy=champion", "tracking=off", f"paths.outputs={out}")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "tracking=off" in proc.stderr


# ----------------------------------------------------------------------------------- the decision
def sweep(tmp: Path, *extra: str, fixed: bool = True) -> subprocess.CompletedProcess:
    """A smoke sweep (1 day, 120 drivers) of 2 trials: with ``fixed``, the champion (the baseline) and the
    known-good parameters, else the search space's own baseline (navi3) and one sampled trial; its report
    (5 replications: a 1-day report is noisy) and decision run at its end."""
    base = ", ".join(f"policy.{k}: ${{policy.{k}}}" for k in ("gamma", "max_wait_min", "road_weights.right"))
    good = ", ".join(f"{k}: {v}" for k, v in KNOWN_GOOD.items())
    enqueue = [f"hydra.sweeper.enqueue=[{{{base}}}, {{{good}}}]"] if fixed else []
    return cli(tmp, "-m", "+experiment=smoke", f"paths.outputs={tmp / 'outputs'}", "hydra.sweeper.n_trials=2",
               *enqueue, "hydra.callbacks.report.replications=5", "hydra.callbacks.report.plots=false", *extra)


def only_sweep(outputs: Path) -> Path:
    dirs = sorted(outputs.glob("sweeps/*/*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """init (v1 production), a poor champion v2, then a sweep with policy=champion and
    registry.promotion=manual: its candidate becomes v3 as challenger."""
    tmp = tmp_path_factory.mktemp("decided")
    uri, overrides = local_backend(tmp)
    assert cli(tmp, "champion", "init", *overrides, *SMOKE_SCALE).returncode == 0
    poor = register_poor(uri, str(tmp / "outputs" / "mlartifacts"))
    proc = sweep(tmp, "policy=champion", "registry.promotion=manual")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"tmp": tmp, "uri": uri, "poor": poor, "dir": only_sweep(tmp / "outputs"), "log": proc.stdout + proc.stderr}


def copy_sweep(d: Path, name: str) -> Path:
    """The same finished sweep under another directory: another sweep for the registry (its own sweep_key)."""
    dst = d.parent / name
    shutil.copytree(d, dst, ignore=shutil.ignore_patterns("registry_decision.json"))
    return dst


@pytest.mark.slow
def test_a_sweep_runs_the_champion_and_registers_its_candidate(decided: dict[str, Any]) -> None:
    from experiment.registry.store import Registry

    d, reg = decided["dir"], Registry.at(decided["uri"], REGION)
    start = json.loads((d / "registry_start.json").read_text())
    assert start["champion_version"] == decided["poor"] == 2
    trial0 = json.loads((d / "0" / "summary.json").read_text())
    assert trial0["params"]["policy_base"] == "champion_v2"  # which version ran (the trial's own policy: trial-0)
    assert trial0["params"]["policy"] == "trial-0"
    assert trial0["params"]["gamma"] == POOR["gamma"] and trial0["params"]["road_weights.right"] == POOR["right"]
    report = json.loads((d / "report.json").read_text())
    assert report["promote"] is True, report["ci95_pct"]  # known-good beats the poor champion on the test window
    assert report["baseline"]["params"]["gamma"] == POOR["gamma"]
    v3 = reg.alias("challenger")
    assert v3 is not None and v3.number == 3 and reg.champion().number == 2
    tags = v3.tags
    assert tags["decision"] == "challenger" and set(k for k in tags if k.startswith("blocked.")) == {"blocked.manual"}
    assert tags["study"] == report["study"] and tags["sweep_dir"] == str(d.resolve())
    for demand in ("ml", "stats"):
        assert float(tags[f"improvement_pct.{demand}"]) == pytest.approx(report["improvement_pct"][demand], abs=1e-3)
        assert tags[f"ci95_pct.{demand}"].startswith("[")
    assert len(tags["git_commit"]) >= 40 and tags["champion_at_start"] == "2"
    assert v3.policy["gamma"] == KNOWN_GOOD["policy.gamma"]  # the complete candidate option
    # one line says it all: the decision and every guard's reason
    (line,) = [x for x in decided["log"].splitlines() if "registered as challenger" in x]
    assert "registry.promotion=manual" in line
    # the version holds the report that justified it
    import mlflow

    files = {a.path for a in mlflow.MlflowClient(decided["uri"]).list_artifacts(v3.run_id, "policy")}
    assert files == {"policy/policy.yaml", "policy/report.json", "policy/report.md"}


@pytest.mark.slow
def test_decisions_replay_idempotently_and_each_guard_blocks_auto_promotion(decided: dict[str, Any]) -> None:
    import optuna

    from experiment.registry import decide
    from experiment.registry.store import Registry

    d, reg = decided["dir"], Registry.at(decided["uri"], REGION)
    n_versions = len(reg.versions())
    # the same sweep again: nothing changes, whatever the promotion setting
    again = decide(d, promotion="auto")
    assert again.outcome == "already_decided" and again.version == 3
    assert len(reg.versions()) == n_versions and reg.champion().number == 2

    # another sweep directory holding the same finished sweep, auto: every guard passes -> promoted
    b = decide(copy_sweep(d, "auto"), promotion="auto")
    assert b.outcome == "promoted" and b.blocked == {} and reg.champion().number == b.version == 4
    assert reg.history() == [1, 2, 4] and reg.version(4).tags["decision"] == "promoted"
    assert decide(d.parent / "auto", promotion="auto").outcome == "already_decided"  # never promoted twice
    assert reg.history() == [1, 2, 4]

    # the champion changed while the sweep ran (v2 at its start, v4 now)
    c = decide(copy_sweep(d, "changed"), promotion="auto")
    assert c.outcome == "challenger" and set(c.blocked) == {"champion_changed", "already_promoted"}, c.blocked
    assert "(v4)" in c.blocked["already_promoted"]  # one study is promoted once, whatever its sweep directory
    assert reg.champion().number == 4 and reg.alias("challenger").number == c.version
    assert "v2 at the start, v4 now" in reg.version(c.version).tags["blocked.champion_changed"]

    # another region: not onboarded -> nothing registered; onboarded -> challenger, its champion unchanged
    region_dir = copy_sweep(d, "region")
    skipped = decide(region_dir, region="ring_city", promotion="auto")
    assert skipped.outcome == "skipped" and "navitune champion init region=ring_city" in skipped.reason
    ring = Registry.at(decided["uri"], "ring_city")
    assert not ring.exists()
    outputs = f"paths.outputs={decided['tmp'] / 'outputs'}"
    assert cli(decided["tmp"], "champion", "init", "region=ring_city", outputs).returncode == 0
    other = decide(region_dir, region="ring_city", promotion="auto")
    assert other.outcome == "challenger" and "other_region" in other.blocked, other.blocked
    assert ring.champion().number == 1 and ring.alias("challenger").number == 2

    # over the failure limit: a trial of the study failed for good (max_failure_rate=0 allows none)
    assert reg.rollback("test")[1] == 2  # the champion the sweep started from, again
    cfg = OmegaConf.load(d / "multirun.yaml") if (d / "multirun.yaml").is_file() else None
    from experiment.study import load_study as _load_study, load_sweep

    study, _ = _load_study(load_sweep(d, cfg))
    done = study.trials[1]
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params=done.params,
                                              distributions=done.distributions))
    e = decide(copy_sweep(d, "failed"), promotion="auto")
    assert e.outcome == "challenger" and set(e.blocked) == {"failure_limit", "already_promoted"}, e.blocked
    assert reg.champion().number == 2


@pytest.mark.slow
def test_guards_for_baseline_and_scenario_on_the_real_report(decided: dict[str, Any]) -> None:
    """The baseline and scenario guards on the sweep's real report.json (a scenario config group is not in this
    tree yet: the sweep's scenario is given as the config's choice)."""
    from experiment.registry.decision import guards
    from experiment.registry.store import Registry

    d, reg = decided["dir"], Registry.at(decided["uri"], REGION)
    report = json.loads((d / "report.json").read_text())
    v1 = reg.version(1)  # production: not what the sweep's baseline ran
    start = {"champion_version": 1, "champion_policy": v1.policy, "error": None}
    smoke = {"fleet": 120, "days": 1, "max_shift_h": 8.0}  # the scale the champion is evaluated at (init's)
    blocked = guards(report, start, v1, REGION, OmegaConf.create({}), d / "missing", "auto", eval_scale=smoke)
    assert set(blocked) == {"baseline_not_champion"}, blocked
    v2 = reg.version(2)
    v2.tags["scenario"] = "stationary"
    start = {"champion_version": 2, "champion_policy": v2.policy, "error": None}
    drifting = OmegaConf.create({"hydra": {"runtime": {"choices": {"scenario": "drifting"}}}})
    assert set(guards(report, start, v2, REGION, drifting, d / "missing", "auto", eval_scale=smoke)) == {
        "other_scenario"}
    same = OmegaConf.create({"hydra": {"runtime": {"choices": {"scenario": "stationary"}}}})
    assert guards(report, start, v2, REGION, same, d / "missing", "auto", eval_scale=smoke) == {}
    # the same report against a champion evaluated at the region's full scale (the default): blocked by scale
    assert set(guards(report, start, v2, REGION, same, d / "missing", "auto")) == {"scale"}


@pytest.mark.slow
def test_mlflow_down_at_the_sweep_keeps_everything_and_decide_replays(tmp_path: Path, closed_port: int,  # noqa: F811
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    uri, overrides = local_backend(tmp_path)
    assert cli(tmp_path, "champion", "init", *overrides, *SMOKE_SCALE).returncode == 0
    proc = sweep(tmp_path, "tracking=server", f"tracking.uri=http://127.0.0.1:{closed_port}", fixed=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    d = only_sweep(tmp_path / "outputs")
    assert (d / "report.json").is_file() and (d / "policy_candidate.yaml").is_file()  # nothing lost
    assert log.count("registry: nothing promoted") == 1 and "navitune champion decide" in log
    assert log.count("sweep baseline: the champion") == 1  # the baseline fell back to production, once
    assert not (d / "registry_decision.json").exists()
    start = json.loads((d / "registry_start.json").read_text())
    assert start["champion_version"] is None and "unreachable" in start["error"]

    code, out, _ = champion(["decide", str(d), *overrides], capsys)  # MLflow is back: replay
    assert code == 0 and "registered as challenger" in out, out
    from experiment.registry.store import Registry

    reg = Registry.at(uri, REGION)
    v = reg.alias("challenger")
    assert v is not None and "blocked.champion_unknown" in v.tags and reg.champion().number == 1
    code, out, _ = champion(["decide", str(d), *overrides], capsys)
    assert code == 0 and "already decided" in out and len(reg.versions()) == 2


@pytest.mark.slow
def test_a_retried_driver_with_an_empty_sweep_directory_decides_from_the_study(tmp_path: Path) -> None:
    """A driver pod retried after an eviction resumes the study with an empty sweep directory: its decision takes
    the champion at the start from the study's record (never champion_unknown), so a winning challenger is
    promoted and a champion that moved is still caught; the record is written back to the directory."""
    from experiment.registry import decide
    from experiment.registry.decision import START_FILE
    from experiment.registry.store import Registry
    from experiment.registry.study_start import STUDY_KEY
    from experiment.study import load_study as _load_study, load_sweep

    uri, overrides = local_backend(tmp_path)
    assert cli(tmp_path, "champion", "init", *overrides, *SMOKE_SCALE).returncode == 0
    poor = register_poor(uri, str(tmp_path / "outputs" / "mlartifacts"))
    proc = sweep(tmp_path, "policy=champion", "registry.promotion=manual")
    assert proc.returncode == 0, proc.stderr[-3000:]
    d, reg = only_sweep(tmp_path / "outputs"), Registry.at(uri, REGION)
    study, _ = _load_study(load_sweep(d))
    in_study = study._storage.get_study_system_attrs(study._study_id)[STUDY_KEY]
    assert in_study == json.loads((d / START_FILE).read_text()) and in_study["champion_version"] == poor

    def retried(name: str) -> Path:  # the same finished sweep, as a retried pod's empty disk left it
        e = copy_sweep(d, name)
        (e / START_FILE).unlink()
        return e

    reg.rollback("test: the champion moves while the sweep runs")  # v1 now, v2 at the start
    moved = decide(retried("moved"), promotion="auto")
    assert moved.outcome == "challenger" and set(moved.blocked) == {"champion_changed"}, moved.blocked
    assert "v2 at the start, v1 now" in moved.blocked["champion_changed"]
    assert json.loads((d.parent / "moved" / START_FILE).read_text()) == in_study  # written back for the record

    reg.set_champion(poor, "test: the champion of the sweep's start again")
    won = decide(retried("won"), promotion="auto")
    assert won.outcome == "promoted" and won.blocked == {} and won.champion_before == poor, won
    assert reg.champion().number == won.version and reg.version(won.version).tags["champion_at_start"] == str(poor)


@pytest.mark.parametrize("storage", ["journal", "mariadb"])
def test_a_resumed_start_keeps_the_study_s_first_record(storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        request: pytest.FixtureRequest) -> None:
    """The first start of a study writes its champion into the study (creating the study with the sweeper's
    direction); a later start (a resumed sweep, a retried driver pod) never overwrites it, and its own empty
    directory gets the study's record, not the champion of its own start. The storage's password is nowhere in it."""
    import optuna
    from hydra import compose, initialize_config_dir

    from experiment.registration import register_configs
    from experiment.registry.decision import START_FILE, record_start
    from experiment.registry.resolver import forget
    from experiment.registry.study_start import STUDY_KEY

    register_configs()
    uri, overrides = local_backend(tmp_path)
    secret = None
    if storage == "mariadb":
        db = request.getfixturevalue("mariadb")
        secret = db.password
        monkeypatch.setenv("NAVITUNE_TEST_DB_PASSWORD", secret)
        name = db.create_database(f"champstart_{tmp_path.name[-12:].replace('-', '_')}")
        overrides.append("hydra.sweeper.storage=" + db.url("${oc.env:NAVITUNE_TEST_DB_PASSWORD}", name))
    assert champion(["init", *overrides], capsys)[0] == 0
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    first = record_start(cfg, tmp_path / "first")
    assert first["champion_version"] == 1 and first["error"] is None

    poor = register_poor(uri, str(tmp_path / "outputs" / "mlartifacts"))  # the champion moves
    forget()  # a new process (the retried pod) looks it up again
    again = record_start(cfg, tmp_path / "again")
    assert again == first and json.loads((tmp_path / "again" / START_FILE).read_text()) == first
    from experiment.study import resolved_storage as _resolved_storage
    from hydra_plugins.navitune_shared.storage import make_storage

    study = optuna.load_study(study_name=cfg.hydra.sweeper.study_name, storage=make_storage(_resolved_storage(cfg)[0]))
    assert study._storage.get_study_system_attrs(study._study_id)[STUDY_KEY]["champion_version"] == 1 != poor
    assert [d.name for d in study.directions] == [str(cfg.hydra.sweeper.direction).upper()]
    if secret is not None:
        for text in (json.dumps(again), (tmp_path / "first" / START_FILE).read_text()):
            assert secret not in text


@pytest.mark.slow
def test_decide_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = champion(["decide", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 0 and "report.json" in err, err
    code, _, err = champion(["show", "region=atlantis"], capsys)
    assert code == 2 and err.count("\n") == 0 and "unknown region 'atlantis'" in err, err
    code, _, err = champion(["frobnicate"], capsys)
    assert code == 2 and err.count("\n") == 0 and "invalid choice: 'frobnicate'" in err, err
    proc = cli(tmp_path, "-m", "+experiment=smoke", "registry.promotion=sometimes", "tracking=off",
               f"paths.outputs={tmp_path / 'outputs'}")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "registry.promotion='sometimes'" in proc.stderr and "auto, manual" in proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_the_sweep_baseline_is_the_champion_when_there_is_one(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """navi3 enqueues the region's champion as trial 0 when it has one, else the composed policy (production);
    with tracking=off, production without any lookup."""
    from hydra import compose, initialize_config_dir

    from experiment.registration import register_configs
    from experiment.registry.resolver import forget

    register_configs()
    outputs = [f"paths.outputs={tmp_path / 'outputs'}"]

    def baseline(*extra: str) -> dict[str, Any]:
        forget()
        with initialize_config_dir(config_dir=str(ROOT / "conf")):
            cfg = compose(config_name="config", overrides=[*outputs, *extra], return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.sweeper.enqueue[0], resolve=True)  # type: ignore[return-value]

    prod = production_policy()
    production = {"policy.gamma": prod["gamma"], "policy.max_wait_min": prod["max_wait_min"],
                  "policy.road_weights.right": prod["road_weights"]["right"]}
    assert baseline() == production
    assert champion(["init", *outputs], capsys)[0] == 0
    assert baseline() == production  # v1 is production
    register_poor(local_backend(tmp_path)[0], str(tmp_path / "outputs" / "mlartifacts"))
    assert baseline() == {"policy.gamma": POOR["gamma"], "policy.max_wait_min": POOR["max_wait_min"],
                          "policy.road_weights.right": POOR["right"]}
    assert baseline("tracking=off") == production


@pytest.mark.slow
def test_a_sweep_enqueues_the_earlier_champions_after_its_baseline_each_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22: after the baseline (the champion), navi3's enqueue list holds the region's earlier champions, most
    recent first; a slot the registry cannot fill repeats the baseline, and a real sweep runs each distinct entry
    once (the sweeper's claim is by parameters), the earlier champion as the trial after the baseline."""
    import optuna
    from hydra import compose, initialize_config_dir

    from experiment.registration import register_configs
    from experiment.registry.resolver import forget
    from experiment.registry.store import Registry

    register_configs()
    uri, outputs = local_backend(tmp_path)

    def enqueue() -> list[dict[str, Any]]:
        forget()
        with initialize_config_dir(config_dir=str(ROOT / "conf")):
            cfg = compose(config_name="config", overrides=outputs, return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.sweeper.enqueue, resolve=True)  # type: ignore[return-value]

    prod = production_policy()
    production = {"policy.gamma": prod["gamma"], "policy.max_wait_min": prod["max_wait_min"],
                  "policy.road_weights.right": prod["road_weights"]["right"]}
    poor = {"policy.gamma": POOR["gamma"], "policy.max_wait_min": POOR["max_wait_min"],
            "policy.road_weights.right": POOR["right"]}
    assert enqueue() == [production] * 4  # no registry yet: the baseline four times, enqueued once
    assert champion(["init", *outputs], capsys)[0] == 0
    assert enqueue() == [production] * 4  # one champion, no earlier one
    poor_v = register_poor(uri, str(tmp_path / "outputs" / "mlartifacts"))
    assert Registry.at(uri, REGION).history() == [1, poor_v]
    assert enqueue() == [poor, production, poor, poor]  # the champion, then v1, then the baseline again
    out = tmp_path / "outputs"
    proc = cli(tmp_path, "-m", "+experiment=smoke", "hydra.sweeper.n_trials=3", *outputs,
               "hydra.sweeper.progress=false", "hydra.callbacks.report.enabled=false",
               "hydra.sweeper.study_name=earlier_champions")
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "optuna" / "studies.journal")))
    trials = optuna.load_study(study_name="earlier_champions", storage=storage).get_trials(deepcopy=False)
    first_two = [dict(t.params) for t in sorted(trials, key=lambda t: t.number)[:2]]
    assert first_two == [poor, production]
    assert sum(dict(t.params) == poor for t in trials) == 1 and sum(dict(t.params) == production for t in trials) == 1
    # an earlier champion deleted in MLflow is left out (one warning); it must not stop the region's sweeps
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri, registry_uri=uri).delete_model_version(Registry.at(uri, REGION).name, "1")
    assert Registry.at(uri, REGION).history() == [1, poor_v]
    assert enqueue() == [poor] * 4


@pytest.mark.slow
def test_a_decision_on_a_tracking_server(decided: dict[str, Any], mlflow_server: Any,  # noqa: F811
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The same real sweep decided against a real ``mlflow server`` (artifacts uploaded through it): its
    champion is production, not the sweep's baseline -> challenger with the reasons; the replay changes nothing."""
    from experiment.registry import decide
    from experiment.registry.store import Registry

    overrides = ["tracking=server", f"tracking.uri={mlflow_server.uri}", "region=coquimbo"]
    assert champion(["init", *overrides], capsys)[0] == 0
    d = copy_sweep(decided["dir"], "server")
    first = decide(d, region="coquimbo", uri=mlflow_server.uri, promotion="auto")
    assert first.outcome == "challenger", first
    # (failure_limit too when the failure-limit test above already added a failed trial to the shared study)
    assert {"other_region", "champion_unknown", "baseline_not_champion"} <= set(first.blocked), first.blocked
    assert "another registry" in first.blocked["champion_unknown"]
    reg = Registry.at(mlflow_server.uri, "coquimbo")
    v = reg.alias("challenger")
    assert v is not None and v.number == first.version and v.policy["gamma"] == KNOWN_GOOD["policy.gamma"]
    assert reg.champion().number == 1 and "blocked.baseline_not_champion" in v.tags
    files = {a.path for a in mlflow_server.client().list_artifacts(v.run_id, "policy")}
    assert files == {"policy/policy.yaml", "policy/report.json", "policy/report.md"}
    assert decide(d, region="coquimbo", uri=mlflow_server.uri).outcome == "already_decided"
    assert len(reg.versions()) == 2


def test_the_cli_reads_options_target_and_overrides_in_any_order() -> None:
    """A ``--reason`` holding '=' is the reason, not an override; overrides may come anywhere."""
    from experiment.champion import parse

    args, overrides = parse(["promote", "3", "--reason", "gamma=0.95 tested in QA", "region=ring_city"])
    assert (args.command, args.target, args.reason) == ("promote", "3", "gamma=0.95 tested in QA")
    assert overrides == ["region=ring_city"]
    args, overrides = parse(["show", "tracking=off", "--region", "coquimbo"])
    assert (args.command, args.target) == ("show", None) and overrides == ["tracking=off", "region=coquimbo"]



def test_reading_the_study_s_start_record_creates_no_journal(tmp_path: Path) -> None:
    """``decide`` on a sweep without its start file reads the study's record: on a machine without the study's
    journal it finds none and leaves no empty journal (or folder) behind."""
    from omegaconf import OmegaConf

    from experiment.registry.study_start import recorded

    journal = tmp_path / "deep" / "dir" / "study.journal"
    config = OmegaConf.create({"hydra": {"sweeper": {"storage": f"journal://{journal}", "study_name": "s",
                                                     "direction": "maximize"}}})
    assert recorded(config) is None
    assert not (tmp_path / "deep").exists()
