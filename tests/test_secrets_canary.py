"""One secret (a fresh random canary) in every form a user may hand it over, through real sweeps, then a search
of everything the sweeps left behind: it must be found nowhere.

Forms: the study storage's password as a query parameter (``?password=${oc.env:...}``) against a real MariaDB
whose user has the canary as password; the MLflow tracking URI's password (``http://navi:${oc.env:...}@``)
against a real ``mlflow server``; a Slack webhook URL without a scheme, and a local webhook endpoint whose path
holds the canary; ``hydra.launcher.secrets`` for the kfp jobs. Sweeps: ``process_pool``, ``hydra/launcher=kfp``
with ``backend=local``, and ``compile_only``. Searched: every file under the runs' directories (bytes), the
MLflow server's store and artifacts, the MariaDB tables, every DuckDB and SQLite file's tables, and the
captured stdout and stderr. Then the forms that cannot be kept out of Hydra's own saved files (a password in
clear on the command line, a launcher ``env`` value from the environment) must be refused in one line, without
echoing the secret and before anything is written.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.fixtures.mariadb import MariaDB, as_root
from tests.fixtures.mlflow import MLflowServer

ROOT = Path(__file__).resolve().parent.parent
CANARY = "cnry" + uuid.uuid4().hex
TIMEOUT_S = 600
QUICK = ["+experiment=smoke", "hydra.callbacks.report.enabled=false", "hydra.sweeper.n_trials=2"]
DB_ENV, MLFLOW_ENV, SLACK_ENV = "NAVITUNE_DB_PASSWORD", "NAVITUNE_MLFLOW_PASSWORD", "NAVITUNE_SLACK_WEBHOOK_URL"
KFP_SECRETS = "hydra.launcher.secrets=[{secret_name: navitune-db, secret_key_to_env: {password: NAVITUNE_DB_PASSWORD}}]"


class Webhook:
    """A local Slack stand-in: records the paths and bodies it is posted."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.posts.append((self.path, body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/{CANARY}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def run(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR" and not k.startswith("MLFLOW_")}
    full_env |= env
    return subprocess.run([sys.executable, "-m", "experiment", "-m", *args, f"paths.outputs={cwd / 'outputs'}"],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=TIMEOUT_S)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def files_holding(root: Path, secret: bytes) -> list[str]:
    """Every file under ``root`` whose bytes hold ``secret``."""
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]


def sqlite_rows_holding(path: Path, secret: str) -> list[str]:
    """SQLite stores long values on overflow pages: read the rows, not only the bytes."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [line[:200] for line in con.iterdump() if secret in line]
    finally:
        con.close()


def duckdb_rows_holding(path: Path, secret: str) -> list[str]:
    """DuckDB compresses strings on disk: read every table's rows."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        found = []
        for schema, table in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall():
            for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                if secret in repr(row):
                    found.append(f"{table}: {repr(row)[:200]}")
        return found
    finally:
        con.close()


def mariadb_rows_holding(db: MariaDB, database: str, secret: str) -> tuple[int, list[str]]:
    """(rows read, rows holding the secret) of every table of ``database``, read as root."""
    import pymysql

    con = pymysql.connect(unix_socket=db.socket, user="root", database=database)
    try:
        with con.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = [t for (t,) in cur.fetchall()]
            n, found = 0, []
            for table in tables:
                cur.execute(f"SELECT * FROM `{table}`")
                for row in cur.fetchall():
                    n += 1
                    if secret in repr(row):
                        found.append(f"{table}: {repr(row)[:200]}")
            return n, found
    finally:
        con.close()


