"""Study storages from one setting: an RDB URL, ``journal:///path`` (a journal file safe for parallel
writers, which optuna-dashboard opens), or None (in memory).

Two things Optuna's storages lack, which several sweepers sharing a study need:

* ``claim(study, key, value)``: set a study system attribute only if nobody has, atomically across processes
  (RDB: a plain INSERT that the table's unique (study_id, key) constraint refuses the second time; journal:
  the check and the write under the journal's own file lock). The baseline trials and each sweeper's random
  stream are claimed this way.
* A journal is checked when it is opened: a last record cut short (a crash or a full disk in the middle of an
  append) is removed and kept in ``<journal>.bak``, with one log line; a broken record before the end stops
  with one line naming the file and the line, and the file is left as it is.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from hydra.errors import CompactHydraException
from optuna.storages.journal import JournalFileBackend

from .errors import message_line
from .optuna_internals import set_study_system_attr, storage_of, study_id, study_system_attrs, waiting_query_cache
from .retry import Backoff, call_with_retries

log = logging.getLogger(__name__)


class StorageError(CompactHydraException):
    """A study storage that cannot be used as it is, reported on one line."""


def make_storage(setting: Any, existing: bool = False) -> Any:
    """An Optuna storage (or None); fails with one line when the storage cannot be reached or read.
    ``existing``: the study is known to exist (a job of a sweep): an RDB storage skips creating the tables and
    checking the schema (the sweeper did both)."""
    if setting is None or str(setting) in ("", "None", "null"):
        return None
    text = str(setting)
    if text.startswith("journal://"):
        return _journal_storage(Path(text[len("journal://"):]))
    return _rdb_storage(text, existing=existing)


def sweeper_storage(setting: Any) -> Any:
    """The sweeper's storage: :func:`make_storage`, with an RDB storage in Optuna's cache that answers "which
    trials wait?" with one query on their state.

    Why: ``study.ask()`` first looks for WAITING trials (enqueued baselines and retries), and Optuna's cache
    answers any question by reloading every unfinished trial in full (parameters, attributes, intermediate
    values). With 100 trials in flight that reload was most of an ask's time, and asks are on the sweeper's
    one thread (``bench kfp-scale``, docs/performance.md). Waiting trials are few and never cached anyway."""
    storage = make_storage(setting)
    from optuna.storages import RDBStorage

    if isinstance(storage, RDBStorage):
        return waiting_query_cache(storage)
    return storage


_SHARED: dict[str, Any] = {}
_SHARED_LOCK = threading.Lock()
LOCK_CONFLICT_BACKOFF = Backoff(first_s=0.03, factor=1.5, max_s=0.25, jitter=0.8)  # a deadlock victim's next try
OPEN_BACKOFF = Backoff(first_s=0.3, factor=1.0, max_s=0.3, jitter=0.65)  # a schema race at the storage's creation


def shared_storage(setting: Any) -> Any:
    """This process's one storage for an RDB ``setting`` (made on first use; others as :func:`make_storage`).

    Why: a remote job reports to its trial and then publishes its result; with a storage each, it held two
    database connection pools (two connections through its proxy) where one does. At 100 jobs in flight that
    was the study database's connection count (``python -m experiment.bench kfp-scale``, docs/performance.md).
    The study exists (its sweeper made it), so the storage neither creates tables nor checks the schema:
    Optuna's check opens a second connection while the first is held (two per job for a moment at its start,
    then an idle one for its life)."""
    if setting is None or str(setting) in ("", "None", "null") or str(setting).startswith("journal://"):
        return make_storage(setting)
    key = str(setting)
    with _SHARED_LOCK:
        storage = _SHARED.get(key)
        if storage is None:
            storage = _SHARED[key] = make_storage(setting, existing=True)
        return storage


# ------------------------------------------------------------------------------------------- claims
def claim(study: Any, key: str, value: Any, then: Callable[[], None] | None = None) -> bool:
    """Set the study system attribute ``key`` to ``value`` unless it is set already; True if this call set it.
    Atomic across processes for the RDB and journal storages. ``then`` runs only after a successful claim
    (for the journal, still under its lock, so the claim and what it guards land together)."""
    from optuna.storages import InMemoryStorage, JournalStorage, RDBStorage

    storage = storage_of(study)
    storage = getattr(storage, "_backend", storage) if not isinstance(storage, JournalStorage) else storage
    if isinstance(storage, RDBStorage):
        won = _rdb_claim(storage, study_id(study), key, value)
        if won and then is not None:
            then()
        return won
    if isinstance(storage, JournalStorage) and isinstance(storage._backend, HeldLockJournalBackend):
        with storage._backend.held():
            return _check_and_set(study, key, value, then)
    if isinstance(storage, InMemoryStorage):  # one process
        return _check_and_set(study, key, value, then)
    raise StorageError(f"optuna_async: storage {type(storage).__name__} cannot claim {key!r} atomically")


def _check_and_set(study: Any, key: str, value: Any, then: Callable[[], None] | None) -> bool:
    if key in study_system_attrs(study):
        return False
    set_study_system_attr(study, key, value)
    if then is not None:
        then()
    return True


def _rdb_claim(storage: Any, study_id: int, key: str, value: Any, attempts: int = 20) -> bool:
    """INSERT (never the find-then-update of ``set_study_system_attr``): the unique (study_id, key) constraint
    lets exactly one of several concurrent inserts commit. Inserts waiting on the same key may deadlock
    (InnoDB picks a victim): the victim tries again, and then wins or finds the key taken."""
    from optuna.storages._rdb import models
    from sqlalchemy.exc import IntegrityError, OperationalError

    def insert() -> bool:
        session = storage.scoped_session()
        try:
            session.add(models.StudySystemAttributeModel(study_id=study_id, key=key, value_json=json.dumps(value)))
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False
        except OperationalError:
            session.rollback()
            raise
        finally:
            storage.scoped_session.remove()

    # deadlock or lock wait timeout (judged by the driver's code): try again soon, out of step with the others
    return call_with_retries(insert, attempts=attempts, backoff=LOCK_CONFLICT_BACKOFF,
                             retry_on=lambda err: isinstance(err, OperationalError) and _lock_conflict(err))


# ------------------------------------------------------------------------------------------ journal
def _journal_storage(path: Path) -> Any:
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
            self._lock.release()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with self.held():
            _append(self._file_path, logs)


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


# ------------------------------------------------------------------------------------ disk reserve
class DiskReserve:
    """A little disk space set aside next to a journal while a sweeper runs, given back when the disk is
    full so that the sweeper can still record that its trials stopped (and enqueue them again). One file
    per sweeper process (``.<journal>.reserve.<host>.<pid>``); a killed sweeper's file is removed by the
    next sweeper on the same host. Does nothing for other storages."""

    SIZE = 256 * 1024  # ~800 journal records: the bookkeeping of stopping ~250 trials in flight

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def for_storage(cls, setting: Any, owner: str) -> "DiskReserve":
        text = "" if setting is None else str(setting)
        if not text.startswith("journal://"):
            return cls(None)
        journal = Path(text[len("journal://"):])
        host, _, pid = owner.partition(":")
        prefix = f".{journal.name}.reserve."
        if journal.parent.is_dir():
            for old in journal.parent.glob(f"{prefix}{host}.*"):
                other = old.name[len(prefix) + len(host) + 1:]
                if other.isdigit() and other != pid and not alive(int(other)):
                    old.unlink(missing_ok=True)
        path = journal.parent / f"{prefix}{host}.{pid}"
        try:
            journal.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                f.write(b"\0" * cls.SIZE)
                f.flush()
                os.fsync(f.fileno())
        except OSError:  # no room for it: nothing to give back later
            path.unlink(missing_ok=True)
            return cls(None)
        return cls(path)

    def release(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------- RDB
def _rdb_storage(url: str, attempts: int = 5, existing: bool = False) -> Any:
    """An RDBStorage. Two sweepers starting on an empty database race to create the schema (one of them
    sees "table already exists"): such errors are retried after a short random pause; an unreachable
    server is not (it fails at once with one line). ``existing``: no table creation nor schema check (Optuna
    still reads its version row at start, on the one connection the storage then keeps: an unreachable server
    fails here all the same)."""
    import optuna

    def open_storage() -> Any:
        skips = {"skip_table_creation": True, "skip_compatibility_check": True} if existing else {}
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **skips)

    try:  # a server that cannot be reached fails at once; other errors (a table race) are tried again
        return call_with_retries(open_storage, attempts=attempts, backoff=OPEN_BACKOFF,
                                 retry_on=lambda err: not _is_connection_error(_underlying(err)))
    except Exception as caught:  # SQLAlchemy / driver errors of many kinds
        err = _underlying(caught)
        what = "cannot reach" if _is_connection_error(err) else "cannot open"
        raise StorageError(f"optuna_async: {what} hydra.sweeper.storage={describe(url)}: "
                           f"{message_line(err, 200)}") from None


# MySQL client/server error codes of a server that cannot be reached or refuses us: can't connect (2002, 2003),
# unknown host (2005), gone away / lost (2006, 2013), access denied (1044, 1045)
MYSQL_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 1044, 1045}
MYSQL_LOCK_CONFLICT = {1213, 1205}  # ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT


def _driver_error(err: BaseException) -> Any:
    """The DB-API driver's own exception behind an SQLAlchemy error (else the error itself)."""
    from sqlalchemy.exc import DBAPIError

    return err.orig if isinstance(err, DBAPIError) else err


