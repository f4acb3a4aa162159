"""The Cloud SQL proxy beside remote jobs (launchers/hydra_plugins/navitune_kfp/proxy/ and navitune_shared/proxy_settings.py), with real parts.

- mode ``process``: MariaDB stands in for Cloud SQL and ``socat`` for the Cloud SQL Auth Proxy; an Optuna study
  is created and told through the proxy port; the proxy is killed mid-job and the job must fail promptly with
  ProxyDied (not a DB error, not KeyboardInterrupt); start failures give one clear error; nothing is left running.
- mode ``native``: the init-container entry is written into the platform spec of a pipeline compiled by kfp's
  own compiler, read back the way ``kfp.Client`` reads it, and parsed strictly against upstream's
  ``KubernetesExecutorConfig`` (with ``initContainers``); secrets appear by name only.
- bad ``proxy.*`` inputs fail in the CLI's preflight with one line, before anything runs or is written.

Without socat or MariaDB the tests skip locally and fail on CI (``CI=true``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from hydra_plugins.navitune_kfp.proxy import (
    CONTAINER_NAME,
    CREDENTIALS_DIR,
    ProxyDied,
    ProxySettings,
    ProxyStartError,
    ProxyStartTimeout,
    add_native_sidecar,
    apply_proxy,
    check_executor_config,
    native_sidecar_container,
    proxy_for_job,
    proxy_settings,
    read_pipeline_docs,
    supervised_proxy,
    write_pipeline_docs,
)
from tests.fixtures.mariadb import MariaDB
from tests.fixtures.services import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = "navitune-test:asia-northeast1:studies"
DEADLINE_S = 30.0  # a bound on waiting for a condition (a hang fails here), never a margin a test relies on
CLI_TIMEOUT_S = 120


# ------------------------------------------------------------------------------------- helpers
def socat_settings(target_port: int, **overrides) -> ProxySettings:
    """Process-mode settings whose command is socat forwarding a fresh port to ``target_port``, read through
    proxy_settings() exactly as the job reads its config."""
    node = {
        "mode": "process", "instance": INSTANCE, "port": free_port(),
        "command": ["socat", "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"TCP:127.0.0.1:{target_port}"],
        "start_timeout_s": 10, "stop_timeout_s": 3,
    }
    node.update(overrides)
    settings = proxy_settings(OmegaConf.create({"proxy": node}))
    assert settings is not None
    return settings


def processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def study_url(db: MariaDB, port: int) -> str:
    return f"mysql+pymysql://{db.user}:{db.password}@127.0.0.1:{port}/{db.database}"


def assert_proxy_gone(settings: ProxySettings) -> None:
    marker = f"TCP-LISTEN:{settings.port},"
    wait_until(lambda: not processes_with(marker), DEADLINE_S, f"no socat left for port {settings.port}")
    assert not accepts(settings.port), "something still listens on the proxy port"


# ------------------------------------------------------------------------ mode process: real parts
def test_study_through_the_proxy_and_clean_stop(socat, mariadb: MariaDB):
    import optuna

    settings = socat_settings(mariadb.port)
    name = f"proxy-{secrets.token_hex(4)}"
    handler_before = signal.getsignal(signal.SIGUSR1)
    with supervised_proxy(settings) as proxy:
        assert proxy.alive and proxy.port == settings.port != mariadb.port
        assert proxy.pid in processes_with(f"TCP-LISTEN:{settings.port},")
        study = optuna.create_study(study_name=name, storage=study_url(mariadb, settings.port), direction="maximize")
        trial = study.ask()
        trial.report(0.5, step=0)
        study.tell(trial, 1.25)
    assert_proxy_gone(settings)
    assert signal.getsignal(signal.SIGUSR1) == handler_before, "the SIGUSR1 handler was not restored"
    # the value landed in the real database: read it back directly, without the proxy
    direct = optuna.load_study(study_name=name, storage=mariadb.url())
    assert direct.best_value == 1.25
    assert direct.trials[0].intermediate_values == {0: 0.5}


@pytest.mark.parametrize("kill", ["proxy", "group"])
def test_proxy_killed_mid_job_fails_promptly_with_proxy_died(socat, mariadb: MariaDB, kill):
    """``proxy``: socat's per-connection children keep the open DB connection alive, so only the watcher can
    notice; ``group``: the connections break too, and the DB error must not be what the caller sees."""
    import optuna

    settings = socat_settings(mariadb.port)
    told = 0
    ran_out = False  # the job's own loop ended: nothing interrupted it
    with pytest.raises(ProxyDied) as info:
        with supervised_proxy(settings) as proxy:
            study = optuna.create_study(study_name=f"die-{secrets.token_hex(4)}",
                                        storage=study_url(mariadb, settings.port))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the "job": DB work until something stops it
                trial = study.ask()
                study.tell(trial, float(told))
                told += 1
                if told == 3:
                    (os.kill if kill == "proxy" else os.killpg)(proxy.pid, signal.SIGKILL)
            ran_out = True
    assert info.type is ProxyDied
    assert str(info.value).startswith(
        f"Cloud SQL proxy for {INSTANCE} exited with code -9 (killed by SIGKILL) while the job was running")
    # "promptly": the death stopped the job mid-loop (a watcher that only reported on exit would let the
    # 60 s loop run out first), whatever the machine's load
    assert not ran_out, "the job ran to its end: the dead proxy was noticed only on exit"
    assert told >= 3
    assert_proxy_gone(settings)


def test_blocking_db_call_is_interrupted(socat, mariadb: MariaDB):
    """A job stuck in a long DB call (a socket read) is interrupted at once, not after the call returns."""
    import pymysql

    settings = socat_settings(mariadb.port)
    returned = False  # the DB call ran its course
    with pytest.raises(ProxyDied, match="while the job was running"):
        with supervised_proxy(settings) as proxy:
            conn = pymysql.connect(host="127.0.0.1", port=settings.port, user=mariadb.user,
                                   password=mariadb.password, database=mariadb.database)
            probe = pymysql.connect(host="127.0.0.1", port=mariadb.port, user=mariadb.user,
                                    password=mariadb.password, database=mariadb.database)

            def kill_once_sleeping() -> None:  # the proxy dies while the server runs the job's SLEEP
                try:
                    deadline = time.monotonic() + DEADLINE_S
                    while time.monotonic() < deadline:
                        with probe.cursor() as cur:
                            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                        "WHERE INFO LIKE 'SELECT SLEEP(20)%%'")
                            if cur.fetchone()[0]:
                                break
                        time.sleep(0.02)
                finally:
                    probe.close()
                    os.kill(proxy.pid, signal.SIGKILL)

            threading.Thread(target=kill_once_sleeping, daemon=True).start()
            with conn.cursor() as cur:
                cur.execute("SELECT SLEEP(20)")  # 20 s unless interrupted
            returned = True
    assert not returned, "the blocking call ran its 20 s: it was not interrupted"
    assert_proxy_gone(settings)


def test_swallowed_interrupt_still_fails_the_job(socat):
    """Job code that catches everything (here: the ProxyDied itself) cannot turn a dead proxy into success."""
    settings = socat_settings(free_port())
    with pytest.raises(ProxyDied):
        with supervised_proxy(settings) as proxy:
            os.kill(proxy.pid, signal.SIGKILL)
            try:
                time.sleep(30)
            except BaseException:  # noqa: BLE001 - what careless job code does
                pass
    assert_proxy_gone(settings)


def test_job_errors_pass_through_while_the_proxy_lives(socat):
    settings = socat_settings(free_port())
    with pytest.raises(ZeroDivisionError):
        with supervised_proxy(settings):
            1 / 0
    assert_proxy_gone(settings)


def test_death_outside_the_main_thread_is_raised_on_exit(socat):
    settings = socat_settings(free_port())
    outcome: dict[str, BaseException | None] = {}

    def job() -> None:
        try:
            with supervised_proxy(settings) as proxy:
                os.kill(proxy.pid, signal.SIGKILL)
                wait_until(lambda: not proxy.alive, DEADLINE_S, "the proxy to die")
                with pytest.raises(ProxyDied):
                    proxy.check()
            outcome["exit"] = None
        except BaseException as exc:  # noqa: BLE001
            outcome["exit"] = exc

    worker = threading.Thread(target=job)
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    assert isinstance(outcome["exit"], ProxyDied), outcome
    assert_proxy_gone(settings)


def test_proxy_does_not_outlive_a_killed_job(socat):
    """A job process killed with SIGKILL (a launcher timeout) takes its proxy with it, so the retry of the
    trial finds the port free."""
    settings = socat_settings(free_port())
    code = (
        "import sys, time\n"
        "from hydra_plugins.navitune_kfp.proxy import proxy_settings, supervised_proxy\n"
        f"settings = proxy_settings({{'proxy': {{'mode': 'process', 'instance': {INSTANCE!r}, "
        f"'port': {settings.port}, 'command': {list(settings.command)!r}}}}})\n"
        "with supervised_proxy(settings) as proxy:\n"
        "    print(proxy.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        proxy_pid = int(job.stdout.readline())
        assert proxy_pid in processes_with(f"TCP-LISTEN:{settings.port},")
    finally:
        job.kill()
        job.wait()
    assert_proxy_gone(settings)


def test_start_timeout_is_clear_and_kills_the_command(socat):
    marker = f"37.{secrets.randbelow(10**6):06d}"  # a unique `sleep` argument to find the process by
    settings = socat_settings(free_port(), command=["sleep", marker], start_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ProxyStartTimeout) as info:
        with supervised_proxy(settings):
            pytest.fail("the block ran although the proxy never listened")
    elapsed = time.monotonic() - started
    assert 1 <= elapsed < 10  # it waited start_timeout_s=1, not the 10 s of socat_settings' default
    assert str(info.value) == (f"Cloud SQL proxy for {INSTANCE} did not accept connections on "
                               f"127.0.0.1:{settings.port} within 1 s")
    wait_until(lambda: not processes_with(f"sleep {marker}"), DEADLINE_S, "the never-listening command to be stopped")


def test_proxy_that_exits_at_start_reports_code_and_output(socat):
    settings = socat_settings(free_port(), command=["sh", "-c", "echo 'no credentials found' >&2; exit 3"])
    started = time.monotonic()
    with pytest.raises(ProxyStartError) as info:
        with supervised_proxy(settings):
            pytest.fail("the block ran although the proxy exited")
    assert info.type is ProxyStartError  # not a timeout: it failed fast,
    assert time.monotonic() - started < settings.start_timeout_s  # before the 10 s start timeout ran out
    assert f"Cloud SQL proxy for {INSTANCE} exited with code 3 before accepting connections" in str(info.value)
    assert "no credentials found" in str(info.value)


def test_missing_proxy_binary_and_busy_port(socat):
    with pytest.raises(ProxyStartError, match=r"cannot start Cloud SQL proxy for .*/nonexistent/cloud-sql-proxy"):
        with supervised_proxy(socat_settings(free_port(), command=["/nonexistent/cloud-sql-proxy"])):
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = socat_settings(free_port(), port=port)
        with pytest.raises(ProxyStartError, match=f"127.0.0.1:{port} is already in use"):
            with supervised_proxy(settings):
                pass
    assert not processes_with(f"TCP-LISTEN:{port},")


def test_proxy_for_job_modes(socat):
    assert proxy_settings(OmegaConf.create({"proxy": {"mode": "none"}})) is None
    with proxy_for_job(None) as nothing:
        assert nothing is None
    native = proxy_settings(OmegaConf.create(
        {"proxy": {"mode": "native", "instance": INSTANCE, "port": free_port(), "start_timeout_s": 0.5}}))
    with pytest.raises(ProxyStartTimeout, match=f"127.0.0.1:{native.port} within 0.5 s"):
        with proxy_for_job(native):
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sidecar:  # a "sidecar" already listening
        sidecar.bind(("127.0.0.1", native.port))
        sidecar.listen()
        with proxy_for_job(native) as handle:
            assert handle is None
    process = socat_settings(free_port())
    with proxy_for_job(process) as handle:
        assert handle is not None and accepts(process.port)
    assert_proxy_gone(process)


# ------------------------------------------------------------------------- mode native: real YAML
PIPELINES_SOURCE = '''
from kfp import dsl, kubernetes


@dsl.component(base_image="python:3.11-slim")
def job(config: str) -> float:
    return float(len(config))


@dsl.pipeline(name="plain")
def plain(config: str = "{}"):
    job(config=config)


@dsl.pipeline(name="tolerating")
def tolerating(config: str = "{}"):
    task = job(config=config)
    kubernetes.add_toleration(task, key="dedicated", operator="Equal", value="sim", effect="NoSchedule")
'''


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    """Two pipelines compiled by kfp: one without a platform spec, one with (a toleration). The source is a
    module of its own because kfp needs real (not deferred) annotations and the component's source file."""
    import importlib.util

    from kfp import compiler

    out = tmp_path_factory.mktemp("pipelines")
    source = out / "navitune_test_pipelines.py"
    source.write_text(PIPELINES_SOURCE)
    spec = importlib.util.spec_from_file_location("navitune_test_pipelines", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = {"plain": out / "plain.yaml", "tolerating": out / "tolerating.yaml"}
    for name, path in paths.items():
        compiler.Compiler().compile(getattr(module, name), str(path))
    return paths


def native_settings(**overrides) -> ProxySettings:
    node = {"mode": "native", "instance": INSTANCE, "port": 3307, "args": ["--private-ip", "--auto-iam-authn"],
            "credentials_secret": "cloudsql-sa", "credentials_key": "key.json",
            "requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    node.update(overrides)
    settings = proxy_settings(OmegaConf.create({"proxy": node}))
    assert settings is not None
    return settings


def walk(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, (*path, i))
    else:
        yield path, node


@pytest.mark.parametrize("which", ["plain", "tolerating"])
def test_native_sidecar_in_compiled_pipeline(compiled, tmp_path, which):
    from kfp.client.client import _extract_pipeline_yaml  # what kfp.Client uses to read a package

    docs = read_pipeline_docs(compiled[which])
    assert len(docs) == (1 if which == "plain" else 2)
    before = yaml.safe_dump_all(docs)
    settings = native_settings()
    patched = apply_proxy(docs, settings)
    assert yaml.safe_dump_all(docs) == before, "apply_proxy modified its input"
    out = tmp_path / "pipeline.yaml"
    write_pipeline_docs(patched, out)

    package = _extract_pipeline_yaml(str(out))
    assert package.pipeline_spec.pipeline_info.name == which
    executors = package.to_dict()["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert list(executors) == ["exec-job"]
    cfg = executors["exec-job"]
    assert cfg["initContainers"] == [{
        "name": CONTAINER_NAME,
        "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1",
        "args": [INSTANCE, "--port", "3307", "--credentials-file", f"{CREDENTIALS_DIR}/key.json",
                 "--private-ip", "--auto-iam-authn", "--structured-logs", "--exit-zero-on-sigterm"],
        "restartPolicy": "Always",
        "volumeMounts": [{"volumeName": "cloudsql-sa", "mountPath": CREDENTIALS_DIR}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    }]
    assert cfg["secretAsVolume"] == [{
        "secretName": "cloudsql-sa", "secretNameParameter": {"runtimeValue": {"constant": "cloudsql-sa"}},
        "mountPath": CREDENTIALS_DIR, "optional": False,
    }]
    if which == "tolerating":  # what was there stays
        assert cfg["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "sim",
                                       "effect": "NoSchedule"}]
    check_executor_config(cfg)  # strict parse against upstream KubernetesExecutorConfig (with initContainers)

    # secrets by reference only: the secret's name appears only where a name is expected, and nothing that
    # could carry a value (env values, data, tokens) is in the platform spec at all
    platform_doc = yaml.safe_load_all(out.read_text())
    platform = [d for d in platform_doc if "platforms" in d][0]
    places = {path[-1] if not isinstance(path[-1], int) else path[-2] for path, v in walk(platform)
              if v == "cloudsql-sa"}
    assert places == {"secretName", "constant", "volumeName"}
    keys = {k for path, _ in walk(platform) for k in path if isinstance(k, str)}
    assert not keys & {"env", "value_from", "data", "stringData", "token"}
    assert not any(isinstance(v, str) and v.startswith(("--token", "--credentials-json")) for _, v in walk(platform))


def test_native_sidecar_is_idempotent_and_checked(compiled):
    docs = read_pipeline_docs(compiled["plain"])
    settings = native_settings()
    twice = apply_proxy(apply_proxy(docs, settings), settings)
    cfg = twice[-1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-job"]
    assert [c["name"] for c in cfg["initContainers"]] == [CONTAINER_NAME]
    assert len(cfg["secretAsVolume"]) == 1
    # the strict check is real: a field upstream's InitContainer does not have fails at compile time
    bad = dict(native_sidecar_container(settings), securityContext={"runAsNonRoot": True})
    with pytest.raises(ValueError, match="securityContext"):
        add_native_sidecar(docs, bad)
    with pytest.raises(ValueError, match="restartPolicy must be 'Always'"):
        add_native_sidecar(docs, dict(native_sidecar_container(settings), restartPolicy="OnFailure"))
    with pytest.raises(ValueError, match="reserved"):
        add_native_sidecar(docs, dict(native_sidecar_container(settings), name="kfp-launcher"))


def test_process_mode_and_none_in_the_pipeline(compiled):
    docs = read_pipeline_docs(compiled["plain"])
    assert apply_proxy(docs, None) == docs
    with_secret = apply_proxy(docs, native_settings(mode="process"))
    cfg = with_secret[-1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-job"]
    assert "initContainers" not in cfg  # process mode: the job container runs the proxy itself
    assert cfg["secretAsVolume"][0]["secretName"] == "cloudsql-sa"
    check_executor_config(cfg)
    assert apply_proxy(docs, native_settings(mode="process", credentials_secret=None)) == docs


# ------------------------------------------------------------------------------ config and the CLI
def test_settings_from_config():
    from hydra import compose, initialize_config_dir

    from experiment.registration import register_configs

    register_configs()  # as the CLI does (idempotent)
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        default = compose(config_name="config")
        cloudsql = compose(config_name="config", overrides=[
            "proxy=cloudsql", "proxy.instance=example.com:proj-1:us-central1:db", "proxy.args=[--private-ip]"])
    assert default.proxy.mode == "none" and proxy_settings(default) is None
    s = proxy_settings(cloudsql)
    assert (s.mode, s.instance, s.port, s.args, s.credentials_secret) == (
        "process", "example.com:proj-1:us-central1:db", 3306, ("--private-ip",), None)
    assert s.process_command() == ["cloud-sql-proxy", "example.com:proj-1:us-central1:db", "--port", "3306",
                                   "--private-ip"]


@pytest.mark.parametrize(("node", "message"), [
    ({"mode": "sidecar"}, "invalid config proxy.mode='sidecar'; allowed: none, process, native"),
    ({"mode": "process", "instance": "navitune-db"},
     "invalid config proxy.instance='navitune-db'; allowed: a Cloud SQL connection name project:region:instance"),
    ({"mode": "process", "instance": INSTANCE, "port": 0}, "invalid config proxy.port=0; allowed: a TCP port 1..65535"),
    ({"mode": "native", "instance": INSTANCE, "image": ""}, "invalid config proxy.image=''"),
    ({"mode": "native", "instance": INSTANCE, "requests": {"cpu": "lots"}}, "invalid config proxy.requests.cpu='lots'"),
])
def test_bad_settings_one_line(node, message):
    with pytest.raises(ValueError) as info:
        proxy_settings(OmegaConf.create({"proxy": node}))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_credential_flags_are_rejected_without_echoing_them():
    with pytest.raises(ValueError) as info:
        proxy_settings({"proxy": {"mode": "process", "instance": INSTANCE, "args": ["--token=ya29.SECRETVALUE"]}})
    assert "--token" in str(info.value) and "SECRETVALUE" not in str(info.value)


CLI_CASES = [
    ("mode-unknown", ["proxy=cloudsql", f"proxy.instance={INSTANCE}", "proxy.mode=bogus"],
     "proxy.mode", "none, process, native"),
    ("instance-missing", ["proxy=cloudsql"], "proxy.instance", "project:region:instance"),
    ("instance-malformed", ["proxy=cloudsql", "proxy.instance=my-db"], "proxy.instance", "project:region:instance"),
    ("port-out-of-range", ["proxy=cloudsql", f"proxy.instance={INSTANCE}", "proxy.port=70000"],
     "proxy.port", "1..65535"),
    ("option-unknown", ["proxy=pgbouncer"], "proxy", "cloudsql, none"),
    ("key-unknown", ["proxy=cloudsql", f"proxy.instance={INSTANCE}", "proxy.sidecar=true"], "proxy.sidecar",
     "mode, instance, port"),
    ("token-in-args", ["proxy=cloudsql", f"proxy.instance={INSTANCE}", 'proxy.args=["--token=ya29.SECRET"]'],
     "proxy.args", "proxy.credentials_secret"),
]


def run_cli(cwd: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "experiment", "window=smoke", *overrides, f"paths.outputs={cwd / 'outputs'}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """All CLI cases started together (each is a CPU-bound Python start-up)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {}
        for case, overrides, _, _ in CLI_CASES:
            cwd = tmp_path_factory.mktemp(f"cli-{case}")
            futures[case] = (cwd, pool.submit(run_cli, cwd, overrides))
        yield {case: (cwd, f.result()) for case, (cwd, f) in futures.items()}


@pytest.mark.parametrize(("case", "overrides", "key", "allowed"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
@pytest.mark.slow
def test_cli_rejects_bad_proxy_with_one_line(cli_results, case, overrides, key, allowed):
    cwd, proc = cli_results[case]
    assert proc.returncode != 0, f"accepted {overrides}\n{proc.stdout[-800:]}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got:\n{proc.stderr[-2000:]}"
    assert key in lines[0] and allowed in lines[0], lines[0]
    assert "SECRET" not in proc.stderr
    assert sorted(cwd.iterdir()) == [], f"something was written: {sorted(cwd.rglob('*'))}"


def test_one_proxy_version_for_the_sidecar_image_and_the_job_images_binary() -> None:
    """proxy.mode=native runs DEFAULT_IMAGE; proxy.mode=process runs the binary the Dockerfile installs: the same
    release, written once in Python (the config schema takes it from there) and once in the Dockerfile."""
    import re

    from experiment.config import ProxyConfig
    from hydra_plugins.navitune_shared.proxy_settings import DEFAULT_IMAGE

    dockerfile = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    (version,) = re.findall(r"^ARG CLOUD_SQL_PROXY_VERSION=(\S+)$", dockerfile, flags=re.M)
    assert DEFAULT_IMAGE.endswith(f":{version}")
    assert ProxyConfig().image == DEFAULT_IMAGE

