"""Slack notifications (``+notify=slack``) against a real local HTTP endpoint standing in for the webhook.

Three real smoke sweeps (``python -m experiment -m +experiment=smoke +notify=slack ...``) run together in a
small thread pool, each posting to its own secret path of one local ``http.server``: one that finishes
(start + finish messages, checked against the Optuna study), one whose trials fail (start + failure
message with the error), and one whose webhook answers HTTP 500 (the sweep still succeeds, one warning
per lost message). After each, every file the sweep wrote and its captured output are searched for the
webhook URL and its secret path: they must not be there.

The automatic links (no ``mlflow_url`` / ``kfp_url`` configured) are checked in process with the real callbacks
of ``conf/config.yaml`` + ``+notify=slack``, run by Hydra's own ``Callbacks`` as a multirun does (start hooks
in order, the launcher set up after them, end hooks in reverse order): the MLflow parent run's page from a real
``mlflow server`` (in the config's order and with Slack listed first), the KFP experiment's page from the kfp
launcher against ``tools/standins/kfp_api_server.FakeKFP``, and no link for a local store or left by an earlier sweep.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from experiment.config import ConfigError, production_policy
from experiment.notify.slack import SlackNotifier, _mask
from tests.fixtures.mlflow import MLflowServer

ROOT = Path(__file__).resolve().parent.parent
CLI_TIMEOUT_S = 300
ENV = "NAVITUNE_SLACK_WEBHOOK_URL"
STUDY = "navitune_tokyo_central_smoke_ml"
MLFLOW_URL = "http://mlflow.example:5000/#/experiments/7/runs"
KFP_URL = "http://kfp.example/#/experiments/details/abc"


@dataclass
class Webhook:
    """A local stand-in for Slack's incoming webhooks: POSTs are recorded per path; ``fail_paths`` get 500."""

    port: int
    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_paths: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_url(self, fail: bool = False) -> str:
        path = f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/{secrets.token_hex(12)}"
        if fail:
            self.fail_paths.add(path)
        return f"http://127.0.0.1:{self.port}{path}"

    def texts(self, url: str) -> list[str]:
        path = url.split(str(self.port), 1)[1]
        with self.lock:
            return [p["body"]["text"] for p in self.posts.get(path, [])]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record = {"content_type": self.headers.get("Content-Type"), "body": json.loads(body)}
            with hook.lock:  # recorded before the answer, so a finished post is always visible
                hook.posts.setdefault(self.path, []).append(record)
            status = 500 if self.path in hook.fail_paths else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"server_error")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@dataclass
class Sweep:
    proc: subprocess.CompletedProcess
    cwd: Path
    url: str

    @property
    def sweep_dir(self) -> Path:
        (d,) = [p for p in (self.cwd / "outputs" / "sweeps").glob("*/*") if p.is_dir()]
        return d

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


def run_sweep(cwd: Path, url: str, overrides: list[str], preflight: bool = True) -> Sweep:
    """``python -m experiment -m ...``; ``preflight=False`` runs the Hydra task without the CLI's up-front checks."""
    entry = ["-m", "experiment"] if preflight else ["-c", "from experiment.task import task; task()"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR" and not k.startswith("NAVITUNE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env[ENV] = url
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    proc = subprocess.run(
        [sys.executable, *entry, "-m", "+experiment=smoke", "+notify=slack", *overrides,
         f"paths.outputs={cwd / 'outputs'}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    return Sweep(proc, cwd, url)


SWEEPS: dict[str, tuple[bool, list[str]]] = {  # name -> (webhook fails?, overrides)
    "finishes": (False, ["hydra.sweeper.n_trials=4", f"hydra.callbacks.slack.mlflow_url='{MLFLOW_URL}'",
                         f"hydra.callbacks.slack.kfp_url='{KFP_URL}'"]),
    "fails": (False, ["policy.compliance=choice(1.5)", "hydra.sweeper.n_trials=2", "hydra.sweeper.max_retries=0",
                      "hydra.sweeper.max_failure_rate=0"]),
    "webhook_down": (True, ["hydra.sweeper.n_trials=2"]),
}
# the CLI refuses the out-of-range choice of "fails" before the first trial: that sweep starts without it
WITHOUT_PREFLIGHT = {"fails"}


@pytest.fixture(scope="module")
def sweeps(webhook: Webhook, tmp_path_factory) -> Iterator[Any]:
    pool = ThreadPoolExecutor(max_workers=2)
    futures: dict[str, Future] = {}
    for name, (fail, overrides) in SWEEPS.items():
        url = webhook.new_url(fail=fail)
        futures[name] = pool.submit(run_sweep, tmp_path_factory.mktemp(name), url, overrides,
                                    name not in WITHOUT_PREFLIGHT)
    yield lambda name: futures[name].result()
    pool.shutdown(wait=True, cancel_futures=True)


def assert_url_nowhere(sweep: Sweep) -> None:
    """Neither the URL nor its secret path in any file under the run's directory or in its output."""
    secret = sweep.url.split("/services/", 1)[1]
    needles = [sweep.url.encode(), secret.encode()]
    files = [p for p in sweep.cwd.rglob("*") if p.is_file()]
    assert any(p.name == "hydra.yaml" for p in files), "no saved Hydra config to search"
    saved = [p for p in files if ENV.encode() in p.read_bytes()]
    assert saved, "the callback's config (the variable's NAME) was not saved anywhere: is the search looking?"
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"the webhook URL is in {path}"
    for needle in needles:
        assert needle.decode() not in sweep.output, "the webhook URL is in the sweep's output"


def load_study(sweep: Sweep) -> Any:
    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep.cwd / "outputs" / "optuna" / "studies.journal")))
    return optuna.load_study(study_name=STUDY, storage=storage)


