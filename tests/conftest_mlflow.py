"""A real MLflow tracking server and a real headless Chromium for the tracking tests (imported by the test
modules that need them, like ``tests/conftest_bqemulator.py``).

* ``mlflow_server`` (session): ``mlflow server --backend-store-uri sqlite:///... --host 127.0.0.1 --port P
  --workers 1`` in its own process group, ready when ``/health`` answers (polled until a deadline), stopped
  at the end. Its periodic job runner is switched off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``): the
  tests do not need it, and it would take CPU from the sweeps.
* :class:`Chromium`: Debian's ``chromium``, headless, driven through the DevTools protocol over
  ``--remote-debugging-pipe`` (file descriptors 3 and 4, NUL-separated JSON), so no WebSocket library is
  needed: open a page, wait until a JavaScript condition holds (polled until a deadline), click, screenshot.

Without the server or the browser the tests are skipped locally and FAIL on CI (``CI=true``), so a CI image
that lost them cannot go green by skipping.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.services import wait_http_ok

READY_TIMEOUT_S = 180.0  # ~6 s on an idle machine; much more on a loaded 2-core CI runner
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"MLflow tracking tests cannot run on CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MLflowServer:
    uri: str  # http://127.0.0.1:PORT
    port: int
    log: Path

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (uvicorn runs as its child), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def mlflow_executable() -> str:
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if exe is None:
        unavailable("the mlflow command is not installed next to this Python (pip install -e .)")
    return str(exe)


class MLflowProcess:
    """One ``mlflow server`` on a SQLite backend store under ``root``, which can be killed (SIGKILL to its
    process group, as a crashed or evicted server) and started again on the same port and store."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.log = root / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until ``/health`` answers (fails with the server's log if it does not)."""
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        with self.log.open("ab") as log_file:
            self.proc = subprocess.Popen(
                [mlflow_executable(), "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                 "--artifacts-destination", str(self.root / "artifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                cwd=self.root, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_http_ok("mlflow server", f"{self.uri}/health", self.proc, self.log, READY_TIMEOUT_S,
                     interval_s=0.2, request_timeout_s=2.0)

    def kill(self) -> None:
        """SIGKILL to the whole group (uvicorn runs as the CLI's child): no graceful shutdown."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    server = MLflowProcess(tmp_path_factory.mktemp("mlflow_server"), free_port())
    try:
        try:
            server.start()
        except RuntimeError as err:
            unavailable(str(err))
        yield MLflowServer(uri=server.uri, port=server.port, log=server.log)
    finally:
        server.stop()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on, held (bound, not listening) so nobody else takes it meanwhile:
    connecting to it is refused at once, like a tracking server that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts TCP connections and never answers: a hung tracking server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------ browser
def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    unavailable("Debian's chromium is not installed (apt-get install -y chromium)")
    raise AssertionError("unreachable")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``)."""

    def __init__(self, user_data_dir: Path, width: int = 1600, height: int = 900) -> None:
        self.width, self.height = width, height
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        args = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
                f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"]
        # the browser reads commands on fd 3 and writes answers on fd 4: a tiny exec trampoline puts the pipe
        # ends there (dup first, so neither end is overwritten before it is copied)
        trampoline = ("import os, sys; a, b = os.dup(int(sys.argv[1])), os.dup(int(sys.argv[2])); "
                      "os.dup2(a, 3); os.dup2(b, 4); os.set_inheritable(3, True); os.set_inheritable(4, True); "
                      "os.execv(sys.argv[3], sys.argv[3:])")
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", trampoline, str(cmd_r), str(resp_w), *args],
                                     pass_fds=(cmd_r, resp_w), stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     start_new_session=True)
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, page=True)

    def call(self, method: str, params: dict[str, Any] | None = None, page: bool = False,
             timeout_s: float = 60.0) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer (events in between are skipped)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\0" not in self._buf:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer to {method} within {timeout_s} s")
                ready, _, _ = select.select([self._resp_r], [], [], 0.5)
                if ready:
                    chunk = os.read(self._resp_r, 1 << 20)
                    if not chunk:
                        raise RuntimeError(f"chromium closed the DevTools pipe: {self.stderr_text()}")
                    self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, page=True)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, page=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy, or fail at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
                raise AssertionError(
                    f"timed out after {timeout_s} s waiting for {what or expression}; page text:\n{text}")
            time.sleep(0.2)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"}, page=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout_s=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for fd in (self._cmd_w, self._resp_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.stderr.close()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    chromium_path()  # skip (locally) or fail (CI) before anything starts
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()
