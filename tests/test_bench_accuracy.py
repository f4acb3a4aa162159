"""``bench oracle`` and ``bench accuracy`` (issue 21): the captured-share arithmetic, the oracle's search-space
parsing, the simulator fingerprint, the resume cache, bad input, and both benches' small modes end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.accuracy import AccuracyError, captured_share, load_oracle, parse as parse_accuracy
from benchmarks.oracle import FINGERPRINT_GLOBS, Cache, Dim, OracleError, fingerprint, job_key, parse_space
from benchmarks.oracle import parse as parse_oracle

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- captured share
def test_captured_share_known_cases() -> None:
    prod, oracle = [100.0, 110.0, 90.0], [104.0, 114.0, 94.0]  # oracle +4 on every seed
    assert captured_share(oracle, prod, oracle) == pytest.approx(1.0)
    assert captured_share(prod, prod, oracle) == pytest.approx(0.0)
    assert captured_share([102.0, 112.0, 92.0], prod, oracle) == pytest.approx(0.5)
    # means over the seeds, not per-seed ratios: +6 on one seed and 0 on the others is +2 on average
    assert captured_share([106.0, 110.0, 90.0], prod, oracle) == pytest.approx(0.5)
    assert captured_share([105.0, 115.0, 95.0], prod, oracle) == pytest.approx(1.25)  # beats the oracle: kept


def test_captured_share_se_is_the_paired_spread_over_the_gain() -> None:
    from benchmarks.accuracy import captured_share_se

    prod, oracle = [100.0, 110.0, 90.0], [104.0, 114.0, 94.0]  # gain 4
    assert captured_share_se([102.0, 112.0, 92.0], prod, oracle) == 0.0  # the same shortfall on every seed
    # shortfalls 0, 2, 4: SD 2, / sqrt(3), / 4
    assert captured_share_se([104.0, 112.0, 90.0], prod, oracle) == pytest.approx(2.0 / math.sqrt(3) / 4.0)
    assert math.isnan(captured_share_se([102.0], [100.0], [104.0]))  # one seed: no spread to measure
    with pytest.raises(ValueError, match="same seeds"):
        captured_share_se([1.0, 2.0], [1.0], [3.0, 4.0])


def test_the_reports_defaults_are_the_configs() -> None:
    """``make run``'s report (conf/config.yaml) and the report's own defaults (a standalone report, the peer's
    budget: ``selection_simulations``) name the same candidate: the same selection stage, the same rule."""
    from dataclasses import asdict

    from benchmarks.accuracy import selection_simulations
    from benchmarks.oracle import compose
    from experiment.report.settings import ReportSettings

    conf = compose([]).hydra.callbacks.report
    defaults = asdict(ReportSettings())
    assert {k: conf[k] for k in defaults} == defaults
    assert selection_simulations() == conf.selection_top * conf.selection_seeds == 3


def test_captured_share_keeps_negative_shares() -> None:
    assert captured_share([98.0, 108.0, 88.0], [100.0, 110.0, 90.0], [104.0, 114.0, 94.0]) == pytest.approx(-0.5)


@pytest.mark.parametrize("oracle", [[100.0, 110.0], [99.0, 109.0]])
def test_captured_share_refuses_an_oracle_without_gain(oracle: list[float]) -> None:
    with pytest.raises(ValueError) as err:
        captured_share([101.0, 111.0], [100.0, 110.0], oracle)
    assert "no better than production" in str(err.value) and "\n" not in str(err.value)


def test_captured_share_needs_the_same_seeds() -> None:
    with pytest.raises(ValueError, match="same seeds"):
        captured_share([1.0, 2.0], [1.0], [3.0, 4.0])


# --------------------------------------------------------------------------------------------- search space
def test_parse_space_navi3_forms() -> None:
    dims, fixed = parse_space({"policy.gamma": "interval(0.6, 0.995)",
                               "policy.max_wait_min": "tag(log, interval(0.3, 30.0))",
                               "policy.road_weights.uturn": "tag(log, int(interval(5, 100)))",
                               "policy.compliance": 0.7})
    by = {d.name: d for d in dims}
    assert by["policy.gamma"] == Dim("policy.gamma", 0.6, 0.995, False, False)
    assert by["policy.max_wait_min"].log and not by["policy.max_wait_min"].integer
    assert by["policy.road_weights.uturn"].log and by["policy.road_weights.uturn"].integer
    assert fixed == {"policy.compliance": 0.7}
    g, w, u = by["policy.gamma"], by["policy.max_wait_min"], by["policy.road_weights.uturn"]
    assert (g.value(0.0), g.value(1.0)) == (0.6, 0.995) and g.value(0.5) == pytest.approx(0.7975)
    assert w.value(0.5) == pytest.approx(math.sqrt(0.3 * 30.0))  # log scale: the geometric midpoint
    assert u.value(0.37) == round(u.value(0.37)) and 5 <= u.value(0.37) <= 100


def test_parse_space_reads_the_repos_search_spaces() -> None:
    from omegaconf import OmegaConf

    spaces = {}
    for name, n in (("navi3", 3), ("navi6", 5)):
        params = OmegaConf.load(ROOT / "conf" / "search_space" / f"{name}.yaml").hydra.sweeper.params
        dims, _ = parse_space(dict(params))
        assert len(dims) == n
        spaces[name] = {d.name: d for d in dims}
    # the larger space searches navi3's three parameters over navi3's ranges, but the discount: navi3 searches
    # 0.85-0.99 since issue 21, navi6 still the 0.6-0.995 its oracle (docs/oracle-navi6.json) was measured on
    gamma = "policy.gamma"
    assert {k: spaces["navi6"][k] for k in spaces["navi3"] if k != gamma} == {
        k: d for k, d in spaces["navi3"].items() if k != gamma}
    assert (spaces["navi3"][gamma].lo, spaces["navi3"][gamma].hi) == (0.85, 0.99)
    assert (spaces["navi6"][gamma].lo, spaces["navi6"][gamma].hi) == (0.6, 0.995)


@pytest.mark.parametrize("params, names", [
    ({"policy.gamma": "choice(0.9, 0.95)"}, "policy.gamma"),
    ({"policy.gamma": "range(1, 5)"}, "policy.gamma"),
    ({"region.drivers": "interval(100, 200)"}, "region.drivers"),
    ({"policy.max_wait_min": "tag(log, interval(0.0, 3.0))"}, "policy.max_wait_min"),
    ({"policy.compliance": 0.7}, "no range"),
])
def test_parse_space_refuses_what_it_cannot_search_in_one_line(params: dict, names: str) -> None:
    with pytest.raises(OracleError) as err:
        parse_space(params)
    assert names in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------- fingerprint
def test_fingerprint_follows_the_simulators_bytes(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "experiment" / "sim", tmp_path / "experiment" / "sim",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    before = fingerprint(tmp_path)
    assert before == fingerprint(ROOT) and before == fingerprint(tmp_path)
    (tmp_path / "conf" / "tracking" / "off.yaml").write_text("# not the city\n")  # outside the fingerprint
    assert fingerprint(tmp_path) == before
    fares = tmp_path / "experiment" / "sim" / "fares.py"
    fares.write_bytes(fares.read_bytes() + b"\n")
    changed = fingerprint(tmp_path)
    assert changed != before
    (tmp_path / "conf" / "policy" / "production.yaml").write_text("gamma: 0.5\n")
    assert fingerprint(tmp_path) not in (before, changed)
    assert "experiment/sim/**/*.py" in FINGERPRINT_GLOBS
    tool = tmp_path / "experiment" / "sim" / "diagnostics.py"  # a measurement tool of the simulator
    tool.write_bytes(tool.read_bytes() + b"\n")
    assert fingerprint(tmp_path) == fingerprint(tmp_path) and fingerprint(tmp_path) not in (before, changed)


def test_the_tools_left_out_of_the_fingerprint_are_never_imported_by_a_simulation() -> None:
    """FINGERPRINT_EXCLUDE holds only files simulate() does not run: a fresh interpreter that imports the
    simulator and runs a tiny simulation has none of them loaded."""
    from benchmarks.oracle import FINGERPRINT_EXCLUDE

    modules = [f.removesuffix(".py").replace("/", ".") for f in FINGERPRINT_EXCLUDE]
    code = ("import sys; from experiment.sim.simulate import SimParams, simulate; "
            "simulate(SimParams(region='tokyo_central', n_drivers=20, requests_per_hour=50.0, start_weekday=0, n_days=1, seed=1)); "
            f"print([m for m in {modules!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- resume cache
def test_cache_ignores_a_torn_last_line_and_appends_on_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    a, b, c = (job_key("tune", {"policy.gamma": g}, 1) for g in (0.9, 0.95, 0.99))
    cache = Cache(path)
    cache.add(a, 100.0, 0.5)
    cache.add(b, 101.0, 0.5)
    with open(path, "a") as fh:
        fh.write('{"k": "[\\"tune\\", [[\\"policy.ga')  # a stop in the middle of a write
    again = Cache(path)
    assert again.values == {a: (100.0, 0.5), b: (101.0, 0.5)} and again.torn == 1
    again.add(c, 102.0, 0.25)
    third = Cache(path)
    assert set(third.values) == {a, b, c} and third.values[c] == (102.0, 0.25) and third.torn == 1


def test_job_key_distinguishes_window_point_and_seed() -> None:
    keys = {job_key("tune", {"policy.gamma": 0.9}, 1), job_key("test", {"policy.gamma": 0.9}, 1),
            job_key("tune", {"policy.gamma": 0.9000001}, 1), job_key("tune", {"policy.gamma": 0.9}, 2)}
    assert len(keys) == 4
    assert job_key("t", {"b": 1.0, "a": 2.0}, 1) == job_key("t", {"a": 2.0, "b": 1.0}, 1)


# --------------------------------------------------------------------------------------------- bad input
def test_oracle_reporting_seeds() -> None:
    """32 reporting seeds by default (a share to about +-0.035), apart from the selection seeds whatever their number."""
    from benchmarks.oracle import FULL, MAX_REPORTING_SEEDS, REPORTING_OFFSET, SELECTION_OFFSET

    assert parse_oracle([])[1].reporting_seeds == FULL.reporting_seeds == 32
    assert parse_oracle(["--reporting-seeds", "48"])[1].reporting_seeds == 48
    assert SELECTION_OFFSET + FULL.test_seeds <= REPORTING_OFFSET
    assert REPORTING_OFFSET + MAX_REPORTING_SEEDS < 3001 - 1001  # below the decision bench's seeds (3001..)


@pytest.mark.parametrize("argv, words", [
    (["--points", "7"], "--points"), (["--points", "x"], "--points"), (["--workers", "0"], "--workers"),
    (["--smoke"], "--out"), (["--frobnicate"], "allowed"), (["window=test_week"], "window"),
    (["window.seed=3"], "window.seed"), (["--smoke", "--out", str(ROOT / "docs" / "x.json")], "docs/"),
    (["--reporting-seeds", "8"], "invalid --reporting-seeds '8'; allowed: a whole number in [16, 256]"),
    (["--reporting-seeds", "x"], "--reporting-seeds"),
    (["--smoke", "--out", "/tmp/o.json", "--reporting-seeds", "32"], "--reporting-seeds is fixed by --smoke"),
])
def test_oracle_bad_options_are_one_line(argv: list[str], words: str) -> None:
    with pytest.raises(OracleError) as err:
        parse_oracle(argv)
    text = str(err.value)
    assert words in text and ("allowed" in text or "needs" in text) and "\n" not in text


@pytest.mark.parametrize("argv, words", [
    (["--budgets", "2"], "--budgets"), (["--budgets", "15,15"], "--budgets"), (["--repeats", "0"], "--repeats"),
    (["--configs", "frob"], "--configs"), (["--configs", "default,smac"], "not implemented yet"),
    (["--configs", "smac"], "not implemented yet"), (["--workers", "-1"], "--workers"), (["--bogus"], "--bogus"),
    (["--first-seed", "0"], "--first-seed"), (["--first-seed", "x"], "--first-seed"),
])
def test_accuracy_bad_options_are_one_line(argv: list[str], words: str) -> None:
    with pytest.raises(AccuracyError) as err:
        parse_accuracy(argv)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_accuracy_defaults() -> None:
    opts = parse_accuracy([])
    assert opts.budgets == [15, 27, 60] and opts.repeats == 5 and "default" in opts.configs and opts.first_seed == 1
    assert parse_accuracy(["--first-seed", "6", "--repeats", "5"]).first_seed == 6  # seeds 6..10 extend 1..5
    assert "hydra-optuna" in opts.configs and "navi6" in opts.configs
    # the optional extra's configurations run by default where their module is installed, and only there
    assert ("ax" in opts.configs) == (importlib.util.find_spec("ax") is not None)
    assert ("gp" in opts.configs) == (importlib.util.find_spec("torch") is not None)


@pytest.mark.parametrize("config, module, dist", [("ax", "ax", "ax-platform"), ("gp", "torch", "PyTorch"),
                                                  ("gp-nopr", "torch", "PyTorch")])
def test_a_configuration_of_the_bench_extra_needs_its_module(config: str, module: str, dist: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec(module) is not None:  # the extra is installed (pip install -e '.[bench]')
        assert parse_accuracy(["--configs", config]).configs == [config]
        # and as navitune's own install sees it: the module hidden from the check
        import benchmarks.accuracy as accuracy

        real = accuracy.installed
        monkeypatch.setattr(accuracy, "installed", lambda m: m != module and real(m))
    with pytest.raises(AccuracyError) as err:  # navitune's own install: refused before any sweep, in one line
        parse_accuracy(["--configs", config])
    text = str(err.value)
    assert f"--configs {config} needs {dist}" in text and ".[bench]" in text and "allowed" in text
    assert "\n" not in text and "default" in text.split("allowed", 1)[1] and config not in text.split("allowed", 1)[1]


@pytest.mark.parametrize("name", ["navi3", "navi6"])
def test_the_committed_oracles_are_of_todays_ranges_and_their_optima_inside(name: str) -> None:
    """docs/oracle-<space>.json is the attainable optimum of the space as conf/ searches it now, and that optimum
    lies inside every range (issue 19: navi6's optima inside its ranges; a bound would cut the search short)."""
    from omegaconf import OmegaConf

    doc = json.loads((ROOT / "docs" / f"oracle-{name}.json").read_text())
    params = OmegaConf.load(ROOT / "conf" / "search_space" / f"{name}.yaml").hydra.sweeper.params
    assert doc["space"] == {str(k): str(v) for k, v in params.items()}, "recompute: python -m experiment.bench oracle"
    dims, _ = parse_space(doc["space"])
    for d in dims:
        x = doc["params"][d.name]
        u = (math.log(x / d.lo) / math.log(d.hi / d.lo)) if d.log else (x - d.lo) / (d.hi - d.lo)
        assert 0.02 < u < 0.98, (d.name, x, d.lo, d.hi)


def test_tunability_ranges_are_navi3s() -> None:
    """The drift study's ranges (experiment.tunability.RANGES) are navi3's, as the sweeper searches them."""
    from omegaconf import OmegaConf

    from experiment.tunability import RANGES, SCANS

    params = OmegaConf.load(ROOT / "conf" / "search_space" / "navi3.yaml").hydra.sweeper.params
    dims, _ = parse_space({str(k): str(v) for k, v in params.items()})
    assert {d.name.removeprefix("policy."): (d.lo, d.hi, d.log) for d in dims} == RANGES
    # the 1-D scans span every range (the discount's reach beyond it, to show what lies outside)
    assert all(min(xs) <= RANGES[n][0] < RANGES[n][1] <= max(xs) for n, xs in SCANS.items())


def test_accuracy_refuses_an_oracle_of_another_simulator(tmp_path: Path) -> None:
    oracle = {"search_space": "navi3", "fingerprint": "0" * 64, "seeds": {"reporting": [1]},
              "revenue_per_seed": [1.0], "settings": {"smoke": False}}
    path = tmp_path / "oracle.json"
    path.write_text(json.dumps(oracle))
    with pytest.raises(AccuracyError) as err:
        load_oracle(path, smoke=False)
    assert "python -m experiment.bench oracle search_space=navi3" in str(err.value) and "\n" not in str(err.value)
    path.write_text(json.dumps(oracle | {"fingerprint": fingerprint()}))
    assert load_oracle(path, smoke=False)["search_space"] == "navi3"
    with pytest.raises(AccuracyError, match="smoke"):
        load_oracle(path, smoke=True)
    with pytest.raises(AccuracyError, match="no oracle"):
        load_oracle(tmp_path / "missing.json", smoke=False)


def test_bad_input_through_the_cli_exits_2_in_one_line() -> None:
    for argv in (["oracle", "--points", "12"], ["accuracy", "--configs", "smac"]):
        proc = subprocess.run([sys.executable, "-m", "experiment.bench", *argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and argv[1] in lines[0] and ("allowed" in lines[0] or "not implemented" in lines[0])


# --------------------------------------------------------------------------------------------- small modes
def _bench(argv: list[str], timeout: int = 600) -> dict:
    proc = subprocess.run([sys.executable, "-m", "experiment.bench", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def smoke_oracle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("oracle")
    out, cache = d / "oracle.json", d / "cache"
    line = _bench(["oracle", "--smoke", "--out", str(out), "--cache-dir", str(cache), "--workers", "2"])
    return out, cache, line


@pytest.mark.slow
def test_smoke_oracle_writes_its_file(smoke_oracle: tuple[Path, Path, dict]) -> None:
    out, _, line = smoke_oracle
    doc = json.loads(out.read_text())
    assert line["path"] == str(out) and line["simulations"] == doc["simulations"] == line["simulations_this_run"]
    assert 20 <= doc["simulations"] <= 80  # a few dozen tiny simulations
    assert doc["fingerprint"] == fingerprint() and doc["settings"]["smoke"] is True
    assert set(doc["params"]) == {"policy.gamma", "policy.max_wait_min", "policy.road_weights.right"}
    assert doc["windows"]["tuning"]["name"] == "smoke" and doc["windows"]["test"]["name"] == "test_week"
    assert doc["windows"]["test"]["days"] == 1 and doc["windows"]["test"]["drivers"] == 120
    sel, rep = doc["seeds"]["selection"], doc["seeds"]["reporting"]
    assert len(rep) == len(doc["revenue_per_seed"]) == len(doc["production_per_seed"]) and not set(sel) & set(rep)
    assert doc["revenue"] == pytest.approx(sum(doc["revenue_per_seed"]) / len(rep), abs=0.01)
    lo, hi = doc["gain_ci95_pct"]
    assert lo <= doc["gain_pct"] <= hi and doc["cpu_s"] > 0 and doc["method"]


@pytest.mark.slow
def test_smoke_oracle_resumes_from_its_cache(smoke_oracle: tuple[Path, Path, dict], tmp_path: Path) -> None:
    out, cache, first = smoke_oracle
    (cache_file,) = cache.glob("*.jsonl")
    with open(cache_file, "a") as fh:
        fh.write('{"k": "[\\"te')  # a torn last line, as a stop leaves it
    again = _bench(["oracle", "--smoke", "--out", str(tmp_path / "again.json"), "--cache-dir", str(cache)])
    assert again["simulations_this_run"] == 0 and again["simulations"] == first["simulations"]
    assert json.loads((tmp_path / "again.json").read_text())["revenue_per_seed"] == \
        json.loads(out.read_text())["revenue_per_seed"]


@pytest.mark.slow
def test_smoke_accuracy_run(smoke_oracle: tuple[Path, Path, dict]) -> None:
    out, _, _ = smoke_oracle
    line = _bench(["accuracy", "--smoke", "--oracle", str(out), "--configs", "default", "--repeats", "1",
                   "--budgets", "3"])
    oracle = json.loads(out.read_text())
    assert line["default"] == "default"
    assert line["oracle"]["revenue"] == oracle["revenue"] and line["oracle"]["gain_pct"] == oracle["gain_pct"]
    (entry,) = line["configs"]
    assert {k: entry[k] for k in ("name", "sampler", "search_space", "budget", "repeats")} == \
        {"name": "default", "sampler": "tpe", "search_space": "navi3", "budget": 3, "repeats": 1}
    (run,) = entry["runs"]
    assert entry["captured_share_median"] == entry["captured_share_min"] == run["captured_share"]
    # 3 trials, the selection stage's 3 finalists x 1 fresh seed and the report's 2 replications x 4 patterns
    assert entry["simulations_median"] == run["simulations"] == 3 + 3 * 1 + 2 * 4 and entry["cpu_s"] > 0
    # a pruned trial counts by its days: a 1-day smoke trial is never pruned part-way, so the same 14
    assert entry["simulation_equivalents_median"] == run["simulation_equivalents"] == 14.0
    # the evaluation's own uncertainty, from the candidate's spread against the oracle over the seeds
    assert run["captured_share_se"] is not None and run["captured_share_se"] >= 0
    # the share recomputed from the candidate's revenue and the oracle's per-seed figures
    n = len(oracle["revenue_per_seed"])
    p, o = sum(oracle["production_per_seed"]) / n, sum(oracle["revenue_per_seed"]) / n
    assert run["captured_share"] == pytest.approx((run["revenue"] - p) / (o - p), abs=2e-3)
    # the gap to the oracle on the sweep's own objective (its tuning window and seed), recomputed
    from dataclasses import replace

    from benchmarks.oracle import _simulate, policy_with, windows

    tune = windows([], smoke=True).tune
    cand, best = (_simulate(replace(tune, policy=policy_with(tune.policy, pt)))[0]
                  for pt in (run["params"], oracle["params"]))
    assert run["tuning_vs_oracle_pct"] == pytest.approx(100.0 * (cand / best - 1.0), abs=2e-3)


@pytest.mark.slow
def test_accuracy_refuses_an_oracle_of_other_ranges(smoke_oracle: tuple[Path, Path, dict], tmp_path: Path) -> None:
    """An oracle located in other ranges of its search space is not the attainable optimum of the config's: one
    line, before any sweep, saying how to recompute it."""
    out, _, _ = smoke_oracle
    doc = json.loads(out.read_text())
    assert doc["space"]["policy.max_wait_min"] == "tag(log, interval(1.0, 60.0))"  # what navi3.yaml searches
    doc["space"]["policy.max_wait_min"] = "tag(log, interval(0.3, 30.0))"
    (tmp_path / "o.json").write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, "-m", "experiment.bench", "accuracy", "--smoke", "--oracle",
                           str(tmp_path / "o.json"), "--repeats", "1", "--budgets", "3", "--keep", str(tmp_path / "k")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "other ranges" in proc.stderr and "python -m experiment.bench oracle search_space=navi3" in proc.stderr
    assert not any((tmp_path / "k").glob("*/sweep"))  # nothing swept


@pytest.mark.slow
def test_smoke_accuracy_run_of_the_ax_peer(smoke_oracle: tuple[Path, Path, dict], tmp_path: Path) -> None:
    """Ax through its own API on the sweep's simulation, spending what the default spends (its 3 trials and the
    report's 8); without the bench extra, the configuration is refused in one line (exit 2)."""
    out, _, _ = smoke_oracle
    argv = ["accuracy", "--smoke", "--oracle", str(out), "--configs", "ax", "--repeats", "1", "--budgets", "3",
            "--keep", str(tmp_path / "keep")]
    if importlib.util.find_spec("ax") is None:
        proc = subprocess.run([sys.executable, "-m", "experiment.bench", *argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and "needs ax-platform" in proc.stderr and len(proc.stderr.splitlines()) == 1
        return
    line = _bench(argv)
    (entry,) = line["configs"]
    (run,) = entry["runs"]
    assert entry["name"] == entry["sampler"] == "ax" and entry["search_space"] == "navi3"
    # the default's 3 trials, its selection stage's 3 and its report's 8, all on trials
    assert run["simulations"] == 3 + 3 + 8 and run["candidate_source"] == "optimization_results.yaml"
    peer = json.loads((tmp_path / "keep" / "ax-b3-s1" / "sweep" / "peer.json").read_text())
    assert len(peer["trials"]) == peer["simulations"] == 14 and peer["peer"] == "ax"
    assert run["params"] == pytest.approx(peer["best_params"])
    # a trial is the simulation a sweep's job runs: production's navigation with its values, the tuning window
    from dataclasses import replace

    from benchmarks.oracle import _simulate, policy_with, windows

    tune = windows([], smoke=True).tune
    trial = peer["trials"][-1]
    assert _simulate(replace(tune, policy=policy_with(tune.policy, trial["params"])))[0] == \
        pytest.approx(trial["revenue"], abs=1e-3)
    oracle = json.loads(out.read_text())
    n = len(oracle["revenue_per_seed"])
    p, o = sum(oracle["production_per_seed"]) / n, sum(oracle["revenue_per_seed"]) / n
    assert run["captured_share"] == pytest.approx((run["revenue"] - p) / (o - p), abs=2e-3)


def test_simulation_equivalents_count_a_pruned_trial_by_its_days(tmp_path: Path) -> None:
    import optuna

    from benchmarks.accuracy import simulation_equivalents

    journal = tmp_path / "optuna" / "studies.journal"
    journal.parent.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    done = study.ask()
    for day in range(7):
        done.report(100.0, day)
    study.tell(done, 100.0)
    pruned = study.ask()
    pruned.report(90.0, 0)
    pruned.report(90.0, 1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # a failed job ran: counted whole
    sweep = tmp_path / "sweep"
    for job in ("0", "1", "2"):
        (sweep / job).mkdir(parents=True)
    (sweep / "report.json").write_text(json.dumps({"patterns": [{"replications": 2}] * 4, "selection": None}))
    assert simulation_equivalents(tmp_path, sweep, 7) == pytest.approx(1 + 2 / 7 + 1 + 8)
    assert simulation_equivalents(tmp_path / "nowhere", sweep, 7) is None


def test_convergence_lines_take_median_and_spread_per_budget(tmp_path: Path) -> None:
    from benchmarks.accuracy_plot import entries, lines, plot

    def cfg(name: str, budget: int, sims: int, shares: list[float]) -> dict:
        return {"name": name, "budget": budget, "simulations_median": sims,
                "runs": [{"captured_share": s, "simulations": sims} for s in shares]}

    collection = {"runs": [{"configs": [cfg("default", 30, 50, [0.5, 1.0, 0.9])]},
                           {"configs": [cfg("default", 15, 35, [0.1, -0.2, 0.6]), cfg("tpe-mv", 30, 50, [0.8])]}]}
    got = lines(entries([collection, {"configs": [cfg("default", 60, 80, [0.95, 0.99, 1.02])]}]))
    assert got["default"] == [(35.0, -0.2, 0.1, 0.6), (50.0, 0.5, 0.9, 1.0), (80.0, 0.95, 0.99, 1.02)]
    assert got["tpe-mv"] == [(50.0, 0.8, 0.8, 0.8)]
    # a later measurement of the same budget (--first-seed) is pooled with the earlier one, not put in its place
    more = lines(entries([collection, {"configs": [cfg("tpe-mv", 30, 54, [0.6, 0.7])]}]))
    assert more["tpe-mv"] == [(54.0, 0.6, 0.7, 0.8)]
    png = plot(got, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_stopped_accuracy_bench_leaves_no_sweep_running(smoke_oracle: tuple[Path, Path, dict],
                                                           tmp_path: Path) -> None:
    """SIGTERM to the bench while its sweep runs ends the sweep's whole process group with it (a killed bench
    used to leave its sweep, and the sweep's jobs, running on)."""
    import signal
    import time

    out, _, _ = smoke_oracle
    keep = tmp_path / "keep"
    bench = subprocess.Popen([sys.executable, "-m", "experiment.bench", "accuracy", "--smoke", "--oracle", str(out),
                              "--configs", "default", "--repeats", "1", "--budgets", "30", "--keep", str(keep)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = keep / "default-b30-s1" / "optuna" / "studies.journal"
    deadline = time.monotonic() + 300
    while not (journal.is_file() and journal.stat().st_size > 0):  # the sweep has started its study
        assert bench.poll() is None, "the bench ended before its sweep started"
        assert time.monotonic() < deadline, "the sweep never started"
        time.sleep(0.1)
    pgrep = ["pgrep", "-f", f"paths.outputs={keep / 'default-b30-s1'}"]
    assert subprocess.run(pgrep, capture_output=True).returncode == 0, "no sweep process found while it runs"
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(timeout=60) != 0
    deadline = time.monotonic() + 30
    while subprocess.run(pgrep, capture_output=True).returncode == 0:  # SIGKILL'd: gone within moments
        assert time.monotonic() < deadline, "the sweep outlived the bench"
        time.sleep(0.1)


def test_the_reports_replications_stay_below_the_oracles_test_week_seeds():
    """The report's seeds on the test week are its seed + 0..MAX_REPLICATIONS-1; the oracle's selection and
    reporting seeds sit above them, apart from each other, so no oracle figure reuses a report's noise."""
    from benchmarks.oracle import FULL, REPORTING_OFFSET, SELECTION_OFFSET
    from experiment.report.settings import MAX_REPLICATIONS

    assert MAX_REPLICATIONS <= SELECTION_OFFSET
    assert SELECTION_OFFSET + FULL.test_seeds <= REPORTING_OFFSET


# ------------------------------------------------------------------ bench tuning-seeds: tuning seed or tuning week?
def test_tuning_seeds_arithmetic_and_bad_input(tmp_path: Path) -> None:
    from benchmarks.tuning_seeds import TuningSeedsError, entry_of, gain_pct, parse, read_result, spearman

    assert gain_pct([110.0, 99.0], [100.0, 100.0]) == pytest.approx(4.5)
    assert spearman([0.1, 0.5, 0.9], [1.0, 2.0, 3.0]) == 1.0 and spearman([0.1, 0.5, 0.9], [3, 2, 1]) == -1.0
    assert spearman([0.1, 0.5], [1.0, 2.0]) is None and spearman([0.1, 0.5, 0.9], [1.0, 1.0, 1.0]) is None
    # a committed file of several results (docs/accuracy-*.json) reads as one; each entry keeps its oracle
    run = [{"params": {}}]
    doc = {"about": "x", "runs": [
        {"oracle": {"params": {"a": 1}}, "configs": [{"name": "default", "budget": 30, "runs": run}]},
        {"oracle": {"params": {"a": 1}}, "configs": [{"name": "ax", "budget": 30, "runs": run}]},
        {"oracle": {"params": {"a": 2}}, "configs": [{"name": "select", "budget": 30, "runs": run},
                                                     {"name": "select", "budget": 24, "runs": run}]}]}
    (tmp_path / "many.json").write_text(json.dumps(doc))
    result = read_result(tmp_path / "many.json")
    assert entry_of(result, "ax", None)["name"] == "ax" and entry_of(result, "select", 24)["budget"] == 24
    assert entry_of(result, "select", 30)["_oracle_params"] == {"params": {"a": 2}, "gain_pct": None}
    # --config all pools every entry of one oracle (each row naming its configuration), else one line
    pooled = entry_of(result, "all", 24)
    assert pooled["name"] == "all" and [r["config"] for r in pooled["runs"]] == ["select@24"]
    held = "allowed: ax@30, default@30, select@24, select@30"
    for call, words in [(lambda: entry_of(result, "gp", None), "no configuration gp in the result; " + held),
                        (lambda: entry_of(result, None, 30), "needs --config (and --budget); " + held),
                        (lambda: entry_of(result, "select", None), "more than one configuration select"),
                        (lambda: read_result(tmp_path / "none.json"), "no bench accuracy result"),
                        (lambda: parse([]), "no RESULT given; allowed"),
                        (lambda: parse(["r.json", "--frob"]), "unknown option '--frob'; allowed"),
                        (lambda: parse(["r.json", "--help"]), "unknown option '--help'; allowed"),
                        (lambda: parse(["r.json", "--seeds", "0"]), "invalid --seeds '0'; allowed: a whole number in [1, 256]"),
                        (lambda: parse(["r.json", "--seeds", "x"]), "invalid --seeds 'x'; allowed"),
                        (lambda: parse(["r.json", "--workers", "99"]), "invalid --workers '99'; allowed"),
                        (lambda: parse(["r.json", "--days", "8"]), "invalid --days '8'; allowed: a whole number in [1, 7]"),
                        (lambda: entry_of(result, "all", 30), "--config all needs entries measured against one oracle"),
                        (lambda: entry_of(result, "all", 99), "no configuration at budget 99 in the result; allowed")]:
        with pytest.raises(TuningSeedsError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert parse(["r.json"]).oracle == ROOT / "docs" / "oracle-navi3.json"  # wherever it is run from
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(TuningSeedsError, match="not a bench accuracy result"):
        read_result(tmp_path / "bad.json")


def recorded_runs(oracle_params: dict, shares: list[float], smoke: bool = True) -> list[dict]:
    """Recorded sweeps whose candidates sit at the oracle's point, at production's and halfway between (as many as
    ``shares``), each with the recorded share given: what bench accuracy writes, for the benches that read it."""
    from benchmarks.oracle import production_point, windows

    prod = production_point(windows([], smoke=smoke).tune.policy, oracle_params)
    mid = {k: (oracle_params[k] + prod[k]) / 2 for k in prod}
    return [{"seed": i + 1, "captured_share": share, "params": params}
            for i, (share, params) in enumerate(zip(shares, [oracle_params, prod, mid]))]


@pytest.mark.slow
def test_smoke_tuning_seeds_scores_the_oracle_1_and_production_0(smoke_oracle: tuple[Path, Path, dict],
                                                                 tmp_path: Path) -> None:
    """Candidates at the oracle's point and at production's capture exactly 1 and 0 of the oracle's gain on the
    fresh tuning seeds (the same simulations, common random numbers); a third lies wherever the model puts it."""
    out, _, _ = smoke_oracle
    oracle = json.loads(out.read_text())
    runs = recorded_runs(oracle["params"], [1.0, 0.0, 0.5])
    result = tmp_path / "acc.json"
    result.write_text(json.dumps({"default": "default", "configs": [{"name": "default", "budget": 3, "runs": runs}]}))
    # a result measured against another oracle is refused in one line, before any simulation
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"oracle": {"params": {"policy.gamma": 0.5}}, "default": "default",
                                 "configs": [{"name": "default", "budget": 3, "runs": runs}]}))
    proc = subprocess.run([sys.executable, "-m", "experiment.bench", "tuning-seeds", str(other), "--oracle", str(out),
                           "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "measured against another oracle" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # shorter runs than the tuning window's days do not exist: one line, before any simulation
    proc = subprocess.run([sys.executable, "-m", "experiment.bench", "tuning-seeds", str(result), "--oracle", str(out),
                           "--smoke", "--days", "2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "bench tuning-seeds: invalid --days 2; allowed: a divisor of the tuning window's 1 days (1)")
    line = _bench(["tuning-seeds", str(result), "--oracle", str(out), "--smoke", "--seeds", "2",
                   "--out", str(tmp_path / "ts.json")])
    assert line == json.loads((tmp_path / "ts.json").read_text())
    assert line["seeds"] == [line["window"]["seed"] + 200, line["window"]["seed"] + 201]
    assert line["simulations"] == 5 * 2 and line["config"] == "default"
    shares = [r["tuning_fresh_share"] for r in line["runs"]]
    if line["oracle_tuning_fresh_gain_pct"] > 0:
        assert shares[0] == pytest.approx(1.0) and shares[1] == pytest.approx(0.0)
        assert line["runs"][0]["tuning_fresh_gain_pct"] == pytest.approx(line["oracle_tuning_fresh_gain_pct"], abs=1e-3)
    else:  # no gain to share on these two tiny seeds: said as None, never a division by zero
        assert shares[0] is None and line["spearman_captured_vs_tuning_fresh"] is None
    assert line["runs"][1]["tuning_fresh_gain_pct"] == 0.0
    # the oracle's own shortfall to itself is 0 on every seed: no spread
    assert line["runs"][0]["tuning_fresh_sd_vs_oracle_pct"] == 0.0 and line["runs"][1]["tuning_fresh_sd_vs_oracle_pct"] >= 0


# ------------------------------------------------------------------ bench rescore: recorded candidates, a new oracle
def test_rescore_bad_input_and_refusals(tmp_path: Path) -> None:
    from benchmarks.rescore import RescoreError, check_candidates, parse, read_document

    for argv, words in [([], "no RESULT given; allowed"),
                        (["r.json"], "no --out FILE given; allowed"),
                        (["r.json", "--out", str(tmp_path / "no" / "o.json")], "invalid --out"),
                        (["r.json", "--out", "o.json", "--frob"], "unknown option '--frob'; allowed"),
                        (["r.json", "--out", "o.json", "--workers", "0"], "invalid --workers '0'; allowed")]:
        with pytest.raises(RescoreError) as err:
            parse(argv)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert parse(["r.json", "--out", "o.json"]).oracle == ROOT / "docs" / "oracle-navi3.json"
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(RescoreError, match="not a bench accuracy result"):
        read_document(tmp_path / "bad.json")
    with pytest.raises(RescoreError, match="no bench accuracy result at"):
        read_document(tmp_path / "none.json")
    # a file of several results reads as its results, the same objects (rescored in place)
    doc = {"about": "x", "runs": [{"configs": []}, {"configs": []}]}
    (tmp_path / "many.json").write_text(json.dumps(doc))
    read, results = read_document(tmp_path / "many.json")
    assert read == doc and results[0] is read["runs"][0] and len(results) == 2
    oracle = {"search_space": "navi3", "space": {"policy.gamma": "interval(0.85, 0.99)",
                                                 "policy.max_wait_min": "tag(log, interval(1.0, 60.0))"}}
    inside = {"policy.gamma": 0.9, "policy.max_wait_min": 28.0}

    def result(params: dict, space: str = "navi3", runs: bool = True) -> list[dict]:
        return [{"configs": [{"name": "default", "budget": 27, "search_space": space,
                              "runs": [{"seed": 3, "params": params}] if runs else []}]}]

    check_candidates(result(inside), oracle)  # nothing to say
    for results, words in [
            (result(inside, space="navi6"), "default@27 searched search_space=navi6; allowed: configurations of the "
                                            "oracle's, navi3"),
            (result(inside | {"policy.gamma": 0.6}), "default@27 sampler seed 3 chose policy.gamma=0.6, outside the "
                                                     "oracle's range [0.85, 0.99]"),
            (result({"policy.gamma": 0.9}), "records no candidate of policy.gamma, policy.max_wait_min"),
            (result(inside, runs=False), "default@27 records no sweeps"),
            (result(inside | {"policy.gamma": None}), "chose policy.gamma=None, outside the oracle's range")]:
        with pytest.raises(RescoreError) as err:
            check_candidates(results, oracle)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.slow
def test_smoke_rescore_measures_recorded_candidates_against_the_oracle(smoke_oracle: tuple[Path, Path, dict],
                                                                       tmp_path: Path) -> None:
    """Candidates at the oracle's point and at production's capture exactly 1 and 0 on the oracle's reporting seeds;
    a rescored file rescores to the same figures (its candidates rebuild exactly); a recorded revenue the rebuilt
    candidate does not earn is refused in one line, and nothing is written."""
    out, _, _ = smoke_oracle
    oracle = json.loads(out.read_text())
    runs = recorded_runs(oracle["params"], [0.9, 0.1, 0.5])
    first = tmp_path / "acc.json"
    first.write_text(json.dumps({"about": "three sweeps", "runs": [
        {"oracle": {"gain_pct": 9.9}, "default": "default",
         "configs": [{"name": "default", "budget": 3, "search_space": "navi3", "runs": runs}]}]}))
    cache = tmp_path / "cache"
    line = _bench(["rescore", str(first), "--oracle", str(out), "--smoke", "--out", str(tmp_path / "r1.json"),
                   "--cache-dir", str(cache)])
    doc = json.loads((tmp_path / "r1.json").read_text())
    assert doc["about"] == "three sweeps"  # the document is kept, its results rescored
    result = doc["runs"][0]
    rows = result["configs"][0]["runs"]
    assert [r["captured_share"] for r in rows[:2]] == [1.0, 0.0]
    assert [r["captured_share_before"] for r in rows] == [0.9, 0.1, 0.5]
    assert rows[0]["tuning_vs_oracle_pct"] == 0.0 and rows[0]["captured_share_se"] == 0.0
    assert result["evaluation"]["seeds"] == oracle["seeds"]["reporting"]
    assert result["oracle"]["gain_pct"] == oracle["gain_pct"] and result["rescored"]["before"]["oracle_gain_pct"] == 9.9
    assert line["configs"][0]["captured_share_min"] == 0.0
    assert line["configs"][0]["before"] == {"median": None, "min": None}  # the fixture recorded none
    assert [r["rebuilt_verified"] for r in rows] == [False] * 3 and line["unverified"] == 3  # no revenue recorded
    assert result["oracle_before"] == {"gain_pct": 9.9}
    # each candidate on every reporting seed and the tuning seed, and the oracle on the tuning seed: one of the
    # candidates is the oracle's point, the same simulation there (counted once)
    assert line["simulations"] == 3 * (len(oracle["seeds"]["reporting"]) + 1)
    # again, in place on its own output: every candidate rebuilds to its recorded revenue, the same shares, all
    # cached; what was before the first rescore is kept, not replaced by the first rescore's figures
    shutil.copy(tmp_path / "r1.json", tmp_path / "r2.json")
    again = _bench(["rescore", str(tmp_path / "r2.json"), "--oracle", str(out), "--smoke", "--out",
                    str(tmp_path / "r2.json"), "--cache-dir", str(cache)])
    assert again["simulations_this_run"] == 0 and again["unverified"] == 0
    second = json.loads((tmp_path / "r2.json").read_text())["runs"][0]
    assert [r["captured_share"] for r in second["configs"][0]["runs"]] == [r["captured_share"] for r in rows]
    assert [r["captured_share_before"] for r in second["configs"][0]["runs"]] == [0.9, 0.1, 0.5]
    assert [r["rebuilt_verified"] for r in second["configs"][0]["runs"]] == [True] * 3
    assert second["oracle_before"] == {"gain_pct": 9.9} and second["rescored"]["before"]["oracle_gain_pct"] == 9.9
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    # a recorded revenue its params do not earn: refused in one line, before anything is written
    rows[2]["revenue"] += 1.0
    (tmp_path / "r1.json").write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, "-m", "experiment.bench", "rescore", str(tmp_path / "r1.json"), "--oracle",
                           str(out), "--smoke", "--out", str(tmp_path / "r3.json"), "--cache-dir", str(cache)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    refusal = proc.stderr.strip().splitlines()[-1]  # after the progress lines, the refusal's own one line
    assert proc.returncode == 2 and refusal.startswith("navitune bench rescore: default@3 sampler seed 3: the rebuilt "
                                                       "candidate earns"), proc.stderr
    assert not (tmp_path / "r3.json").exists()


@pytest.mark.slow
def test_tuning_seeds_one_day_runs_score_the_oracle_1_and_production_0(tmp_path: Path) -> None:
    """``--days 1`` on the full tuning week (one-day runs, 1,000 drivers: seconds): candidates at the committed
    oracle's point and at production's capture exactly 1 and 0 of the oracle's gain on those runs (common random
    numbers, whichever weekday each run starts on)."""
    oracle = json.loads((ROOT / "docs" / "oracle-navi3.json").read_text())
    runs = recorded_runs(oracle["params"], [1.0, 0.0], smoke=False)
    result = tmp_path / "acc.json"
    result.write_text(json.dumps({"default": "default", "configs": [{"name": "default", "budget": 3, "runs": runs}]}))
    line = _bench(["tuning-seeds", str(result), "--days", "1", "--seeds", "3"])
    assert line["days"] == 1 and line["simulations"] == 4 * 3 and line["seeds"] == [201, 202, 203]
    shares = [r["tuning_fresh_share"] for r in line["runs"]]
    if line["oracle_tuning_fresh_gain_pct"] > 0:
        assert shares == [pytest.approx(1.0), pytest.approx(0.0)]
    else:  # no gain on these three days: said as None
        assert shares == [None, None]
    assert line["runs"][1]["tuning_fresh_gain_pct"] == 0.0
