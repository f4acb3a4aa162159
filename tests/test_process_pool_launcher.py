"""The ``process_pool`` launcher: Hydra's own launcher conformance suites, plus crash isolation,
concurrency and the Future-based ``submit`` an asynchronous sweeper uses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)

from hydra_plugins.navitune_process_pool.process_pool_launcher import ProcessPoolLauncher

Plugins.instance()  # discovery before the suites run (test order otherwise breaks it)


def test_discovered_by_hydra() -> None:
    assert ProcessPoolLauncher.__name__ in [c.__name__ for c in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize("launcher_name, overrides", [("process_pool", [])])
class TestProcessPoolLauncher(LauncherTestSuite):
    """Hydra's LauncherTestSuite."""


@pytest.mark.parametrize("launcher_name, overrides", [("process_pool", ["hydra.sweeper.max_batch_size=2"])])
class TestProcessPoolLauncherBatched(BatchedSweeperTestSuite):
    """Hydra's BatchedSweeperTestSuite (the basic sweeper, batches of 2)."""


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": [{"override hydra/launcher": "process_pool"}, "_self_"]}, ["-m"])],
)
class TestProcessPoolLauncherIntegration(IntegrationTestSuite):
    """Hydra's IntegrationTestSuite: real applications started as processes."""


# ---------------------------------------------------------------------------------- our own promises
APP = '''
import os, sys, time
import hydra
from omegaconf import DictConfig

@hydra.main(config_path=None, config_name=None, version_base=None)
def task(cfg: DictConfig) -> float:
    mode = cfg.get("mode", "ok")
    if mode == "exit":
        os._exit(3)           # a hard crash: no exception, no result
    if mode == "raise":
        raise ValueError("simulated failure")
    gate = cfg.get("gate")
    if gate:  # held: mark this job as in its task, wait (bounded) for the test to open the gate
        run = os.path.join(gate, "running")
        os.makedirs(run, exist_ok=True)
        open(os.path.join(run, str(cfg.x)), "w").close()
        in_task = len(os.listdir(run))  # this job and the others in their task right now
        deadline = time.monotonic() + 60.0
        while not os.path.exists(os.path.join(gate, "open")) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.unlink(os.path.join(run, str(cfg.x)))
    else:
        in_task = 0
    with open(os.path.join(cfg.out, f"{cfg.x}.pid"), "w") as fh:
        fh.write(f"{os.getpid()} {in_task}")
    return float(cfg.x) ** 2

if __name__ == "__main__":
    task()
'''


