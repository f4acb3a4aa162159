"""``python -m experiment.bench decision`` (issue 22 §2): its small mode end to end on the smoke window, the path
and interpolation that place the challengers, and bad arguments as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiment.bench", "decision", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_the_path_and_the_interpolation_place_each_level() -> None:
    from benchmarks.decision import interpolate, path_point
    from benchmarks.oracle import Dim

    dims = [Dim("policy.gamma", 0.6, 0.995), Dim("policy.max_wait_min", 0.3, 30.0, log=True)]
    worse, best = {"policy.gamma": 0.9, "policy.max_wait_min": 3.0}, {"policy.gamma": 0.93, "policy.max_wait_min": 30.0}
    assert path_point(dims, worse, best, 0.0) == pytest.approx(worse)
    assert path_point(dims, worse, best, 1.0) == pytest.approx(best)
    half = path_point(dims, worse, best, 0.5)
    assert half["policy.gamma"] == pytest.approx(0.915) and half["policy.max_wait_min"] == pytest.approx(30 ** 0.5 * 3 ** 0.5)
    ts, gains = [0.0, 0.5, 1.0], [-0.4, 0.2, 0.8]
    assert interpolate(ts, gains, 0.0) == pytest.approx(1 / 3)
    assert interpolate(ts, gains, 0.5) == pytest.approx(0.75)
    assert interpolate(ts, gains, 2.0) == 1.0  # out of reach: the nearest end
    assert interpolate([0.0, 0.5, 1.0], [0.0, 0.9, 0.8], 0.85) == pytest.approx(0.5 * 0.85 / 0.9)  # the first crossing


@pytest.mark.slow
def test_the_small_mode_decides_every_level_and_counts_what_it_spent(tmp_path: Path) -> None:
    out = tmp_path / "decision.json"
    proc = bench("--smoke", "--out", str(out), "--decisions", "3", "--levels=-0.5,1", "--max-replications", "6",
                 "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    result = json.loads(out.read_text())
    assert summary["procedures"] == result["procedures"]
    procedures = {p["name"]: p["levels"] for p in result["procedures"]}
    assert set(procedures) == {"fixed-5", "sequential"}
    for name, levels in procedures.items():
        assert len(levels) == 2
        for level in levels:
            rates = level["promote_rate"] + level["reject_rate"] + level["undecided_rate"]
            assert rates == pytest.approx(1.0) and all(level[k] * 3 == round(level[k] * 3) for k in
                                                       ("promote_rate", "reject_rate", "undecided_rate"))
    assert all(level["mean_simulations"] == 20.0 for level in procedures["fixed-5"])
    assert all(16.0 <= level["mean_simulations"] <= 24.0 for level in procedures["sequential"])  # looks at 4, 5 and 6
    assert result["design"]["planned_looks"] == [4, 5, 6] and result["decisions_per_level"] == 3
    assert [row["truth_seeds_per_source"] for row in result["levels"]] == [15, 15]  # 3 decisions x 5 replications
    assert result["window"]["name"] == "smoke" and result["smoke"] is True
    # a second run computes nothing again: every simulation comes from the cache
    again = bench("--smoke", "--out", str(out), "--decisions", "3", "--levels=-0.5,1", "--max-replications", "6",
                  "--cache-dir", str(tmp_path / "cache"))
    assert again.returncode == 0 and json.loads(out.read_text())["simulations_this_run"] == 0


@pytest.mark.parametrize("args, words", [
    (["--decisions", "0"], "invalid --decisions '0'; allowed: a whole number in [1, 10000]"),
    (["--levels", "a,b"], "allowed: numbers (per cent)"),
    (["--max-replications", "3"], "invalid --max-replications '3'; allowed: a whole number in [5, 200]"),
    (["--smoke"], "--smoke needs --out FILE outside docs/"),
    (["--frobnicate"], "unknown argument '--frobnicate'"),
    (["--levels", "-0.5,1"], "--levels: expected one argument (a list starting with a minus: --levels=-0.5,0,1)"),
])
def test_bad_arguments_are_one_line(args: list[str], words: str) -> None:
    proc = bench(*args, timeout=120)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr
