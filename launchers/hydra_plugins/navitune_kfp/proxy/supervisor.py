"""Mode ``process``: the proxy as a supervised child process of the job, whose death interrupts the job."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from hydra_plugins.navitune_shared.proxy_settings import HOST, INTERRUPT_SIGNAL, MODES, ProxyDied, ProxySettings, ProxyStartError, ProxyStartTimeout


def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_taken(host: str, port: int) -> bool:
    """True when something already listens there (our proxy would fail to bind and the probe would lie)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(settings: ProxySettings, *, host: str = HOST, poll_s: float = 0.05) -> None:
    """Wait until the proxy accepts TCP connections (mode ``native``: the sidecar starts beside the job, and
    the platform spec cannot carry a startup probe), or raise :class:`ProxyStartTimeout`."""
    deadline = time.monotonic() + settings.start_timeout_s
    while not _port_accepts(host, settings.port):
        if time.monotonic() > deadline:
            raise ProxyStartTimeout(
                f"Cloud SQL proxy for {settings.instance} did not accept connections on {host}:{settings.port} "
                f"within {settings.start_timeout_s:g} s")
        time.sleep(poll_s)


def _die_with_parent_hook() -> Any:
    """A ``preexec_fn`` that makes the child get SIGTERM when the job process dies (even by SIGKILL), so an
    orphaned proxy never keeps the port of the next attempt busy. Linux only (None elsewhere). ``prctl`` is
    resolved here, in the parent: the hook itself must not import or take locks between fork and exec."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm)


@dataclass
class ProxyHandle:
    """What :func:`supervised_proxy` yields: the running proxy, and a way to poll it from job code."""

    settings: ProxySettings
    pid: int
    host: str
    port: int
    command: list[str]
    _sup: "_Supervisor" = field(repr=False)

    @property
    def alive(self) -> bool:
        return self._sup.proc.poll() is None

    def check(self) -> None:
        """Raise :class:`ProxyDied` if the proxy has exited (for jobs that run outside the main thread)."""
        if self._sup.proc.poll() is not None and self._sup.watcher is not None:
            self._sup.watcher.join(timeout=2.0)  # it is recording the death right now
        if self._sup.died is not None:
            raise self._sup.died


class _Supervisor:
    """One proxy child process: start, readiness, a watcher thread, and the stop sequence."""

    def __init__(self, settings: ProxySettings, host: str) -> None:
        self.settings, self.host = settings, host
        self.command = settings.process_command()
        self.proc: subprocess.Popen | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self.lock = threading.Lock()
        self.armed = False
        self.stopping = False
        self.died: ProxyDied | None = None
        self.signalled = False
        self.handled = threading.Event()
        self.prev_handler: Any = None
        self.installed = False
        self.threads: list[threading.Thread] = []
        self.watcher: threading.Thread | None = None
        self.group_killed = False

    # -- start
    def start(self) -> None:
        s = self.settings
        where = f"{self.host}:{s.port}"
        if _port_taken(self.host, s.port):
            raise ProxyStartError(f"cannot start Cloud SQL proxy for {s.instance}: {where} is already in use")
        try:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent_hook(),
            )
        except OSError as err:
            raise ProxyStartError(f"cannot start Cloud SQL proxy for {s.instance}: {self.command[0]!r}: "
                                  f"{err.strerror or err}") from None
        self._thread(self._pump, "proxy-output")
        deadline = time.monotonic() + s.start_timeout_s
        try:
            while not _port_accepts(self.host, s.port, timeout=0.2):
                code = self.proc.poll()
                if code is not None:
                    raise ProxyStartError(f"Cloud SQL proxy for {s.instance} exited with code {code} before "
                                          f"accepting connections on {where}{self._last_output()}")
                if time.monotonic() > deadline:
                    raise ProxyStartTimeout(f"Cloud SQL proxy for {s.instance} did not accept connections on "
                                            f"{where} within {s.start_timeout_s:g} s{self._last_output()}")
                time.sleep(0.05)
        except BaseException:
            self._terminate()
            raise
        self.watcher = self._thread(self._watch, "proxy-watcher")

    def _thread(self, target: Any, name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def _pump(self) -> None:
        """Forward the proxy's output to the job's stderr (so it is in the KFP logs) and keep a short tail."""
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            try:
                print(f"[cloud-sql-proxy] {line}", file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass

    def _last_output(self) -> str:
        time.sleep(0.05)  # let the pump read the last line of a process that just exited
        return f"; last output: {self.tail[-1][:300]}" if self.tail else ""

    # -- watch
    def _watch(self) -> None:
        """Block until the proxy exits; if the job is still running, fail it from here (see :meth:`arm`)."""
        assert self.proc is not None
        code = self.proc.wait()
        if self.stopping:
            return
        died = self._death(code)
        with self.lock:
            if self.stopping:
                return
            self.died = died
            if self.armed and self.installed:
                self.signalled = True
                # A real signal to the main thread, not _thread.interrupt_main(): it also interrupts a blocking
                # call (a socket read in PyMySQL, time.sleep) with EINTR, so the job fails within moments.
                signal.pthread_kill(threading.main_thread().ident, INTERRUPT_SIGNAL)

    def _death(self, code: int) -> ProxyDied:
        how = f" (killed by {signal.Signals(-code).name})" if code < 0 and -code in signal.valid_signals() else ""
        return ProxyDied(f"Cloud SQL proxy for {self.settings.instance} exited with code {code}{how} "
                         f"while the job was running{self._last_output()}")

    def _exit_code_so_far(self) -> int | None:
        """The proxy's exit code if it has already exited (before we stop it), else None; does not reap."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # the watcher reaped it this instant
            if self.watcher is not None:
                self.watcher.join(timeout=2.0)
            return self.proc.returncode
        if info is None:
            return None
        return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.handled.set()
        if self.armed and self.died is not None:
            self.armed = False  # raise once
            raise self.died

    def arm(self) -> None:
        """From now on a proxy death raises :class:`ProxyDied` in the main thread (if we are in it)."""
        if threading.current_thread() is threading.main_thread():
            try:
                self.prev_handler = signal.signal(INTERRUPT_SIGNAL, self._on_signal)
                self.installed = True
            except (ValueError, OSError):  # e.g. an embedding that owns signals: fall back to raise-on-exit
                pass
        with self.lock:
            self.armed = True
            died = self.died
        if died is not None:
            raise died

    # -- stop
    def stop(self) -> ProxyDied | None:
        """Disarm, stop the proxy and its process group, restore the signal handler; return the death, if any."""
        with self.lock:
            self.stopping = True
            self.armed = False
        if self.died is None:
            # The job may have failed on its own first (its DB connections broke with the proxy) before the
            # watcher recorded the death: a proxy that exited before we stop it still died during the run.
            code = self._exit_code_so_far()
            if code is not None:
                self.died = self._death(code)
        if self.signalled:
            # The watcher sent a signal: let our (now inert) handler consume it before restoring the previous
            # one, which may be SIG_DFL (terminate the process).
            deadline = time.monotonic() + 2.0
            while not self.handled.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.installed and (not self.signalled or self.handled.is_set()):
            signal.signal(INTERRUPT_SIGNAL, self.prev_handler)
            self.installed = False
        self._terminate()
        return self.died

    def _terminate(self) -> None:
        proc = self.proc
        if proc is None:
            return
        with self.lock:
            self.stopping = True
        if not self.group_killed:  # once: stop() may run twice (see supervised_proxy)
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout=self.settings.stop_timeout_s)
            except subprocess.TimeoutExpired:
                pass
            # SIGKILL the whole group: the proxy itself if SIGTERM was not enough, and any children it forked
            # (socat's per-connection children), which would otherwise outlive the job. The group id stays
            # reserved while any member lives; it is not signalled again afterwards.
            self.group_killed = True
            self._signal_group(signal.SIGKILL)
        proc.wait()
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)
        if proc.stdout is not None:
            proc.stdout.close()

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