def run_app(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    app = tmp_path / "app.py"
    app.write_text(APP)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    cmd = [sys.executable, str(app), "-m", "hydra/launcher=process_pool", f"+out={out}",
           f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)


def _wait_for(condition, what: str, proc: subprocess.Popen, deadline_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds (the sweep must still run meanwhile); fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert proc.poll() is None, f"the sweep ended while waiting for {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_each_job_in_its_own_process_and_n_jobs_at_a_time(tmp_path: Path) -> None:
    """n_jobs=2: the jobs hold in their task until the test opens a gate. Two are in their task at once (seen,
    not inferred from timestamps), and a third, set up ahead, does not enter its task while they hold; each
    job counts the jobs in their task when it enters, and none ever saw more than two."""
    app = tmp_path / "app.py"
    app.write_text(APP)
    out, gate = tmp_path / "out", tmp_path / "gate"
    out.mkdir()
    running = gate / "running"
    cmd = [sys.executable, str(app), "-m", "hydra/launcher=process_pool", f"+out={out}", f"+gate={gate}",
           f"hydra.sweep.dir={tmp_path / 'sweep'}", "+x=1,2,3,4", "hydra.launcher.n_jobs=2",
           "hydra.launcher.prepare_ahead=1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(lambda: running.exists() and len(list(running.iterdir())) >= 2, "two jobs in their task", proc)
        # the third job is set up ahead (its .hydra files written last, just before it waits for a slot) ...
        third = tmp_path / "sweep" / "2" / ".hydra" / "overrides.yaml"
        _wait_for(third.exists, "the third job to be set up ahead", proc)
        assert len(list(running.iterdir())) == 2  # ... and waits: the two slots are taken
        (gate / "open").touch()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err
    stamps = [(out / f"{x}.pid").read_text().split() for x in (1, 2, 3, 4)]
    pids = {int(p) for p, _ in stamps}
    assert len(pids) == 4 and os.getpid() not in pids  # one fresh process per job
    assert max(int(n) for _, n in stamps) == 2, stamps  # never more than n_jobs in their task


@contextmanager
def composed(tmp_path: Path, config_yaml: str) -> Iterator[tuple[Any, Any]]:
    """(config, HydraContext) of a tiny app composed in this process, as a launcher's ``setup`` gets them."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(config_yaml)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf)):
            cfg = compose("config", overrides=[f"hydra.sweep.dir={tmp_path / 'sweep'}"], return_hydra_config=True)
            ctx = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks())
            setup_globals()
            yield cfg, ctx
    finally:
        GlobalHydra.instance().clear()


def test_a_crashing_job_fails_alone(tmp_path: Path) -> None:
    """os._exit in one job: that job fails with its exit code, the others still finish."""
    with composed(tmp_path, "x: 0\nmode: ok\nout: .\n") as (cfg, ctx):
        gate = tmp_path / "open"

        def task(c):
            if c.mode == "hold":  # until the test opens the gate (bounded)
                deadline = time.monotonic() + 60.0
                while not gate.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            if c.mode == "exit":
                os._exit(3)
            if c.mode == "raise":
                raise ValueError("simulated failure")
            return c.x * 10

        launcher = ProcessPoolLauncher(n_jobs=2)
        launcher.setup(hydra_context=ctx, task_function=task, config=cfg)
        rets = launcher.launch([["x=1"], ["x=2", "mode=exit"], ["x=3", "mode=raise"], ["x=4"]], 0)
        assert [r.status for r in rets] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.FAILED, JobStatus.COMPLETED]
        assert rets[0].return_value == 10 and rets[3].return_value == 40
        with pytest.raises(RuntimeError, match="exited with code 3"):
            rets[1].return_value
        with pytest.raises(ValueError, match="simulated failure"):
            rets[2].return_value

        # submit(): a Future per job; the fast one finishes while the held one still runs in the other slot
        held = launcher.submit(["x=5", "mode=hold"], 10)
        fast = launcher.submit(["x=6"], 11)
        assert fast.result(timeout=60).return_value == 60
        assert not held.done()  # it cannot end before the gate opens
        gate.touch()
        assert held.result(timeout=60).return_value == 50
        launcher.shutdown()


def test_a_job_forked_while_the_sweeper_holds_ctrl_c_back_still_takes_ctrl_c(tmp_path: Path) -> None:
    """The sweeper holds SIGINT back while it books trials, and the scheduler thread may fork a job meanwhile:
    the job must still get Python's own handler (Ctrl-C = KeyboardInterrupt), not the sweeper's."""
    from hydra_plugins.navitune_optuna.interrupts import HeldInterrupt as _HeldInterrupt

    with composed(tmp_path, "x: 0\n") as (cfg, ctx):
        def task(c):
            return signal.getsignal(signal.SIGINT) is signal.default_int_handler

        launcher = ProcessPoolLauncher(n_jobs=1, prepare_ahead=0)
        launcher.setup(hydra_context=ctx, task_function=task, config=cfg)
        try:
            with _HeldInterrupt():
                assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
                ret = launcher.submit(["x=1"], 0).result(timeout=60)
        finally:
            launcher.shutdown()
        assert ret.status == JobStatus.COMPLETED and ret.return_value is True


@pytest.mark.parametrize("override, message", [
    ("hydra.launcher.n_jobs=0", "hydra.launcher.n_jobs=0; allowed: a whole number in [1, "),
    ("hydra.launcher.prepare_ahead=-1", "hydra.launcher.prepare_ahead=-1; allowed: null (1 + n_jobs // 4) or a whole number in [0, "),
])
def test_bad_launcher_settings_fail_with_one_line(tmp_path: Path, override: str, message: str) -> None:
    proc = run_app(tmp_path, "+x=1,2", override)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "out" / "1.pid").exists()


# ------------------------------------------------------------------------------ jobs set up ahead
AHEAD_APP = '''
import json, os, sys, time
import hydra
from omegaconf import DictConfig

@hydra.main(config_path=None, config_name=None, version_base=None)
def task(cfg: DictConfig) -> int:
    start = time.monotonic()
    seen_next = None
    if int(cfg.x) <= int(cfg.get("watch_next", 0)):  # the jobs with x up to watch_next watch the next one:
        # wait (bounded) for the next job's directory to be set up while this one runs
        nxt = os.path.join(os.path.dirname(os.getcwd()), str(int(cfg.x)), ".hydra", "config.yaml")
        deadline = start + 20.0
        while not os.path.exists(nxt) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_next = os.path.exists(nxt)
    time.sleep(float(cfg.get("sleep", 0)))
    with open(os.path.join(cfg.out, f"{cfg.x}.json"), "w") as fh:
        json.dump({"pid": os.getpid(), "start": start, "end": time.monotonic(), "seen_next": seen_next}, fh)
    return int(cfg.x)

if __name__ == "__main__":
    task()
'''


def _ahead_cmd(tmp_path: Path, *overrides: str) -> list[str]:
    app = tmp_path / "ahead_app.py"
    app.write_text(AHEAD_APP)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return [sys.executable, str(app), "-m", "hydra/launcher=process_pool", f"+out={out}", "hydra.job.chdir=true",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides]


def test_the_next_job_is_set_up_while_the_slot_is_busy(tmp_path: Path) -> None:
    """n_jobs=1, prepare_ahead=1: job 1 (x=1, job dir sweep/0) sees job 2's directory and .hydra files appear
    while it still runs, and so does job 2 for job 3 (without preparing ahead they appear only after it ends,
    and it waits 20 s in vain);
    the tasks themselves still run one at a time, in submission order."""
    cmd = _ahead_cmd(tmp_path, "+x=1,2,3", "+watch_next=2", "hydra.launcher.n_jobs=1",
                     "hydra.launcher.prepare_ahead=1")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    jobs = [json.loads((tmp_path / "out" / f"{x}.json").read_text()) for x in (1, 2)]
    assert [j["seen_next"] for j in jobs] == [True, True]
    job3 = json.loads((tmp_path / "out" / "3.json").read_text())
    assert jobs[0]["end"] <= jobs[1]["start"] and jobs[1]["end"] <= job3["start"]  # never two tasks at once


def test_a_job_set_up_ahead_ends_when_the_sweep_process_dies(tmp_path: Path) -> None:
    """kill -9 of the process that runs the launcher: the job waiting for a slot never runs its task and its
    process ends by itself (it does not linger as an orphan)."""
    cmd = _ahead_cmd(tmp_path, "+x=1,2", "+sleep=600", "hydra.launcher.n_jobs=1", "hydra.launcher.prepare_ahead=1")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    prepared = tmp_path / "sweep" / "1" / ".hydra" / "config.yaml"
    try:
        deadline = time.monotonic() + 60
        while not prepared.exists():  # job 1 runs (sleeps), job 2 is set up and waits
            assert proc.poll() is None and time.monotonic() < deadline, "job 2 was never set up"
            time.sleep(0.05)
        children = set()
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            children |= {int(c) for c in (task / "children").read_text().split()}
        assert len(children) == 2, children  # the running job and the one set up ahead
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        def alive(pid: int) -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
            except FileNotFoundError:
                return False

        deadline = time.monotonic() + 15
        while sum(alive(pid) for pid in children) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sum(alive(pid) for pid in children) == 1  # only the running job (it sleeps on) is left
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not (tmp_path / "out" / "2.json").exists()


@pytest.mark.slow  # 6 s of sleeping jobs
def test_time_limit_counts_from_the_start_of_the_task(tmp_path: Path) -> None:
    """A job set up ahead waits for its slot; the wait does not count against timeout_s. Job 1 sleeps 3 s only
    after it has seen job 2 set up, so job 2 waits at least 3 s and then runs 3 s: counted from its set-up
    it would be over the 5 s limit for sure; counted from its task's start it has 2 s to spare."""
    cmd = _ahead_cmd(tmp_path, "+x=1,2", "+watch_next=1", "+sleep=3.0", "hydra.launcher.n_jobs=1",
                     "hydra.launcher.prepare_ahead=1", "hydra.launcher.timeout_s=5")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    first, second = (json.loads((tmp_path / "out" / f"{x}.json").read_text()) for x in (1, 2))
    assert first["seen_next"] is True  # job 2 was set up before job 1's 3 s began
    assert second["start"] >= first["end"]
