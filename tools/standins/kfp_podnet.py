"""A pod's own network namespace for the KFP stand-in (``Executor(pod_network=True)``).

Why: pods on one machine otherwise share its ports, and every job of a sweep runs its Cloud SQL proxy on the same
port. Each pod gets a "pause" process holding a new user + network namespace (``unshare``, no root needed where
user namespaces are allowed); every container of the pod enters it (``nsenter``). The machine's ports a pod may
reach (the KFP API, a database) are bridged in through unix sockets, which the shared file system carries
across namespaces: a socat per port listens on the pod's 127.0.0.1 and connects to the stand-in's socket, whose
socat connects to the machine's port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .kfp_images import Container
from .kfp_process import PodFailed, Proc, last_line

# The pod's "pause" process: a new user + network namespace whose loopback is brought up (SIOCGIFFLAGS /
# SIOCSIFFLAGS with IFF_UP, no iproute2 needed), then a sleep that holds the namespace for the pod's containers.
_PAUSE = (
    "import fcntl, os, socket, struct\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "flags = struct.unpack('16sH14s', fcntl.ioctl(s, 0x8913, struct.pack('16sH14s', b'lo', 0, b'')))[1]\n"
    "fcntl.ioctl(s, 0x8914, struct.pack('16sH14s', b'lo', flags | 1, b''))\n"
    "print('up', flush=True)\n"
    "os.execvp('sleep', ['sleep', '1000000'])\n"
)


def pod_network_available() -> bool:
    """Can this machine give a pod its own network namespace (``unshare --user --map-root-user --net``)?"""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "--net", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _listening(pid: int, port: int) -> bool:
    """Does something listen on 127.0.0.1:``port`` in the network namespace of process ``pid``?"""
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    want = f"0100007F:{port:04X}"
    return any(ln.split()[1] == want and ln.split()[3] == "0A" for ln in lines if len(ln.split()) > 3)


class PodNetwork:
    """A pod's own network namespace (its own 127.0.0.1: two pods may listen on one port), which every
    container of the pod enters; the host ports the pods may reach are bridged into it through unix sockets
    (the file system is shared), one socat listening in the pod per port."""

    def __init__(self, pod: Any, ports: list[int], bridge: Callable[[int], Path]) -> None:
        self.pod = pod
        self.procs: list[Proc] = []
        pause = Container("pause", ["unshare", "--user", "--map-root-user", "--net", "--", sys.executable, "-I",
                                    "-S", "-c", _PAUSE], pod.dir, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.pause = Proc(pause, pod.dir / "pause.log")
        self.procs.append(self.pause)
        try:
            self._start(ports, bridge)
        except BaseException:
            self.stop()
            raise

    def _start(self, ports: list[int], bridge: Callable[[int], Path]) -> None:
        pod = self.pod
        deadline = time.monotonic() + 10
        while "up" not in self.pause.log.read_text():
            if not self.pause.alive() or time.monotonic() > deadline:
                raise PodFailed("FailedCreatePodSandBox", f"no network namespace for the pod: "
                                f"{last_line(self.pause.log) or 'timed out'}", retryable=False)
            time.sleep(0.01)
        for port in ports:
            sock = bridge(port)
            fwd = Container(f"net-{port}", self.enter(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                                                       f"UNIX-CONNECT:{sock}"]), pod.dir,
                            {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            proc = Proc(fwd, pod.dir / "network.log")
            self.procs.append(proc)
            while not _listening(self.pause.popen.pid, port):
                if not proc.alive() or time.monotonic() > deadline:
                    raise PodFailed("FailedCreatePodSandBox", f"cannot bridge port {port} into the pod: "
                                    f"{last_line(proc.log) or 'timed out'}", retryable=False)
                time.sleep(0.01)

    def enter(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pause.popen.pid), "--user", "--net", "--preserve-credentials", "--", *argv]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(0)