# ------------------------------------------------------------------------------ a sweep that finishes
@pytest.mark.slow
def test_start_and_finish_messages(sweeps, webhook: Webhook):
    sweep = sweeps("finishes")
    assert sweep.proc.returncode == 0, sweep.proc.stderr[-3000:]
    texts = webhook.texts(sweep.url)
    assert len(texts) == 2, texts
    start, finish = texts
    assert start.startswith(":rocket: *navitune sweep started*: study `navitune_tokyo_central_smoke_ml`")
    assert "4 trials, 2 at a time, tuning policy.gamma, policy.max_wait_min, policy.road_weights.right" in start
    assert f"sweep dir `{sweep.sweep_dir}`" in start

    study = load_study(sweep)
    best = study.best_trial
    (base,) = [t for t in study.trials if t.user_attrs.get("navitune:baseline") == 0]
    assert base.number == 0 and base.params["policy.gamma"] == production_policy()["gamma"]  # production first
    pct = (best.value - base.value) / abs(base.value) * 100
    assert finish.startswith(":white_check_mark: *navitune sweep finished*: study `navitune_tokyo_central_smoke_ml` "
                             "after ")
    assert "4 finished trials (0 pruned), 0 failed" in finish
    assert f"best on the tuning seed: *{best.value:,.1f} yen/driver-day* (trial {best.number}: policy.gamma=" in finish
    assert (f"vs production on the tuning seed: *{pct:+.2f} %* (production {base.value:,.1f} yen/driver-day, "
            "trial 0)") in finish
    assert f"MLflow: {MLFLOW_URL}" in finish and f"KFP: {KFP_URL}" in finish
    assert f"sweep dir `{sweep.sweep_dir}`" in finish
    assert (sweep.sweep_dir / "optimization_results.yaml").is_file()
    # the report runs after this message (Hydra ends callbacks in reverse): the message points to it
    assert "the candidate and its held-out gain: the champion/challenger report (report.md" in finish


@pytest.mark.slow
def test_messages_are_slack_json(sweeps, webhook: Webhook):
    sweep = sweeps("finishes")
    path = sweep.url.split(str(webhook.port), 1)[1]
    with webhook.lock:
        posts = list(webhook.posts[path])
    assert [p["content_type"] for p in posts] == ["application/json; charset=utf-8"] * 2
    assert all(set(p["body"]) == {"text"} for p in posts)


@pytest.mark.slow
def test_finishing_sweep_leaves_no_webhook_url(sweeps):
    assert_url_nowhere(sweeps("finishes"))


# -------------------------------------------------------------------------------- a sweep that fails
@pytest.mark.slow
def test_failure_message_carries_the_error(sweeps, webhook: Webhook):
    sweep = sweeps("fails")
    assert sweep.proc.returncode != 0
    texts = webhook.texts(sweep.url)
    assert len(texts) == 2, texts
    start, failure = texts
    assert start.startswith(":rocket: *navitune sweep started*")
    assert failure.startswith(":x: *navitune sweep failed*: study `navitune_tokyo_central_smoke_ml` after ")
    assert "ConfigError: navitune: invalid config policy.compliance=1.5; allowed: 0 <= compliance <= 1" in failure
    assert "finished" not in failure
    assert f"sweep dir `{sweep.sweep_dir}`" in failure
    # tracking=local (the default): a local store has no page to link, and its `mlflow ui` hint is no link
    assert "MLflow:" not in failure and "mlflow ui" not in failure and "KFP:" not in failure


