"""Opening an MLflow tracking store when several processes may open a fresh one at once.

MLflow creates and migrates a SQLite store's tables the first time a process opens it, with no lock: two
sweepers started together on a fresh ``outputs/mlflow.db`` both find no tables, both create and migrate them,
and one fails ("table runs already exists", "duplicate column name", or alembic's "Online migration expected
to match one row ...") and loses tracking for its whole sweep. So a SQLite store is opened under an exclusive
``fcntl`` lock: the first process creates and migrates the tables, the others wait and then find them ready.
A process that has opened a store once (and the jobs it forks later) skips the lock. A tracking server needs
none of this: the server migrates its own store once, at its start.

The lock is a file in the temporary directory named after the store's absolute path (as MLflow does for its
own job store), not one beside the store: ``paths.outputs`` holds only what a run produces, and locking the
SQLite file itself would be unsafe (closing any descriptor of a file drops SQLite's POSIX locks on it).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import urllib.parse
from contextlib import contextmanager

from experiment.file_lock import acquire
from pathlib import Path
from typing import Any, Iterator

LOCK_TIMEOUT_S = 120.0  # creating and migrating a store takes ~2 s; far longer on a loaded 2-core machine
_READY: set[str] = set()  # store URIs this process (or the process it was forked from) opened already


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` store URI, None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urllib.parse.unquote(uri.removeprefix("sqlite:///").split("?", 1)[0]))


def lock_path(db: Path) -> Path:
    """The lock file of the store ``db``: the same for every process of this machine that opens it."""
    digest = hashlib.sha1(str(db.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"navitune-mlflow-{digest}.lock"


@contextmanager
def locked(db: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the store's exclusive lock (released by the kernel if this process dies). Polls without blocking,
    so a process that holds it and hangs costs ``timeout_s`` and a TimeoutError (one tracking warning), never
    a sweep that waits forever."""
    db.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(db), os.O_RDONLY | os.O_CREAT, 0o644)  # read-only: another user's lock file opens too
    try:
        acquire(fd, True, timeout_s, f"the MLflow store's lock {lock_path(db)} was held for over {timeout_s:g} s by "
                                     "another process")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def open_client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``. MLflow opens the store when the client is made (creating and migrating
    a fresh SQLite store's tables): for a SQLite store that happens under the store's lock, once per process."""
    from mlflow import MlflowClient

    db = sqlite_path(uri)
    if db is None or uri in _READY:
        return MlflowClient(tracking_uri=uri)
    with locked(db):
        client = MlflowClient(tracking_uri=uri)
    _READY.add(uri)
    return client
