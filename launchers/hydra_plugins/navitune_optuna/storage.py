"""Study storages from one setting: an RDB URL, ``journal:///path`` (a journal file safe for parallel
writers, which optuna-dashboard opens), or None (in memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_storage(setting: Any) -> Any:
    """An Optuna storage (or None); fails with one line when the storage cannot be reached."""
    import optuna

    if setting is None or str(setting) in ("", "None", "null"):
        return None
    text = str(setting)
    if text.startswith("journal://"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(text[len("journal://"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return _rdb_storage(text)


def _rdb_storage(url: str, attempts: int = 5) -> Any:
    """An RDBStorage. Two sweepers starting on an empty database race to create the schema (one of them
    sees "table already exists"): such errors are retried after a short random pause; an unreachable
    server is not (it fails at once with one line)."""
    import random
    import time

    import optuna

    from ._core import SweeperConfigError, _describe

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except Exception as err:  # SQLAlchemy / driver errors of many kinds
            reason = str(err).splitlines()[0][:200]
            unreachable = _is_connection_error(err)
            if unreachable or attempt == attempts - 1:
                what = "cannot reach" if unreachable else "cannot open"
                raise SweeperConfigError(
                    f"optuna_async: {what} hydra.sweeper.storage={_describe(url)}: {reason}"
                ) from None
            time.sleep(0.1 + 0.4 * random.random())
    raise AssertionError("unreachable")


def _is_connection_error(err: BaseException) -> bool:
    """Could the server not be reached at all (refused, unknown host, timeout, bad credentials)?"""
    text = str(err).lower()
    markers = ("can't connect", "could not connect", "connection refused", "unknown host", "name or service",
               "timed out", "access denied", "unable to open database", "no such host", "(2003", "(2005", "(1045")
    return any(m in text for m in markers)