@pytest.mark.slow
def test_one_secret_in_every_form_is_found_nowhere(tmp_path: Path, mariadb: MariaDB,  # noqa: F811
                                                  mlflow_server: MLflowServer, webhook: Webhook) -> None:  # noqa: F811
    # the study's database: a user whose password is the canary
    tag = uuid.uuid4().hex[:8]
    user, database = f"canary{tag}", f"canary_{tag}"
    as_root(mariadb.socket, f"CREATE DATABASE {database}",
             (f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (CANARY,)),
             f"GRANT ALL PRIVILEGES ON {database}.* TO '{user}'@'127.0.0.1'")
    env = {DB_ENV: CANARY, MLFLOW_ENV: CANARY}
    forms = [
        f"hydra.sweeper.storage='mysql+pymysql://{user}@127.0.0.1:{mariadb.port}/{database}"
        f"?password=${{oc.env:{DB_ENV}}}'",
        "tracking=server", f"tracking.uri=http://navi:${{oc.env:{MLFLOW_ENV}}}@127.0.0.1:{mlflow_server.port}",
        "+notify=slack",
    ]
    procs: list[subprocess.CompletedProcess] = []

    # a process_pool sweep; the Slack webhook URL has no scheme: one warning that names the variable
    pool = ok(run(tmp_path / "pool", *QUICK, *forms, "hydra.sweeper.study_name=canary_pool",
                  env=env | {SLACK_ENV: f"hooks.slack.com/services/T0/B0/{CANARY}"}))
    procs.append(pool)
    warnings = [ln for ln in (pool.stdout + pool.stderr).splitlines() if SLACK_ENV in ln]
    assert len(warnings) == 1 and "does not hold an http(s):// URL" in warnings[0], warnings
    assert "password=***" in pool.stdout + pool.stderr  # the "Study ..." line shows the storage, masked

    # a kfp sweep run by kfp.local; Slack posts to a local endpoint whose path holds the canary
    kfp = ok(run(tmp_path / "kfp", *QUICK, *forms, "hydra/launcher=kfp", "hydra.launcher.backend=local",
                 "hydra.launcher.n_jobs=1", KFP_SECRETS, "hydra.sweeper.study_name=canary_kfp",
                 env=env | {SLACK_ENV: webhook.url}))
    procs.append(kfp)
    assert len(webhook.posts) == 2 and {p for p, _ in webhook.posts} == {webhook.url.split(str(
        webhook.server.server_address[1]), 1)[1]}, webhook.posts  # start and finish were posted there

    # the pipeline a cluster would run, compiled only
    compiled = ok(run(tmp_path / "compile", *QUICK, *forms, "hydra/launcher=kfp", "hydra.launcher.backend=remote",
                      "hydra.launcher.compile_only=true", KFP_SECRETS, "hydra.sweeper.study_name=canary_compile",
                      env=env | {SLACK_ENV: webhook.url}))
    procs.append(compiled)
    assert list((tmp_path / "compile" / "outputs").rglob("pipeline.yaml"))

    # the forms were really used: the studies are in MariaDB, the runs are in MLflow, with the secret in use
    import optuna

    url = f"mysql+pymysql://{user}:{CANARY}@127.0.0.1:{mariadb.port}/{database}"
    for study in ("canary_pool", "canary_kfp"):
        trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
        assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 2, (study, trials)
    n_rows, rows = mariadb_rows_holding(mariadb, database, CANARY)
    assert n_rows > 0 and rows == []
    client = mlflow_server.client()
    runs = [r for name in ("canary_pool", "canary_kfp")
            for r in client.search_runs([client.get_experiment_by_name(name).experiment_id])]
    assert {r.data.tags.get("navitune.role") for r in runs} == {"sweep", "trial"}
    for r in runs:
        assert CANARY not in repr(r.data.params) + repr(r.data.tags)

    # every file the sweeps wrote (outputs/, and anything else in their working directories)
    assert files_holding(tmp_path, CANARY.encode()) == []
    store = mlflow_server.log.parent  # the server's SQLite store, artifacts and log
    assert files_holding(store, CANARY.encode()) == []
    assert list(store.rglob("*.db")) and len(list(tmp_path.rglob("*.duckdb"))) == 2  # the searches below read
    for db_file in store.rglob("*.db"):
        assert sqlite_rows_holding(db_file, CANARY) == []
    for db_file in tmp_path.rglob("*.duckdb"):
        assert duckdb_rows_holding(db_file, CANARY) == []
    for db_file in tmp_path.rglob("*.db"):
        assert sqlite_rows_holding(db_file, CANARY) == []
    for proc in procs:
        assert CANARY not in proc.stdout + proc.stderr
    for _, body in webhook.posts:
        assert CANARY.encode() not in body

    # forms Hydra itself would save (its .hydra/ files, multirun.yaml) or kfp would compile into the pipeline:
    # refused in one line, the secret not echoed, nothing written
    refused = {
        "literal_uri": ["tracking=server", f"tracking.uri=http://navi:{CANARY}@127.0.0.1:{mlflow_server.port}"],
        "literal_query": [f"hydra.sweeper.storage='mysql+pymysql://{user}@127.0.0.1:{mariadb.port}/{database}"
                          f"?password={CANARY}'"],
        "launcher_env": ["hydra/launcher=kfp", f'++hydra.launcher.env={{FOO: "${{oc.env:{DB_ENV}}}"}}'],
    }
    for name, args in refused.items():
        proc = run(tmp_path / name, *QUICK, *args, env=env)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode != 0 and len(lines) == 1, (name, proc.stderr[-2000:])
        assert CANARY not in proc.stdout + proc.stderr, name
        assert not (tmp_path / name / "outputs").exists(), name
    assert "hydra.launcher.secrets" in run(tmp_path / "launcher_env", *QUICK, *refused["launcher_env"],
                                           env=env).stderr