@pytest.mark.slow
def test_failing_sweep_leaves_no_webhook_url(sweeps):
    assert_url_nowhere(sweeps("fails"))


# ------------------------------------------------------------------------------- the webhook is down
@pytest.mark.slow
def test_a_failing_webhook_never_breaks_the_sweep(sweeps, webhook: Webhook):
    sweep = sweeps("webhook_down")
    assert sweep.proc.returncode == 0, sweep.proc.stderr[-3000:]
    assert len(webhook.texts(sweep.url)) == 2  # both were tried, both got HTTP 500
    warnings = [ln for ln in sweep.output.splitlines() if "notification not sent" in ln]
    assert len(warnings) == 2, sweep.output[-3000:]
    assert "Slack start notification not sent" in warnings[0] and "HTTP Error 500" in warnings[0]
    assert "Slack finish notification not sent" in warnings[1]
    assert load_study(sweep).best_value > 0
    assert_url_nowhere(sweep)


# ---------------------------------------------------------------------------------- in-process checks
def test_missing_variable_warns_once_and_posts_nothing(monkeypatch, caplog):
    monkeypatch.delenv(ENV, raising=False)
    notifier = SlackNotifier(webhook_env=ENV)
    with caplog.at_level(logging.WARNING, logger="navitune.notify"):
        assert notifier.post("start", "hello") is False
        assert notifier.post("finish", "bye") is False
    assert [r.getMessage() for r in caplog.records] == [
        f"Slack notifications are off: the environment variable {ENV} is not set"
    ]


