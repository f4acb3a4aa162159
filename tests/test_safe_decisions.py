"""Safe by default (issue 18 §1–3), against a real SQLite MLflow store and real sweeps:

* the README's quick sweep after ``navitune champion init`` never changes the champion: a plain sweep registers a
  challenger (``registry.promotion=manual`` is its default) and a report smaller than the champion's evaluation
  scale is blocked (``blocked.scale``) even with ``auto``;
* the first-run path: a sweep finished before ``champion init`` is decided afterwards (no ``champion_unknown``),
  and ``champion decide`` prints its line once;
* the decision survives ``kill -9`` at each of its steps (``NAVITUNE_CRASH_AT``, :mod:`experiment.failpoints`):
  a replay completes it, and the alias, the history, the version's tags and ``registry_decision.json`` agree;
* concurrent rollbacks: the champion is moved under a lock with compare-and-set; the loser refuses in one line;
* records read back are checked: a corrupted or forged ``registry_decision.json`` / ``retune.json`` is never
  trusted over the registry and never a traceback;
* the champion CLI's odd versions and unknown subcommands are one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.test_registry import KNOWN_GOOD, POOR, REGION, SMOKE_SCALE, cli, local_backend, register_poor

STEPS = ("version_registered", "champion_alias_set", "champion_history_set", "alias_moved", "decision_tagged",
         "decision_file_written")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    from experiment.registry.resolver import forget

    forget()


def smoke_sweep(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    """The README's quick sweep (window=smoke), 2 trials: the champion as trial 0, the known-good parameters as
    trial 1, so the promotion rule holds against a poor champion."""
    base = ", ".join(f"policy.{k}: ${{policy.{k}}}" for k in ("gamma", "max_wait_min", "road_weights.right"))
    good = ", ".join(f"{k}: {v}" for k, v in KNOWN_GOOD.items())
    return cli(tmp, "-m", "window=smoke", f"paths.outputs={tmp / 'outputs'}", "hydra.sweeper.n_trials=2",
               f"hydra.sweeper.enqueue=[{{{base}}}, {{{good}}}]", "hydra.callbacks.report.replications=5",
               "hydra.callbacks.report.plots=false", *extra)


def the_sweep(outputs: Path) -> Path:
    dirs = sorted(outputs.glob("sweeps/*/*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def consistent(reg: Any) -> None:
    """The registry agrees with itself: the champion is the history's last entry, and every version whose
    decision says promoted is in the history; no version is left pending."""
    champion, history = reg.champion_number(), reg.history()
    assert history and history[-1] == champion, (history, champion)
    for mv in reg.versions():
        decision = (mv.tags or {}).get("decision", "")
        assert decision != "pending", (mv.version, mv.tags)
        if decision.startswith("promoted"):
            assert int(mv.version) in history, (mv.version, history)


# ------------------------------------------------------------------------------ no promotion from a toy sweep
@pytest.mark.slow
def test_the_readme_quick_sweep_after_init_never_changes_the_champion(tmp_path: Path) -> None:
    from experiment.registry import decide
    from experiment.registry.store import Registry

    uri, overrides = local_backend(tmp_path)
    init = cli(tmp_path, "champion", "init", *overrides)  # the full scale: 1000 drivers, the 7-day test week
    assert init.returncode == 0 and "evaluated at 1000 drivers, 7 day(s)" in init.stdout, init.stdout + init.stderr
    poor = register_poor(uri, str(tmp_path / "outputs" / "mlartifacts"))  # the rule will hold against it
    proc = smoke_sweep(tmp_path, "policy=champion")
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = the_sweep(tmp_path / "outputs")
    report = json.loads((d / "report.json").read_text())
    assert report["promote"] is True and report["windows"]["test"]["fleet"] == 120, report["windows"]
    reg = Registry.at(uri, REGION)
    assert reg.champion_number() == poor  # unchanged
    version = reg.alias("challenger")
    assert version is not None and version.tags["decision"] == "challenger"
    assert {"blocked.scale", "blocked.manual"} <= set(version.tags), version.tags
    assert "120 drivers, not the fleet of 1000" in version.tags["blocked.scale"]
    # even deciding it with auto (another directory of the same sweep): the scale guard alone blocks it
    copy = d.parent / "auto"
    shutil.copytree(d, copy, ignore=shutil.ignore_patterns("registry_decision.json"))
    auto = decide(copy, promotion="auto")
    assert auto.outcome == "challenger" and set(auto.blocked) == {"scale"}, auto.blocked
    assert reg.champion_number() == poor
    consistent(reg)


def test_a_plain_sweep_registers_challengers_and_retune_decides_with_auto() -> None:
    from experiment.preflight import compose_without_sweeps
    from experiment.retune.checks import sweep_argv

    assert compose_without_sweeps([]).registry.promotion == "manual"
    assert "registry.promotion=auto" in sweep_argv("2026-06-04", "drifting", [])
    mine = sweep_argv("2026-06-04", "drifting", ["registry.promotion=manual"])
    assert "registry.promotion=auto" not in mine and "registry.promotion=manual" in mine


def test_the_scale_guard_on_known_cases() -> None:
    from experiment import scale

    full = {"fleet": 1000, "days": 7, "max_shift_h": None}
    assert scale.shortfall(dict(full), full) is None
    assert scale.shortfall({**full, "days": 14}, full) is None  # a longer test span is fine
    assert "120 drivers" in scale.shortfall({**full, "fleet": 120}, full)
    assert "1 test day(s), fewer than 7" in scale.shortfall({**full, "days": 1}, full)
    assert "shifts capped at 8 h (the champion's: no shift cap)" in scale.shortfall({**full, "max_shift_h": 8.0}, full)
    report = {"windows": {"test": {"start": "2026-06-22", "end": "2026-06-29", "drivers": None,
                                   "max_shift_h": None}}}
    assert scale.of_report(report, {"region": {"drivers": 1000}}) == full  # a report from before windows.test.fleet
    assert scale.region_default("tokyo_central") == full


# ------------------------------------------------------------------------------ the first-run path
@pytest.mark.slow
def test_a_sweep_before_init_is_decided_after_it_in_one_line(tmp_path: Path) -> None:
    uri, overrides = local_backend(tmp_path)
    proc = smoke_sweep(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "has no champion" in proc.stderr + proc.stdout
    d = the_sweep(tmp_path / "outputs")
    assert json.loads((d / "registry_start.json").read_text())["champion_version"] is None
    assert cli(tmp_path, "champion", "init", *overrides, *SMOKE_SCALE).returncode == 0
    decided = cli(tmp_path, "champion", "decide", str(d), "--json")
    assert decided.returncode == 0, decided.stderr
    decision = json.loads(decided.stdout)
    assert decision["outcome"] in ("promoted", "challenger") and decision["version"] == 2, decision
    assert not {"champion_unknown", "baseline_not_champion", "scale"} & set(decision["blocked"]), decision
    again = cli(tmp_path, "champion", "decide", str(d))
    assert again.returncode == 0 and again.stdout.count("\n") == 1 and again.stderr == "", (again.stdout, again.stderr)
    assert "was already decided" in again.stdout


# ------------------------------------------------------------------------------ kill -9 at each step
@pytest.fixture(scope="module")
def poor_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke sweep against a poor champion (v2), its decision left to the tests (tracking=off at the
    end: no registry decision is made); the report's rule holds."""
    tmp = tmp_path_factory.mktemp("poor")
    uri, overrides = local_backend(tmp)
    assert cli(tmp, "champion", "init", *overrides, *SMOKE_SCALE).returncode == 0
    register_poor(uri, str(tmp / "outputs" / "mlartifacts"))
    proc = smoke_sweep(tmp, "policy=champion")
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = the_sweep(tmp / "outputs")
    assert json.loads((d / "report.json").read_text())["promote"] is True
    return d