def _mysql_code(orig: Any) -> int | None:
    """A MySQL driver error's number (PyMySQL, mysqlclient: ``args[0]``), else None."""
    args = getattr(orig, "args", None)
    return args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None


def _lock_conflict(err: BaseException) -> bool:
    """A deadlock or lock wait timeout (worth another attempt), by the driver's error code, not its message:
    MySQL 1213 / 1205, PostgreSQL SQLSTATE 40P01 / 55P03."""
    orig = _driver_error(err)
    if hasattr(orig, "pgcode"):
        return orig.pgcode in ("40P01", "55P03")
    return _mysql_code(orig) in MYSQL_LOCK_CONFLICT


def _underlying(err: BaseException) -> BaseException:
    """The database's own error behind Optuna's "An exception is raised during the commit" wrapper."""
    from optuna.exceptions import StorageInternalError

    while isinstance(err, StorageInternalError) and (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return err


def _is_connection_error(err: BaseException) -> bool:
    """Could the server not be reached at all (refused, unknown host, timeout, bad credentials)? Judged by the
    driver's error type and code, not by the message."""
    import sqlite3

    orig = _driver_error(err)
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_CANTOPEN
    if hasattr(orig, "pgcode"):  # PostgreSQL (psycopg): no SQLSTATE means the server was never reached
        return orig.pgcode is None
    return _mysql_code(orig) in MYSQL_UNREACHABLE


def describe(storage: Any) -> str:
    """The storage without credentials (for logs and errors)."""
    from .redact import redact

    return "in memory" if storage is None else redact(storage)
