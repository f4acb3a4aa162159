"""optuna-dashboard (installed with navitune, README "Outputs") opens the sweeps' journal and shows the study under
the objective's one name, in a real headless Chromium.

The journal is written the way the sweeper writes it (``journal://`` through navitune's storage factory, the
metric name from ``conf/search_space/_optuna_async.yaml``), with a few trials, so that the dashboard has a
history and importances to draw; the screenshot is kept in the test's tmp directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from experiment.tracking.common import OBJECTIVE_METRIC
from tests.fixtures.mlflow import Chromium
from tests.fixtures.services import free_port

ROOT = Path(__file__).resolve().parent.parent
STUDY = "navitune_dashboard_it"


def metric_names() -> list[str]:
    conf = OmegaConf.load(ROOT / "conf" / "search_space" / "_optuna_async.yaml")
    return list(conf.hydra.sweeper.metric_names)


def test_the_objective_has_one_name_in_the_study_and_in_mlflow() -> None:
    """The study's metric name (optuna-dashboard, the report's plots) is the MLflow metric of the objective."""
    assert metric_names() == [OBJECTIVE_METRIC]


def write_journal(path: Path) -> None:
    from hydra_plugins.navitune_shared.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=make_storage(f"journal://{path}"), direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.set_metric_names(metric_names())
    study.optimize(lambda t: 30_000 + 5_000 * t.suggest_float("policy.gamma", 0.6, 0.995)
                   - 100 * t.suggest_float("policy.max_wait_min", 0.3, 30.0, log=True), n_trials=8)


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, f"optuna-dashboard exited: {proc.stdout.read() if proc.stdout else ''}"
        assert time.monotonic() < deadline, f"optuna-dashboard did not answer {url} within {timeout_s} s"
        time.sleep(0.3)


@pytest.mark.slow
def test_optuna_dashboard_in_chromium_shows_the_study_and_its_objective(chromium: Chromium, tmp_path: Path) -> None:
    journal = tmp_path / "optuna" / "studies.journal"
    journal.parent.mkdir()
    write_journal(journal)
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    assert dashboard.is_file(), "optuna-dashboard is not installed with navitune (pyproject.toml dependencies)"
    port = free_port()
    server = subprocess.Popen([str(dashboard), str(journal), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/api/studies", server)
        chromium.open(f"{base}/dashboard/studies/0")
        chromium.wait_for(f"document.body.innerText.includes({STUDY!r})", what=f"the study {STUDY}")
        # the history chart's axis and selector name the objective as the sweeps do, not "Objective Value"
        chromium.wait_for(f"document.body.innerText.includes({OBJECTIVE_METRIC!r})",
                          what=f"the objective named {OBJECTIVE_METRIC!r}")
        chromium.wait_for("document.body.innerText.includes('Best Trial')", what="the best trial's panel")
        text = chromium.evaluate("document.body.innerText")
        assert "Objective Value" not in text
        best = optuna.load_study(study_name=STUDY, storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal)))).best_trial
        assert f"Best Trial (number={best.number})" in text
        dom = chromium.dom()
        assert STUDY in dom and "policy.max_wait_min" in dom
        shot = chromium.screenshot(tmp_path / "optuna-dashboard.png")
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        (tmp_path / "optuna-dashboard.html").write_text(dom)
        print(f"screenshot: {shot}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_waiting_for_a_page_treats_an_expression_that_throws_as_not_yet(chromium: Chromium) -> None:
    """Right after a navigation ``document.body`` can be null and ``document.body.innerText`` throws: the wait
    polls on (this test's own flake on a loaded CI machine) and still fails with the last error at its deadline."""
    chromium.open("about:blank")
    chromium.evaluate("setTimeout(() => { window.__ready = {text: 'ready'}; }, 400); 1")
    assert chromium.wait_for("window.__ready.text", timeout_s=10, what="the value set later") == "ready"
    with pytest.raises(AssertionError, match="last error: JavaScript error"):
        chromium.wait_for("window.__never.text", timeout_s=1, what="a value never set")