def fresh_registry(tmp: Path, sweep: Path) -> tuple[str, Path]:
    """A new store with production v1 and the poor v2 as champion, and a copy of ``sweep`` that started against
    it (its start record names this store and v2)."""
    from experiment.registry.store import Registry
    from experiment.tracking.common import mask

    uri, overrides = local_backend(tmp)
    assert cli(tmp, "champion", "init", *overrides, *SMOKE_SCALE).returncode == 0
    poor = register_poor(uri, str(tmp / "outputs" / "mlartifacts"))
    d = tmp / "sweep"
    shutil.copytree(sweep, d, ignore=shutil.ignore_patterns("registry_decision.json"))
    start = json.loads((d / "registry_start.json").read_text())
    start |= {"store": mask(uri), "champion_version": poor,
              "champion_policy": Registry.at(uri, REGION).version(poor).policy}
    (d / "registry_start.json").write_text(json.dumps(start))
    return uri, d


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_a_decision_killed_at_any_step_is_completed_by_a_replay(step: str, poor_sweep: Path, tmp_path: Path) -> None:
    from experiment.registry import decide
    from experiment.registry.decision import read_decision_file
    from experiment.registry.store import Registry

    uri, d = fresh_registry(tmp_path, poor_sweep)
    reg = Registry.at(uri, REGION)
    env = {**os.environ, "NAVITUNE_CRASH_AT": step}
    killed = subprocess.run([sys.executable, "-m", "experiment", "champion", "decide", str(d),
                             f"tracking.uri={uri}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])  # SIGKILL at the step
    assert reg.champion_number() in (2, 3)
    replay = decide(d, uri=uri, promotion="auto")
    if step in ("decision_tagged", "decision_file_written"):  # the registry's part was whole: the replay finds it
        assert replay.outcome == "already_decided" and replay.version == 3
    else:
        assert replay.outcome == "promoted" and replay.version == 3, replay
    assert reg.champion_number() == 3 and reg.history() == [1, 2, 3]
    assert reg.version(3).tags["decision"] == "promoted"
    consistent(reg)
    record = read_decision_file(d)
    assert record is not None and record["version"] == 3 and record["outcome"] == "promoted", record
    assert decide(d, uri=uri, promotion="auto").outcome == "already_decided"  # and never twice
    assert len(reg.versions()) == 3


# ------------------------------------------------------------------------------ concurrent rollbacks
@pytest.mark.slow
def test_two_rollbacks_at_once_move_the_champion_once(tmp_path: Path) -> None:
    from experiment.registry.store import ChampionChanged, Registry, policy_yaml

    uri, overrides = local_backend(tmp_path)
    assert cli(tmp_path, "champion", "init", *overrides).returncode == 0
    reg = Registry.at(uri, REGION)
    prod = reg.champion().policy
    for n in (2, 3):
        v = reg.register(policy_yaml({**prod, "name": f"p{n}", "gamma": 0.9 + n / 100}), {"study": f"s{n}"})
        reg.set_champion(v.number, "test")
    assert reg.history() == [1, 2, 3]
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def rollback() -> None:  # both saw v3 as the champion when they started
        mine = Registry.at(uri, REGION)
        barrier.wait()
        try:
            results.append(mine.rollback("test", expected=3))
        except ChampionChanged as err:
            results.append(err)

    threads = [threading.Thread(target=rollback) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(map(type, results), key=str) == sorted([tuple, ChampionChanged], key=str), results
    assert (3, 2) in results
    (refused,) = [r for r in results if isinstance(r, ChampionChanged)]
    assert "v3 when it started, v2 now" in str(refused) and "\n" not in str(refused)
    assert reg.champion_number() == 2 and reg.history() == [1, 2]
    # through the CLI, two at once from v2: whatever the interleaving, one moves it (v2 -> v1) and the other
    # refuses in one line (it saw v2 and the champion moved, or it found v1, which has no previous champion)
    procs = [subprocess.Popen([sys.executable, "-m", "experiment", "champion", "rollback", *overrides],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 2], outs
    (moved,) = [o for (o, _), p in zip(outs, procs) if p.returncode == 0]
    (refused,) = [e for (_, e), p in zip(outs, procs) if p.returncode == 2]
    assert "rolled back from v2 to v1" in moved and refused.strip().count("\n") == 0, outs
    assert "v2 when it started, v1 now" in refused or "no previous champion" in refused, refused
    consistent(reg)
    assert reg.history() == [1]


# ------------------------------------------------------------------------------ records are checked
def decision_dict(**changes: Any) -> dict[str, Any]:
    base = {"outcome": "promoted", "region": REGION, "sweep_dir": "/x", "study": "s", "version": 3,
            "champion_before": 2, "champion_after": 3, "blocked": {}, "reason": "r", "promoted": True}
    return base | changes


@pytest.mark.parametrize("content", [
    "not json", "[1, 2]", json.dumps(decision_dict(version="abc")), json.dumps(decision_dict(outcome="won")),
    json.dumps(decision_dict(promoted=False)), json.dumps({k: v for k, v in decision_dict().items() if k != "region"}),
    json.dumps(decision_dict(outcome="challenger", promoted=False, version=None)), "DIRECTORY",
])
def test_a_bad_decision_record_is_ignored_with_one_warning(content: str, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from experiment.registry.decision import DECISION_FILE, read_decision_file

    if content == "DIRECTORY":
        (tmp_path / DECISION_FILE).mkdir()
    else:
        (tmp_path / DECISION_FILE).write_text(content)
    assert read_decision_file(tmp_path) is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "not a valid decision record" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()


def test_a_valid_decision_record_is_read() -> None:
    from experiment.registry.decision import check_decision_record

    assert check_decision_record(decision_dict())["version"] == 3


def retune_record(**changes: Any) -> dict[str, Any]:
    base = {"schema": 1, "as_of": "2026-06-04", "region": REGION, "scenario": "drifting", "study": "s",
            "cycle_dir": "/c", "sweep_dir": "/c/sweep", "record": "/c/retune.json", "outcome": "promoted",
            "reason": "r", "started": "t", "promoted": True, "version": 3, "champion_before": 2,
            "champion_after": 3, "improvement_pct": {}, "ci95_pct": {}, "blocked": {}}
    return base | changes


@pytest.mark.parametrize("content", [
    "{", "null", json.dumps(retune_record(version="abc")), json.dumps(retune_record(outcome="won")),
    json.dumps(retune_record(promoted=False)), json.dumps(retune_record(schema=99)),
    json.dumps(retune_record(champion_after="2")), json.dumps({"outcome": "promoted"}), "DIRECTORY",
])
def test_a_bad_retune_record_is_rebuilt_not_trusted(content: str, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from experiment.retune import record as rec

    if content == "DIRECTORY":
        rec.path(tmp_path).mkdir()
    else:
        rec.path(tmp_path).write_text(content)
    assert rec.load(tmp_path) is None
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "not a valid record" in warning.getMessage() and "rebuilt" in warning.getMessage()
    assert rec.load(tmp_path / "nothing") is None  # no record: no warning
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


def test_a_valid_retune_record_is_read(tmp_path: Path) -> None:
    from experiment.retune import record as rec

    rec.write(tmp_path, retune_record())
    assert rec.load(tmp_path) == retune_record()


def test_a_record_that_cannot_be_written_is_one_line_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    from experiment.retune import record as rec

    rec.path(tmp_path).mkdir()  # a directory where the record goes: os.replace fails as on a full disk
    with pytest.raises(rec.RecordError) as err:
        rec.write(tmp_path, retune_record())
    assert "cannot write" in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["retune.json"]  # no .retune.json.<pid> left


@pytest.mark.slow
def test_a_forged_decision_file_never_reaches_the_record(poor_sweep: Path, tmp_path: Path) -> None:
    """A ``registry_decision.json`` naming a version the registry does not confirm (another study's, or none) is
    not copied into the cycle's view: the registry decides."""
    from experiment.registry import decide
    from experiment.registry.decision import DECISION_FILE
    from experiment.registry.store import Registry

    uri, d = fresh_registry(tmp_path, poor_sweep)
    (d / DECISION_FILE).write_text(json.dumps(decision_dict(version=1, sweep_dir=str(d))))  # v1 is init's, not ours
    decision = decide(d, uri=uri, promotion="auto")
    assert decision.outcome == "promoted" and decision.version == 3, decision  # decided, not "already v1"
    assert Registry.at(uri, REGION).champion_number() == 3


@pytest.mark.slow
def test_a_decided_sweep_copied_elsewhere_is_not_decided_again(poor_sweep: Path, tmp_path: Path) -> None:
    from experiment.registry import decide
    from experiment.registry.store import Registry

    uri, d = fresh_registry(tmp_path, poor_sweep)
    first = decide(d, uri=uri, promotion="auto")
    assert first.outcome == "promoted" and first.version == 3
    copy = tmp_path / "copied"
    shutil.copytree(d, copy)  # with its registry_decision.json
    again = decide(copy, uri=uri, promotion="auto")
    assert again.outcome == "already_decided" and again.version == 3
    assert len(Registry.at(uri, REGION).versions()) == 3  # no duplicate challenger


# ------------------------------------------------------------------------------ the CLI's odd input
@pytest.mark.parametrize("args, words", [
    (["promote", "²"], ["invalid VERSION '²'", "ASCII digits"]),
    (["promote", "١٢"], ["invalid VERSION", "ASCII digits"]),
    (["promote", "99999999999999999999"], ["invalid VERSION '99999999999999999999'", "1..1000000000"]),
    (["promote", "0"], ["invalid VERSION '0'"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'", "init | show | history | promote | rollback | decide"]),
    (["--bogus"], ["navitune champion:", "init | show"]),
])
def test_odd_champion_arguments_are_one_line(args: list[str], words: list[str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from experiment.champion import main

    code = main([*args, f"paths.outputs={tmp_path / 'outputs'}"])
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and out.err.strip().count("\n") == 0, out
    for w in words:
        assert w in out.err, out.err
    assert not (tmp_path / "outputs").exists()  # nothing written: no store was created


# ------------------------------------------------------------------------------ a no-op rerun
@pytest.mark.slow
def test_a_no_op_rerun_leaves_no_empty_directory_and_a_hint_that_works(tmp_path: Path) -> None:
    args = ["-m", "window=smoke", "tracking=off", f"paths.outputs={tmp_path / 'outputs'}", "hydra.sweeper.n_trials=2",
            "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed", "hydra.callbacks.report.plots=false"]
    first = cli(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    d = the_sweep(tmp_path / "outputs")
    again = cli(tmp_path, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert the_sweep(tmp_path / "outputs") == d  # the rerun's empty directory is gone
    (line,) = [x for x in (again.stdout + again.stderr).splitlines() if "nothing to run" in x]
    assert f"its report: {d / 'report.md'}" in line and (d / "report.md").is_file()
    # a study whose report was never written: the rerun's directory stays, and its hint works
    study = "navitune_noreport"
    off = [*args, f"hydra.sweeper.study_name={study}", "hydra.callbacks.report.enabled=false"]
    assert cli(tmp_path, *off).returncode == 0
    rerun = cli(tmp_path, *[a for a in off if a != "hydra.callbacks.report.enabled=false"])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (line,) = [x for x in (rerun.stdout + rerun.stderr).splitlines() if "nothing to run" in x]
    hint = line.split("; ", 1)[1]
    assert hint.startswith("python -m experiment.report "), line
    made = subprocess.run([sys.executable, "-m", "experiment.report", hint.split()[3], "report.replications=2", "report.rule=fixed",
                           "report.plots=false"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    assert (Path(hint.split()[3]) / "report.json").is_file()


# ------------------------------------------------------------------------------ found by the red team
@pytest.mark.slow
def test_a_pending_promotion_rolled_back_by_hand_is_not_promoted_again(poor_sweep: Path, tmp_path: Path) -> None:
    """Killed after the alias moved; an operator rolls the half-done promotion back; the replay must not redo it."""
    from experiment.registry import decide
    from experiment.registry.store import Registry

    uri, d = fresh_registry(tmp_path, poor_sweep)
    reg = Registry.at(uri, REGION)
    env = {**os.environ, "NAVITUNE_CRASH_AT": "champion_alias_set"}
    killed = subprocess.run([sys.executable, "-m", "experiment", "champion", "decide", str(d), f"tracking.uri={uri}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9 and reg.champion_number() == 3
    assert reg.rollback("v3 is bad", expected=3) == (3, 2)
    replay = decide(d, uri=uri, promotion="auto")
    assert replay.outcome == "challenger" and "rolled_back" in replay.blocked, replay
    assert reg.champion_number() == 2 and reg.version(3).tags["decision"] == "challenger"
    consistent(reg)


@pytest.mark.slow
def test_a_forged_decision_record_of_the_right_version_is_corrected(poor_sweep: Path, tmp_path: Path) -> None:
    from experiment.registry import decide
    from experiment.registry.decision import DECISION_FILE, read_decision_file

    uri, d = fresh_registry(tmp_path, poor_sweep)
    assert decide(d, uri=uri, promotion="auto").outcome == "promoted"
    forged = {**read_decision_file(d), "outcome": "challenger", "promoted": False}
    (d / DECISION_FILE).write_text(json.dumps(forged))
    assert decide(d, uri=uri, promotion="auto").outcome == "already_decided"
    assert read_decision_file(d)["outcome"] == "promoted"  # written back from the registry


@pytest.mark.slow
def test_a_forged_retune_record_is_not_confirmed_by_the_registry(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from experiment.registry.store import Registry, policy_yaml
    from experiment.retune.cycle import confirmed_by_registry

    uri, overrides = local_backend(tmp_path)
    assert cli(tmp_path, "champion", "init", *overrides).returncode == 0
    reg = Registry.at(uri, REGION)
    v = reg.register(policy_yaml({**reg.champion().policy, "name": "c"}),
                     {"study": "s", "decision": "challenger", "champion_at_decision": "1", "improvement_pct.ml": "+0.500"})
    plan = SimpleNamespace(uri=uri, region=REGION)
    true = retune_record(outcome="challenger", promoted=False, version=v.number, champion_before=1, champion_after=1,
                         improvement_pct={"ml": 0.5})
    assert confirmed_by_registry(plan, true)
    for forged in ({"outcome": "already_decided", "promoted": True}, {"champion_before": 77},
                   {"improvement_pct": {"ml": 42.0}}, {"outcome": "promoted", "promoted": True},
                   {"version": 99}, {"study": "other"}):
        assert not confirmed_by_registry(plan, {**true, **forged}), forged


@pytest.mark.slow
def test_decide_from_another_directory_uses_the_sweeps_own_registry(tmp_path: Path) -> None:
    """A sweep run with the default relative paths.outputs, decided from elsewhere: the sweep's store (relative to
    where it ran), never a new empty one beside the current directory."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    assert cli(here, "champion", "init", *SMOKE_SCALE).returncode == 0
    proc = cli(here, "-m", "window=smoke", "hydra.sweeper.n_trials=2", "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed",
               "hydra.callbacks.report.plots=false", "hydra.callbacks.report.enabled=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = the_sweep(here / "outputs").resolve()
    (d / "registry_decision.json").unlink()
    # its version is found in its own store (already decided by the sweep's end), from another directory
    out = cli(elsewhere, "champion", "decide", str(d))
    assert out.returncode == 0 and "was already decided" in out.stdout, out.stdout + out.stderr
    assert not (elsewhere / "outputs").exists()


def test_rollback_from_refuses_when_the_champion_moved_and_takes_no_version(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from experiment.champion import main
    from experiment.registry.store import Registry, policy_yaml

    uri, overrides = local_backend(tmp_path)
    assert main(["init", *overrides]) == 0
    reg = Registry.at(uri, REGION)
    for n in (2, 3):
        v = reg.register(policy_yaml({**reg.champion().policy, "name": f"p{n}"}), {"study": f"s{n}"})
        reg.set_champion(v.number, "test")
    capsys.readouterr()
    assert main(["rollback", "--from", "3", *overrides]) == 0  # the first of two rollbacks "at once"
    assert main(["rollback", "--from", "3", *overrides]) == 2  # the second saw v3 too: refused
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "v3 when it started, v2 now" in err, err
    assert reg.champion_number() == 2 and reg.history() == [1, 2]
    for args, words in ((["rollback", "3"], "takes no argument '3'"), (["show", "7"], "takes no argument '7'"),
                        (["promote", "2", "--from", "3"], "--from is for rollback only"),
                        ([f"paths.outputs={tmp_path}"], "missing command")):
        assert main([*args, *overrides]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, err
    assert reg.champion_number() == 2