def test_unreachable_webhook_is_one_warning_without_the_url(monkeypatch, caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/TX/BX/{secrets.token_hex(12)}"
    monkeypatch.setenv(ENV, url)
    notifier = SlackNotifier(webhook_env=ENV, timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="navitune.notify"):
        assert notifier.post("start", f"text mentioning {url}") is False
    (record,) = caplog.records
    assert "Slack start notification not sent" in record.getMessage()
    assert "URLError" in record.getMessage()
    assert url not in caplog.text and url.rsplit("/", 1)[1] not in caplog.text


def test_a_url_where_the_variable_name_belongs_is_refused_without_echoing_it():
    url = "https://hooks.slack.com/services/T1/B1/abcdefabcdef"
    with pytest.raises(ConfigError) as err:
        SlackNotifier(webhook_env=url)
    assert "webhook_env" in str(err.value) and url not in str(err.value)


@pytest.mark.slow
def test_cli_refuses_a_url_in_the_config_before_writing_anything(tmp_path):
    url = "https://hooks.slack.com/services/T1/B1/" + secrets.token_hex(12)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR" and not k.startswith("NAVITUNE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "experiment", "-m", "+experiment=smoke", "+notify=slack",
         f"hydra.callbacks.slack.webhook_env={url}", f"paths.outputs={tmp_path / 'outputs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "hydra.callbacks.slack.webhook_env" in lines[0] and "never the URL" in lines[0]
    assert url not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_mask_hides_the_url_and_its_secret_path():
    url = "https://hooks.slack.com/services/T1/B1/abcdefabcdef"
    assert _mask(f"a {url} b", url) == "a *** b"
    assert _mask("urlopen error for hooks.slack.com/services/T1/B1/abcdefabcdef", url) == \
        "urlopen error for hooks.slack.com/***"


# ------------------------------------------------------------------------- automatic links, in process
WHITELIST = ["experiment.*", "hydra_plugins.*", "optuna.samplers.*", "optuna.pruners.*"]


@pytest.fixture
def sweep_process(tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Compose the app's config (``+notify=slack``, no report) and run its callbacks as Hydra's multirun does;
    yields ``run(overrides, order, between)`` -> the posted texts. This process's environment is restored
    afterwards (the callbacks set MLflow's and navitune's variables, as in a sweep process)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.execution_policy import execution_whitelist as whitelist_scope
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins

    import experiment.task as app

    Plugins.instance()
    saved = dict(os.environ)
    url = webhook.new_url()
    monkeypatch.setenv(ENV, url)
    GlobalHydra.instance().clear()
    init = initialize_config_dir(config_dir=app.CONF_DIR)
    init.__enter__()

    def run(overrides: list[str], order: str = "config", between: Any = None) -> list[str]:
        cfg = compose("config", return_hydra_config=True, overrides=[
            "+notify=slack", "hydra.callbacks.report.enabled=false", f"paths.outputs={tmp_path / 'outputs'}",
            *overrides])
        HydraConfig.instance().set_config(cfg)
        with whitelist_scope(WHITELIST, reset=True):  # what @hydra.main(execution_whitelist=...) of the app allows
            callbacks = Callbacks(cfg)
        names = [type(c).__name__ for c in callbacks.callbacks]
        assert names == ["MLflowSweepCallback", "ReportCallback", "SlackNotifier"]  # conf/config.yaml's order
        if order == "slack first":
            callbacks.callbacks.reverse()
        callbacks.on_multirun_start(config=cfg)
        try:
            if between is not None:
                between(cfg, callbacks)  # what Hydra does next: the sweeper, which sets its launcher up
        finally:
            callbacks.on_multirun_end(config=cfg)
        return webhook.texts(url)

    try:
        yield run
    finally:
        init.__exit__(None, None, None)
        GlobalHydra.instance().clear()
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("order", ["config", "slack first"])
@pytest.mark.slow
def test_finish_links_the_mlflow_parent_run_without_configuration(sweep_process, mlflow_server: MLflowServer,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch, order: str):
    """tracking=server: the finish message links the sweep's parent run, credentials of the tracking URI left
    out, whichever callback ends first (Slack's end runs before MLflow's in the config's order, after it when
    Slack is listed first)."""
    password = "pw-" + secrets.token_hex(6)
    monkeypatch.setenv("NAVITUNE_TEST_SLACK_MLFLOW_PW", password)
    study = f"slack_links_{order.replace(' ', '_')}"
    uri = f"http://navitune:${{oc.env:NAVITUNE_TEST_SLACK_MLFLOW_PW}}@127.0.0.1:{mlflow_server.port}"
    texts = sweep_process(["tracking=server", f"tracking.uri={uri}", f"hydra.sweeper.study_name={study}"], order)
    client = mlflow_server.client()
    exp = client.get_experiment_by_name(study)
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.`navitune.role` = 'sweep'")
    start, finish = texts
    assert finish.startswith(":white_check_mark: *navitune sweep finished*")
    assert f"MLflow: {mlflow_server.uri}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}" in finish
    assert "KFP:" not in finish  # process_pool: no KFP experiment
    assert "champion/challenger report" not in finish  # hydra.callbacks.report.enabled=false: no pointer to it
    assert password not in start + finish


@pytest.mark.slow
def test_finish_links_the_kfp_experiment_of_a_remote_sweep(sweep_process, tmp_path: Path):
    """hydra/launcher=kfp backend=remote: the launcher, set up after the start hooks, publishes its
    experiment's page; a page an earlier sweep of this process left is not this one's."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    import experiment.task as app
    from tools.standins.kfp_api_server import FakeKFP

    os.environ["NAVITUNE_KFP_EXPERIMENT_URL"] = "http://kfp.example/#/experiments/details/an-earlier-sweep"
    launchers: list[Any] = []

    def set_up_launcher(cfg: Any, callbacks: Any) -> None:
        ctx = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=callbacks,
                           execution_whitelist=WHITELIST)
        launchers.append(Plugins.instance().instantiate_launcher(config=cfg, hydra_context=ctx,
                                                                 task_function=app.task.__wrapped__))

    with FakeKFP() as server:
        texts = sweep_process([
            "hydra/launcher=kfp", "hydra.launcher.backend=remote", f"hydra.launcher.host={server.url}",
            "hydra.sweeper.study_name=slack_kfp_links", "tracking=off",
            "hydra.sweeper.storage=mysql+pymysql://u:${oc.env:NAVITUNE_TEST_UNSET_PW,unset}@127.0.0.1:9/optuna",
        ], between=set_up_launcher)
        for launcher in launchers:
            launcher.shutdown()
    (exp_id,) = server.experiments
    start, finish = texts
    assert f"KFP: {server.url}/#/experiments/details/{exp_id}" in finish
    assert "an-earlier-sweep" not in start + finish
    assert "MLflow:" not in finish  # tracking=off


@pytest.mark.slow
def test_no_links_for_a_local_store_nor_left_by_an_earlier_sweep(sweep_process):
    """tracking=local, process_pool: nothing to link. Pages left in this process by an earlier sweep (MLflow
    server, remote KFP) must not be posted as this sweep's."""
    os.environ["NAVITUNE_MLFLOW_PARENT_RUN_URL"] = "http://mlflow.example/#/experiments/1/runs/an-earlier-sweep"
    os.environ["NAVITUNE_KFP_EXPERIMENT_URL"] = "http://kfp.example/#/experiments/details/an-earlier-sweep"
    start, finish = sweep_process(["hydra.sweeper.study_name=slack_no_links"])
    assert finish.startswith(":white_check_mark: *navitune sweep finished*")
    assert "MLflow:" not in finish and "KFP:" not in finish and "mlflow ui" not in finish
    assert "an-earlier-sweep" not in start + finish
