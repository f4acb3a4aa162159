"""The journal file backend (``journal:///path``: a file safe for parallel writers, which optuna-dashboard
opens) and its repair.

A journal is checked when it is opened: a last record cut short (a crash or a full disk in the middle of an
append) is removed and kept in ``<journal>.bak``, with one log line; a broken record before the end stops
with one line naming the file and the line, and the file is left as it is. Appends are written and synced in
one go, and cut off again when they fail half-way. Its lock can be held around several operations, which the
journal's claims (:mod:`.claims`) need.

It exists apart because all of this is the journal file's own business; :mod:`.storage` only picks it from a
setting.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from optuna.storages.journal import JournalFileBackend

from .storage_errors import StorageError

log = logging.getLogger("hydra_plugins.navitune_shared.storage")  # the storage's log lines, as before the split


def journal_storage(path: Path) -> Any:
    """The journal storage of the file ``path``, its torn tail repaired first; one line (:class:`StorageError`)
    when it is a directory or corrupt."""
    from optuna.storages import JournalStorage

    if path.is_dir():
        raise StorageError(f"optuna_async: the journal {path} is a directory; allowed: a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = HeldLockJournalBackend(str(path))
    with backend.held():
        _repair_torn_tail(path)
    try:
        return JournalStorage(backend)
    except ValueError as err:  # json.JSONDecodeError too: a broken record before the last
        raise StorageError(_corruption(path, err)) from None


class HeldLockJournalBackend(JournalFileBackend):
    """Optuna's JournalFileBackend whose lock can be held around several operations (a claim: read, check,
    write; a repair). Appends made while this thread holds the lock write directly: Optuna's lock is not
    reentrant."""

    _holder: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._holder == threading.get_ident():
            yield
            return
        self._lock.acquire()
        self._holder = threading.get_ident()
        try:
            yield
        finally:
            self._holder = None
            _release(self._lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with self.held():
            _append(self._file_path, logs)


def _release(lock: Any) -> None:
    """Release Optuna's file lock. An interrupt (Ctrl-C, or SIGTERM turned into one) that lands just after its
    release removed the lock file sends Optuna's clean-up to remove it a second time, which fails with
    FileNotFoundError and hides the interrupt (a stopped sweep would exit 1, not 130): the lock is free then,
    and the interrupt is raised as it came."""
    try:
        lock.release()
    except FileNotFoundError as err:
        if isinstance(err.__context__, (KeyboardInterrupt, SystemExit)):
            raise err.__context__ from None
        raise


def _append(file_path: str, logs: list[dict[str, Any]]) -> None:
    """Optuna's own record format (one compact JSON object a line), written and synced in one go. A write
    that fails half-way (a full disk) is cut off again, so the journal never ends in a torn record."""
    data = memoryview(("\n".join(json.dumps(e, separators=(",", ":")) for e in logs) + "\n").encode("utf-8"))
    fd = os.open(file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            while data:  # unbuffered: nothing is left behind to be written later
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _repair_torn_tail(path: Path) -> None:
    """Called with the journal's lock held, so no append is under way: bytes after the last newline are a
    record cut short. Move them to ``<journal>.bak`` and cut the file after its last complete record."""
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = _last_newline(f, size) + 1
        f.seek(start)
        tail = f.read()
    try:
        json.loads(tail)
    except ValueError:
        pass
    else:  # a whole record without its newline: complete it, nothing is lost
        with path.open("ab") as f:
            f.write(b"\n")
        return
    bak = _free_name(path.with_name(path.name + ".bak"))
    try:
        bak.write_bytes(tail)
        os.truncate(path, start)
    except OSError as err:
        raise StorageError(f"optuna_async: {path} ends in a record cut short ({len(tail)} bytes) and cannot be "
                           f"repaired ({err.strerror}): the file is left as it is") from None
    log.warning(f"optuna_async: {path} ended in a record cut short (a crash or a full disk): removed its "
                f"{len(tail)} bytes, kept in {bak}")


def _last_newline(f: Any, size: int, chunk: int = 65536) -> int:
    """Offset of the last b"\\n" in the file (-1 if none), reading backwards."""
    end = size
    while end > 0:
        begin = max(0, end - chunk)
        f.seek(begin)
        at = f.read(end - begin).rfind(b"\n")
        if at >= 0:
            return begin + at
        end = begin
    return -1


def _free_name(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{n}")
        n += 1
    return candidate


def _corruption(path: Path, err: BaseException) -> str:
    """One line naming the first broken record of a journal."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                json.loads(line)
            except ValueError as bad:
                return (f"optuna_async: the journal {path} is corrupt at line {number} ({bad}); it was left as "
                        f"it is: restore it from a backup, or move it away to start a new study")
    return f"optuna_async: the journal {path} cannot be read ({err}); it was left as it is"
