"""``python -m experiment.bench kfp-scale``, in a tiny version: the contract keys, sane values, counts that add up.

The bench starts its own MariaDB and runs the real sweeper against the executing KFP stand-in (socat sidecars),
so without MariaDB or socat it skips locally and fails on CI (``CI=true``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.services import unavailable

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ("in_flight", "trials_per_min", "ideal_trials_per_min", "utilisation", "sweeper_cpu_core_frac",
            "api_requests_per_min", "db_connections_peak", "prune_latency_ms_median")


def _bench(*options: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVITUNE_", "HYDRA_"))}
    return subprocess.run([sys.executable, "-m", "experiment.bench", "kfp-scale", *options], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout_s)


def test_a_bad_option_is_one_line_and_exit_2() -> None:
    proc = _bench("levels=5,zero", timeout_s=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["kfp-scale: bad levels='5,zero'; allowed: comma-separated whole numbers 1..200"]
    proc = _bench("speed=3", timeout_s=60)
    assert proc.returncode == 2 and "unknown option 'speed=3'" in proc.stderr and "levels=..." in proc.stderr


@pytest.mark.slow
def test_a_tiny_scale_run_reports_every_level_with_figures_that_add_up() -> None:
    for tool in ("socat", "mariadbd", "mariadb-install-db"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/usr/local/sbin:/sbin") is None:
            unavailable("kfp-scale bench", f"{tool} not found")
    proc = _bench("levels=2,3", "waves=2", "slot_s=1.5", "poll_interval=0.3", "days=3")
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [lv["in_flight"] for lv in result["levels"]] == [2, 3]
    for lv in result["levels"]:
        assert all(lv[k] is not None for k in CONTRACT), lv
        level, n = lv["in_flight"], lv["n_trials"]
        assert n == 2 * level
        # every trial ran one job, which wrote its record; the study holds exactly n finished trials
        assert lv["job_records"] == n
        finished = lv["study_trials"].get("COMPLETE", 0) + lv["study_trials"].get("PRUNED", 0)
        assert finished == n and lv["study_trials"].get("PRUNED", 0) == lv["pruned"]
        # one create per launched trial; every request counted once
        calls = lv["api_requests"]
        assert calls["create"] == sum(lv["study_trials"].values())
        assert calls["create"] + calls["get_run"] + calls["list_runs"] <= calls["total"]
        assert lv["api_requests_per_min"] == pytest.approx(calls["total"] / (lv["sweeper_wall_s"] / 60), rel=0.02)
        # rates and shares in their ranges
        assert 0 < lv["utilisation"] <= 1.0 + 1e-9
        assert 0 < lv["trials_per_min"] and 0 < lv["ideal_trials_per_min"]
        assert lv["ideal_trials_per_min"] == pytest.approx(level * 60 / lv["mean_job_s"], rel=0.02)
        assert 0 < lv["sweeper_cpu_core_frac"] < 2.0
        assert lv["db_connections_peak"] >= 2  # the bench's monitor and at least the sweeper's
        assert 0 < lv["prune_latency_ms_median"] < 10_000
