"""``run_hydra_job`` calls ``finish`` exactly once: a proxy (mode ``process``) that dies after the job's result
was published must not publish a failure over it. Real parts: the project's composed config and a real proxy
process (a Python listener standing in for the Cloud SQL Auth Proxy), killed from ``finish``."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.utils import JobStatus
from omegaconf import open_dict

from experiment.preflight import CONF_DIR
from hydra_plugins.navitune_kfp.job import run_hydra_job
from tests.fixtures.services import free_port


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_finish_runs_once_when_the_proxy_dies_after_the_result(tmp_path: Path) -> None:
    port, pidfile = free_port(), tmp_path / "proxy.pid"
    listener = (f"import os, socket\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
                "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('127.0.0.1', {port})); s.listen()\nwhile True:\n    c, _ = s.accept(); c.close()\n")
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose(config_name="config", return_hydra_config=True, overrides=[
            "proxy=cloudsql", "proxy.mode=process", "proxy.instance=acme:asia-northeast1:navitune",
            f"proxy.port={port}", "proxy.start_timeout_s=20", f"hydra.sweep.dir={tmp_path}/sweep",
            "hydra.sweep.subdir=0"])
    with open_dict(cfg):
        cfg.proxy.command = [sys.executable, "-c", listener]
    published: list[JobStatus] = []

    def finish(ret) -> None:  # publishes the result, then the proxy dies before the job closes it
        published.append(ret.status)
        if len(published) == 1:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not refuses(port):
                assert time.monotonic() < deadline, "the proxy did not die"
                time.sleep(0.05)

    ret = run_hydra_job(cfg, lambda _cfg: 1.0, None, finish=finish)
    assert published == [JobStatus.COMPLETED]  # once: no failure published over the success
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 1.0
