"""A throw-away BigQuery emulator for the BigQuery sink tests (imported by the test modules that need it).

``bqemulator`` (session scope) starts the PyPI ``bqemulator`` (DuckDB-backed REST emulator) on free ports
bound to 127.0.0.1, waits until ``/readyz`` answers, and stops it at the end. It needs DuckDB's spatial
extension, installed from the ``duckdb-extension-spatial`` wheel first so no download is needed. Without
the emulator or the client library the tests are skipped locally and fail on CI (``CI=true``), so a CI
image that lost them cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.services import stop, wait_http_ok

PROJECT = "navitune-test"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BQEmulator:
    endpoint: str  # http://127.0.0.1:PORT, what sink.api_endpoint points at
    project: str
    log: Path

    def client(self) -> Any:
        """The real google-cloud-bigquery client, anonymous, pointed at the emulator."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, credentials=AnonymousCredentials(),
                               client_options=ClientOptions(api_endpoint=self.endpoint))

    def sink(self, dataset: str, table: str = "driver_days") -> Any:
        """A ``sink=bigquery`` config node for this emulator."""
        from omegaconf import OmegaConf

        return OmegaConf.create({"kind": "bigquery", "path": None, "table": table, "project": self.project,
                                 "dataset": dataset, "location": "US", "api_endpoint": self.endpoint})

    def overrides(self, dataset: str) -> list[str]:
        """The CLI overrides that send a run's rows to this emulator."""
        return ["sink=bigquery", f"sink.project={self.project}", f"sink.dataset={dataset}",
                f"sink.api_endpoint={self.endpoint}"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"BigQuery emulator tests cannot run on CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def bqemulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BQEmulator]:
    exe = shutil.which("bqemulator", path=str(Path(sys.executable).parent)) or shutil.which("bqemulator")
    if exe is None:
        _unavailable("the bqemulator command is not installed (pip install -e '.[test]')")
    try:
        import duckdb_extensions  # noqa: F401
        from google.cloud import bigquery  # noqa: F401
    except ImportError as err:
        _unavailable(f"{err.name} is not installed (pip install -e '.[test]')")
    spatial = subprocess.run(
        [sys.executable, "-c", "import duckdb_extensions as d; d.import_extension('spatial')"],
        capture_output=True, text=True, timeout=120,
    )
    if spatial.returncode != 0:
        raise RuntimeError(f"installing DuckDB's spatial extension failed:\n{spatial.stderr[-3000:]}")

    log = tmp_path_factory.mktemp("bqemulator") / "bqemulator.log"
    rest, grpc = _free_port(), _free_port()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [exe, "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest), "--grpc-host", "127.0.0.1",
             "--grpc-port", str(grpc), "--project", PROJECT],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        endpoint = f"http://127.0.0.1:{rest}"
        wait_http_ok("bqemulator", f"{endpoint}/readyz", proc, log, READY_TIMEOUT_S)
        yield BQEmulator(endpoint=endpoint, project=PROJECT, log=log)
    finally:
        stop(proc)
