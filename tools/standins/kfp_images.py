"""The images of the KFP stand-in's registry: what a container of each runs on this machine.

Why a registry: the stand-in runs processes, not containers, so an image name must map to something local. The
job image is this checkout (this environment's interpreter as ``python3``, the image's working directory); the
Cloud SQL Auth Proxy image is ``socat`` in front of a local database. A name not in the registry fails the pod
like an image pull error.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol

REPO = Path(__file__).resolve().parents[2]
PROXY_IMAGE = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1"  # proxy_settings.DEFAULT_IMAGE


@dataclass
class Container:
    """One container of a pod as this machine runs it: argv, working directory and environment."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]


class PodView(Protocol):
    """What an image needs of the pod it runs in."""

    shared: Path  # a directory the stand-in's pods share (an image's own files, made once)

    def path(self, pod_path: str) -> Path:
        """Where an absolute path of the pod is on this machine."""
        ...

    def host_address(self, port: int) -> str:
        """A socat address that reaches ``127.0.0.1:port`` of this machine from inside the pod."""
        ...


ImageRunner = Callable[[Container, PodView], Container]


@dataclass
class Image:
    """An image of the stand-in's registry: what a container of it runs here. ``prepare`` turns the container
    as the spec gives it (``argv`` = command + args, empty when the spec leaves the image's entrypoint) into
    what runs; ``env`` is the image's own environment."""

    name: str
    prepare: ImageRunner
    env: dict[str, str] = field(default_factory=dict)


class Registry:
    """Image name -> :class:`Image`. Pulling a name not in it fails like ``ErrImagePull``."""

    def __init__(self) -> None:
        self.images: dict[str, Image] = {}

    def add(self, image: Image) -> Image:
        self.images[image.name] = image
        return image

    def get(self, name: str) -> Image | None:
        return self.images.get(name)


def job_image(name: str, workdir: Path | None = None, python: str = sys.executable) -> Image:
    """The job image: this checkout (``workdir``, the image's WORKDIR, defaults to the repository) and this
    interpreter as ``python3``/``python`` on PATH, with the packages of this environment (installed from
    this checkout, as the Dockerfile installs it)."""

    def prepare(c: Container, pod: PodView) -> Container:
        bindir = pod.shared / "bin"
        if not (bindir / "python").exists():
            bindir.mkdir(parents=True, exist_ok=True)
            for exe in ("python3", "python"):  # a wrapper, not a symlink: a venv is found from the path it runs as
                tmp = bindir / f".{exe}.{os.getpid()}.{threading.get_ident()}"
                tmp.write_text(f"#!/bin/sh\nexec {shlex.quote(python)} \"$@\"\n")
                tmp.chmod(0o755)
                os.replace(tmp, bindir / exe)
        if not c.argv:
            c.argv = ["python", "-m", "experiment", "--help"]  # the Dockerfile's CMD
        c.env["PATH"] = f"{bindir}:{c.env.get('PATH', '/usr/bin:/bin')}"
        c.cwd = workdir or REPO
        return c

    return Image(name, prepare, env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
                                     "NUMBA_CACHE_DIR": str(Path(tempfile.gettempdir()) / "navitune-numba")})


def proxy_image(instances: Mapping[str, int], name: str = PROXY_IMAGE) -> Image:
    """The Cloud SQL Auth Proxy image: its entrypoint (``cloud-sql-proxy <instance> --port N [flags]``) runs
    ``socat`` from ``127.0.0.1:N`` to the local database that stands in for ``instance`` (``instances``:
    connection name -> local port). An unknown instance or a ``--credentials-file`` the pod does not have
    makes it exit 1 with the proxy's kind of message, so the sidecar crash-loops as the real one would."""

    def prepare(c: Container, pod: PodView) -> Container:
        args = list(c.argv)
        instance = args[0] if args and not args[0].startswith("-") else None
        port: int | None = None
        creds: str | None = None
        for i, arg in enumerate(args):
            if arg in ("--port", "-p") and i + 1 < len(args):
                port = int(args[i + 1])
            elif arg.startswith("--port="):
                port = int(arg.split("=", 1)[1])
            if arg in ("--credentials-file", "-c") and i + 1 < len(args):
                creds = args[i + 1]
        problem = None
        if instance not in instances:
            problem = f"failed to connect to instance {instance}: not found (the stand-in knows {sorted(instances)})"
        elif port is None:
            problem = "no --port given"
        elif creds is not None and not pod.path(creds).is_file():
            problem = f"failed to read credentials file {creds}: no such file"
        if problem:
            c.argv = ["sh", "-c", f"echo {shlex.quote(problem)} >&2; exit 1"]
        else:
            c.argv = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                      pod.host_address(instances[instance])]
        return c

    return Image(name, prepare)
