"""A throw-away MariaDB server for the benches that need a MySQL study storage (``sweep``, ``kfp-scale``).

Benches run outside pytest, so they cannot use the tests' fixture; this is their one copy of "install a data
directory, start ``mariadbd`` on a free port and a unix socket, wait until root can connect, stop it after"."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Server:
    port: int
    sock: str
    binary: str  # the mariadbd that runs (for its --version)

    def root(self) -> Any:
        """A root connection over the unix socket (autocommit)."""
        import pymysql

        return pymysql.connect(unix_socket=self.sock, user="root", autocommit=True, connect_timeout=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binaries() -> tuple[str, str]:
    """``(mariadbd, mariadb-install-db)``; RuntimeError naming the package when either is missing."""
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin:/sbin")
    install = shutil.which("mariadb-install-db") or shutil.which("mariadb-install-db", path="/usr/sbin:/usr/bin")
    if server is None or install is None:
        raise RuntimeError("mariadbd / mariadb-install-db not found (apt-get install -y mariadb-server)")
    return server, install


@contextlib.contextmanager
def throwaway_mariadb(tmp: Path, *server_args: str) -> Iterator[Server]:
    """A MariaDB with its data, socket and log in ``tmp``, root without a password; stopped on exit.
    RuntimeError (with the log's end) if it cannot be installed or does not accept root within the deadline."""
    import pymysql

    server, install = binaries()
    data, sock, port = tmp / "mariadb", tmp / "mariadb.sock", free_port()
    done = subprocess.run([install, "--no-defaults", "--user=root", f"--datadir={data}",
                           "--auth-root-authentication-method=normal", "--skip-test-db"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed: {done.stderr.strip()[-300:]}")
    log_path = tmp / "mariadb.log"
    with log_path.open("wb") as log:
        srv = subprocess.Popen([server, "--no-defaults", "--user=root", f"--datadir={data}",
                                "--bind-address=127.0.0.1", f"--port={port}", f"--socket={sock}",
                                "--skip-name-resolve", *server_args],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        running = Server(port, str(sock), server)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                running.root().close()
                break
            except pymysql.err.OperationalError:
                if srv.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start (the log's end: {log_path.read_text()[-300:]!r})")
                time.sleep(0.2)
        yield running
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