@contextlib.contextmanager
def supervised_proxy(settings: ProxySettings, *, host: str = HOST) -> Iterator[ProxyHandle]:
    """Run the proxy (mode ``process``) as a supervised child process for the duration of the block.

    Starts ``settings.process_command()`` in its own process group, waits until ``host:port`` accepts
    connections (:class:`ProxyStartError` if it exits first, :class:`ProxyStartTimeout` after
    ``start_timeout_s``), yields a :class:`ProxyHandle`, and on exit stops it (SIGTERM, then SIGKILL of the
    group after ``stop_timeout_s``). If the proxy dies while the block runs, a watcher thread interrupts the
    main thread with ``SIGUSR1`` whose handler raises :class:`ProxyDied`; whatever the block then raises (a DB
    error, a KeyboardInterrupt, or nothing because it swallowed the error), the exception leaving this context
    is that :class:`ProxyDied`, so the job fails with one clear message. Outside the main thread there is no
    interruption: the death is raised on exit, and ``handle.check()`` raises it on demand."""
    sup = _Supervisor(settings, host)
    sup.start()
    handle = ProxyHandle(settings=settings, pid=sup.proc.pid, host=host, port=settings.port,  # type: ignore[union-attr]
                         command=list(sup.command), _sup=sup)
    body_error: BaseException | None = None
    try:
        sup.arm()
        yield handle
    except BaseException as exc:  # noqa: BLE001 - decided below, after the proxy is stopped
        body_error = exc
    finally:
        # The handler raises at most once; if it fires while we get here, stop again (it is idempotent).
        while True:
            try:
                died = sup.stop()
                break
            except ProxyDied as exc:
                body_error = body_error or exc
    if died is not None:
        if body_error is died:
            raise died
        raise died from body_error
    if body_error is not None:
        raise body_error


@contextlib.contextmanager
def proxy_for_job(settings: ProxySettings | None, *, host: str = HOST) -> Iterator[ProxyHandle | None]:
    """What the remote job wraps its task in: ``process`` → :func:`supervised_proxy`; ``native`` → wait for
    the sidecar's port (Kubernetes restarts a dead sidecar itself); ``None`` (mode ``none``) → nothing."""
    if settings is None:
        yield None
    elif settings.mode == "process":
        with supervised_proxy(settings, host=host) as handle:
            yield handle
    elif settings.mode == "native":
        wait_for_port(settings, host=host)
        yield None
    else:  # pragma: no cover - proxy_settings() only returns process or native
        raise ValueError(f"invalid config proxy.mode={settings.mode!r}; allowed: {', '.join(MODES)}")
