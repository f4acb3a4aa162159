"""Study storages from one setting: an RDB URL, ``journal:///path`` (a journal file safe for parallel
writers, which optuna-dashboard opens), or None (in memory).

This module picks and opens the storage (an RDB one with retries on a schema race, the sweeper's with a
cheaper "which trials wait?", a job's one shared per process) and describes it without secrets. Its
neighbours: the journal file and its repair (:mod:`.journal`), atomic claims on a study (:mod:`.claims`), the
disk reserve (:mod:`.disk_reserve`), and :class:`~.storage_errors.StorageError` with the reading of driver
errors (:mod:`.storage_errors`; ``StorageError`` is what :func:`make_storage` raises, so it is importable
from here too).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .errors import message_line
from .journal import journal_storage
from .optuna_internals import waiting_query_cache
from .retry import Backoff, call_with_retries
from .storage_errors import StorageError, is_connection_error, underlying


def make_storage(setting: Any, existing: bool = False) -> Any:
    """An Optuna storage (or None); fails with one line when the storage cannot be reached or read.
    ``existing``: the study is known to exist (a job of a sweep): an RDB storage skips creating the tables and
    checking the schema (the sweeper did both)."""
    if setting is None or str(setting) in ("", "None", "null"):
        return None
    text = str(setting)
    if text.startswith("journal://"):
        return journal_storage(Path(text[len("journal://"):]))
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
                                 retry_on=lambda err: not is_connection_error(underlying(err)))
    except Exception as caught:  # SQLAlchemy / driver errors of many kinds
        err = underlying(caught)
        what = "cannot reach" if is_connection_error(err) else "cannot open"
        raise StorageError(f"optuna_async: {what} hydra.sweeper.storage={describe(url)}: "
                           f"{message_line(err, 200)}") from None


def describe(storage: Any) -> str:
    """The storage without credentials (for logs and errors)."""
    from .redact import redact

    return "in memory" if storage is None else redact(storage)
