"""``python -m experiment.bench retune`` (issue 13 §5): a year of re-tuning cycles against parameters tuned once and
frozen, and production.

* bad input is one line (exit 2) before any cycle runs;
* the evaluation's replications are the same for every policy (common random numbers) and clear of every
  cycle's tuning and test seeds;
* (slow) a tiny year (2 cycles of 14 days, a tiny fleet, 4 trials) prints one JSON line with every key, counts
  that add up, intervals that bracket their means, the first period's re-tuned == frozen, and the plot.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.hindsight import HindsightBudget, captured_share, selection_seed
from benchmarks.retune import (EVAL_SEED_OFFSET, BenchError, Settings, parse, period_row, preflight, Cycle,
                                     replications)
from experiment.report.settings import MAX_REPLICATIONS
from experiment.windows import TEST_SEED_OFFSET, cycle_seed

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("uplift_vs_frozen_pct", "uplift_vs_frozen_ci95", "uplift_vs_production_pct", "uplift_vs_production_ci95",
        "promotions", "rejections", "undecided", "wrong_promotions", "scenario", "wall_s",
        "best_fixed_vs_frozen_pct", "per_period_oracle_vs_frozen_pct", "per_period_oracle_vs_best_fixed_pct",
        "captured_share_of_drift", "captured_share_of_drift_proper", "cycles_read_back")


@pytest.mark.parametrize("args, words", [
    (["bench.cycles=1"], "bench.cycles=1"),
    (["bench.period_days=10"], "bench.period_days=10"),
    (["bench.start=2026-02-30"], "bench.start"),
    (["bench.nope=1"], "unknown setting bench.nope"),
    (["window.as_of=2026-01-01"], "window.as_of is set by the bench"),
    (["policy.gamma=0.5"], "policy.gamma is set by the bench"),
    (["tracking=off"], "tracking is set by the bench"),
    (["gamma"], "invalid override 'gamma'"),
    (["--fast"], "unknown option '--fast'"),
    (["bench.resume=true"], "bench.resume=True"),
    (["bench.resume=maybe"], "bench.resume='maybe'"),
    (["bench.hindsight_points=12"], "bench.hindsight_points=12"),
    (["bench.hindsight_points=4"], "a power of 2 in [8, 1024]"),
])
def test_bad_bench_input_is_one_line(args, words):
    with pytest.raises(BenchError) as err:
        parse(args)
    text = str(err.value)
    assert words in text and "\n" not in text and "allowed" in text


def test_bench_overrides_pass_through_and_window_sizes_are_free():
    settings, overrides, json_path, plot_path = parse(
        ["scenario=stationary", "window.drivers=300", "bench.cycles=3", "--json", "x.json", "hydra.sweeper.n_trials=5"])
    assert (settings.cycles, json_path, plot_path) == (3, "x.json", None)
    assert overrides == ["scenario=stationary", "window.drivers=300", "hydra.sweeper.n_trials=5"]


def test_unknown_scenario_through_the_cli_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiment.bench", "retune", "scenario=winter",
                           f"bench.outputs={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "navitune: unknown scenario 'winter'; allowed: drifting, stationary"
    assert proc.stdout == ""
    assert not (tmp_path / "out" / "mlflow.db").exists()  # nothing ran


def test_evaluation_replications_are_common_and_clear_of_the_cycles_seeds():
    s = Settings(cycles=13, period_days=28, eval_seeds=2).check()
    first = replications(s, s.as_of(0))
    assert len(first) == 8 and len({seed for _, seed in first}) == 8
    assert [w for w, _ in first[::2]] == [s.as_of(0) + dt.timedelta(days=7 * i) for i in range(4)]
    cycle_seeds = set()
    for k in range(s.cycles + 1):
        base = cycle_seed(s.as_of(k))
        cycle_seeds |= {base} | {base + TEST_SEED_OFFSET + r for r in range(EVAL_SEED_OFFSET - TEST_SEED_OFFSET)}
    every = [seed for k in range(s.cycles) for _, seed in replications(s, s.as_of(k))]
    assert not cycle_seeds & set(every) and len(set(every)) == len(every)
    # the report's most replications fit below the evaluation seeds, and the hindsight's selection seeds clash
    # with neither (a week start is a cycle's as_of when it starts a period)
    assert TEST_SEED_OFFSET + MAX_REPLICATIONS <= EVAL_SEED_OFFSET
    weeks = {w for k in range(s.cycles) for w, _ in replications(s, s.as_of(k))}
    selection = {selection_seed(w, r) for w in weeks for r in range(HindsightBudget().seeds)}
    assert not selection & (cycle_seeds | set(every))
    most = Settings(cycles=13, period_days=28, eval_seeds=20).check()  # bench.eval_seeds' largest value
    assert not selection & {seed for k in range(13) for _, seed in replications(most, most.as_of(k))}
    # every policy of a period gets these same (week, seed) pairs: the list depends on the period only
    assert replications(s, s.as_of(3)) == replications(s, s.as_of(3))


def test_a_wrong_promotion_needs_the_interval_below_zero():
    s = Settings(cycles=2, period_days=14, eval_seeds=2).check()
    policy = {"gamma": 0.9, "max_wait_min": 3.0, "road_weights": {"right": 2.0}}
    cycle = Cycle("2026-01-05", "promoted", True, 2, 1, 2, "d", 1.0)
    flat = {"frozen": [100.0] * 4, "production": [100.0] * 4}
    losing = period_row(0, s, cycle, {**flat, "retuned": [98.0, 97.5, 98.2, 97.9], "replaced": [100.0] * 4},
                        dict.fromkeys(("retuned", "frozen", "production", "replaced"), policy), {})
    noisy = period_row(0, s, cycle, {**flat, "retuned": [98.0, 103.0, 96.0, 101.0], "replaced": [100.0] * 4},
                       dict.fromkeys(("retuned", "frozen", "production", "replaced"), policy), {})
    assert losing["wrong_promotion"] is True and losing["promoted_vs_replaced"]["ci95"][1] < 0
    assert noisy["wrong_promotion"] is False and noisy["promoted_vs_replaced"]["pct"] < 0


@pytest.mark.slow
def test_a_tiny_year_prints_every_key_and_counts_add_up(tmp_path):
    out = tmp_path / "bench.json"
    png = tmp_path / "retune.png"
    argv = [sys.executable, "-m", "experiment.bench", "retune", "bench.cycles=2", "bench.period_days=14",
            "bench.eval_seeds=1", f"bench.outputs={tmp_path / 'outputs'}", "window.drivers=80", "window.max_shift_h=6",
            "window.tune_days=2", "window.test_days=2", "hydra.sweeper.n_trials=4",
            "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed", "bench.hindsight_points=8"]
    proc = subprocess.run([*argv, "--json", str(out), "--plot", str(png)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(k in result for k in KEYS)
    assert result["scenario"] == "drifting" and result["cycles"] == 2
    assert result["promotions"] + result["rejections"] + result["undecided"] + result["not_promoted_otherwise"] \
        == result["cycles"]
    assert result["promotions"] == sum(o == "promoted" for o in result["outcomes"])
    assert 0 <= result["wrong_promotions"] <= result["promotions"]
    for key in ("uplift_vs_frozen", "uplift_vs_production"):
        lo, hi = result[f"{key}_ci95"]
        assert lo <= result[f"{key}_pct"] <= hi
    assert result["wall_s"] > 0 and len(result["cycle_wall_s"]) == 2
    periods = json.loads(out.read_text())["periods"]
    assert [p["start"] for p in periods] == ["2026-01-05", "2026-01-19"]
    first = periods[0]
    assert first["per_replication_yen"]["retuned"] == first["per_replication_yen"]["frozen"]
    assert first["versions"]["retuned"] == first["versions"]["frozen"]
    assert first["retuned_vs_frozen"] == {"pct": 0.0, "ci95": [0.0, 0.0]}
    for p in periods:
        assert len(p["per_replication_yen"]["production"]) == 2  # 2 weeks x 1 seed
        assert all(v > 0 for v in p["per_replication_yen"]["production"])
        assert ("replaced" in p["revenue_yen"]) == p["cycle"]["promoted"]
    # the mean over periods is the mean of the periods' uplifts
    assert result["uplift_vs_frozen_pct"] == pytest.approx(
        sum(p["retuned_vs_frozen"]["pct"] for p in periods) / 2, abs=1e-3)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    # the hindsight references: on the same replications as the others, and the year's figures are their means
    for role in ("best_fixed", "period_oracle"):
        assert all(len(p["per_replication_yen"][role]) == 2 for p in periods)
        assert result[f"{'best_fixed' if role == 'best_fixed' else 'per_period_oracle'}_vs_frozen_pct"] == \
            pytest.approx(sum(p[f"{role}_vs_frozen"]["pct"] for p in periods) / 2, abs=1e-3)
    assert all(p["params"]["best_fixed"] == periods[0]["params"]["best_fixed"] for p in periods)
    assert result["per_period_oracle_vs_best_fixed_pct"] == pytest.approx(
        sum(p["period_oracle_vs_best_fixed"]["pct"] for p in periods) / 2, abs=1e-3)
    assert result["hindsight"]["candidates"] >= 8 + 1  # the design and production (champions may coincide)
    assert result["settings"]["n_trials"] == 4 and result["settings"]["report"]["rule"] == "fixed"
    share = captured_share([p["retuned_vs_frozen"]["pct"] for p in periods],
                           [p["period_oracle_vs_frozen"]["pct"] for p in periods], 0.5)
    assert result["captured_share_of_drift"] == share["share"] and result["captured_share_note"] == share["note"]
    assert result["met"]["captured_share_of_drift"] == (None if share["share"] is None else share["share"] >= 0.5)
    assert result["cycles_read_back"] == 0
    # each cycle ran on its own rolling window and left its decision
    for p in periods:
        assert Path(p["cycle"]["sweep_dir"]).is_dir()

    # the same directory again: a used directory is refused (one line) unless resumed; resumed, no cycle runs
    # again and the evaluation (same seeds, same champions) gives the same figures
    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "bench.resume=true" in again.stderr and "\n" not in again.stderr.strip()
    resumed = subprocess.run([*argv, "bench.resume=true", "--json", str(tmp_path / "again.json")], cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    second = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert second["outcomes"] == result["outcomes"] and second["champion_versions"] == result["champion_versions"]
    assert json.loads((tmp_path / "again.json").read_text())["periods"][1]["per_replication_yen"] == \
        periods[1]["per_replication_yen"]
    assert len(list((tmp_path / "outputs" / "logs").glob("cycle_*.log"))) == 2  # no cycle ran twice
    assert "simulations to run" not in resumed.stderr  # the hindsight search came from its cache
    assert second["cycles_read_back"] == 2 and second["cycle_wall_s"] == result["cycle_wall_s"]
    assert second["best_fixed_vs_frozen_pct"] == result["best_fixed_vs_frozen_pct"]


def test_a_space_the_hindsight_cannot_search_is_one_line_before_the_year(tmp_path):
    settings, overrides, _, _ = parse(["hydra.sweeper.params.policy.gamma=choice(0.9,0.95)"])
    with pytest.raises(BenchError) as err:
        preflight(settings, overrides, tmp_path)
    text = str(err.value)
    assert "policy.gamma" in text and "bench.hindsight_points=0" in text and "\n" not in text
    # without the hindsight search the same space is the sweep's business, and passes
    off, overrides, _, _ = parse(["hydra.sweeper.params.policy.gamma=choice(0.9,0.95)", "bench.hindsight_points=0"])
    preflight(off, overrides, tmp_path)


def test_the_plot_redraws_from_a_benchs_json(tmp_path):
    out = tmp_path / "retune.png"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.retune_plot", str(ROOT / "docs" / "retune-drifting.json"),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 30_000
