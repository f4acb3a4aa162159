"""A throw-away MariaDB server for the storage tests (imported by the test modules that need it).

``mariadb`` (session scope) initialises a fresh datadir, starts ``mariadbd`` on a free port bound to
127.0.0.1, creates the database ``navitune_optuna`` and a user ``navitune`` with a random password,
and stops the server at the end. Without the binaries (or PyMySQL) the tests are skipped locally and
fail on CI (``CI=true``), so a CI image that lost MariaDB cannot go green by skipping.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.services import stop

DATABASE = "navitune_optuna"
USER = "navitune"


@dataclass(frozen=True)
class MariaDB:
    port: int
    user: str
    password: str
    database: str
    socket: str  # root's way in

    def url(self, password: str | None = None, database: str | None = None) -> str:
        """An SQLAlchemy URL; ``password`` defaults to the real one (pass an interpolation for configs)."""
        pw = self.password if password is None else password
        return f"mysql+pymysql://{self.user}:{pw}@127.0.0.1:{self.port}/{database or self.database}"

    def create_database(self, name: str) -> str:
        """A new, empty database the user may use (e.g. for a test that needs a schema-less start)."""
        _as_root(self.socket, f"CREATE DATABASE {name}",
                 f"GRANT ALL PRIVILEGES ON {name}.* TO '{self.user}'@'127.0.0.1'")
        return name


def _as_root(sock: str, *statements: str | tuple[str, tuple]) -> None:
    """Run statements (``sql`` or ``(sql, args)``) as root over the unix socket."""
    import pymysql

    root = pymysql.connect(unix_socket=sock, user="root", autocommit=True)
    try:
        with root.cursor() as cur:
            for statement in statements:
                sql, args = (statement, None) if isinstance(statement, str) else statement
                cur.execute(sql, args)
    finally:
        root.close()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"MariaDB tests cannot run on CI: {reason}")
    pytest.skip(reason)


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mariadbd did not listen on port {port} within {deadline_s} s:\n"
                               f"{log.read_text()[-3000:]}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    mariadbd, install_db = _which("mariadbd"), _which("mariadb-install-db")
    if mariadbd is None or install_db is None:
        _unavailable("mariadbd / mariadb-install-db not found (apt-get install -y mariadb-server)")
    try:
        import pymysql  # noqa: F401
    except ImportError:
        _unavailable("PyMySQL is not installed (pip install pymysql==1.2.4)")

    base = tmp_path_factory.mktemp("mariadb")
    datadir, sock, log = base / "data", base / "mysqld.sock", base / "mariadbd.log"
    install = subprocess.run(
        [install_db, "--no-defaults", "--user=root", f"--datadir={datadir}",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        capture_output=True, text=True, timeout=120,
    )
    if install.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed:\n{install.stdout}\n{install.stderr}")

    port = _free_port()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [mariadbd, "--no-defaults", "--user=root", f"--datadir={datadir}", "--bind-address=127.0.0.1",
             f"--port={port}", f"--socket={sock}", "--skip-name-resolve"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_port(port, proc, log)
        password = "Nv" + secrets.token_hex(12)
        _as_root(str(sock), f"CREATE DATABASE {DATABASE}",
                 (f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY %s", (password,)),
                 f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'127.0.0.1'")
        yield MariaDB(port=port, user=USER, password=password, database=DATABASE, socket=str(sock))
    finally:
        stop(proc)
