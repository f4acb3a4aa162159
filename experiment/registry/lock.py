"""One writer at a time per registered model: promote, rollback and decide must not interleave.

MLflow's registry has no compare-and-set on an alias, so two commands that each read the champion and then
move it can both succeed on what they read (two rollbacks: one says v3→v2, the other v2→v3, one history entry
lost). Every write that moves the ``champion`` alias therefore holds this lock, re-reads the champion inside it
and refuses (one line) when it is not the one the command started from.

* A local store (``sqlite:///path``, a file store): an ``fcntl`` lock on a file in the temp directory, held
  by the process (released by the kernel when it dies, ``kill -9`` included).
* A tracking server: a lease, the registered model's tag :data:`LEASE_TAG` (``<owner> <expiry>``), written and
  read back; a lease of a dead holder expires after :data:`LEASE_S`. MLflow offers nothing stronger, so the lease
  is advisory across hosts: the compare-and-set inside it still catches a writer that slipped past.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import tempfile
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from experiment.file_lock import acquire

LEASE_TAG = "navitune.lock"
LEASE_S = 60.0  # a holder that died keeps the lease this long at most
WAIT_S = 30.0  # how long a second writer waits for the first before refusing


class RegistryBusy(Exception):
    """Another command held the registry's lock for longer than :data:`WAIT_S`."""


def local_lock_path(uri: str, model: str) -> Path | None:
    """The lock file of a local store (in the temp directory, named by a hash of the store's path and the model,
    as the MLflow store's own lock: outputs/ holds results only), None for a tracking server."""
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    if uri.startswith("sqlite:"):
        path = Path(urllib.parse.unquote(uri.removeprefix("sqlite:///")))
    else:
        path = Path(urllib.parse.unquote(uri.removeprefix("file://").removeprefix("file:")))
    digest = hashlib.sha1(f"{path.resolve()}|{model}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"navitune-registry-{digest}.lock"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def _file_lock(path: Path, wait_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            acquire(f.fileno(), True, wait_s, f"another navitune command held {path} for over {wait_s:.0f} s")
        except TimeoutError as err:
            raise RegistryBusy(str(err)) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _lease_holder(client: Any, model: str) -> tuple[str, float] | None:
    tags = client.get_registered_model(model).tags or {}
    owner, _, expiry = str(tags.get(LEASE_TAG, "")).rpartition(" ")
    try:
        return (owner, float(expiry)) if owner else None
    except ValueError:
        return None


@contextmanager
def _lease(client: Any, model: str, wait_s: float) -> Iterator[None]:
    me, deadline = _owner(), time.monotonic() + wait_s
    while True:
        holder = _lease_holder(client, model)
        if holder is None or holder[0] == me or holder[1] < time.time():
            client.set_registered_model_tag(model, LEASE_TAG, f"{me} {time.time() + LEASE_S:.0f}")
            time.sleep(0.2)  # a writer that wrote at the same moment: the last one written wins, the other waits
            holder = _lease_holder(client, model)
            if holder is not None and holder[0] == me:
                break
        if time.monotonic() > deadline:
            raise RegistryBusy(f"another navitune command ({holder[0] if holder else '?'}) held the lease of {model} "
                               f"for over {wait_s:.0f} s")
        time.sleep(0.5)
    try:
        yield
    finally:
        holder = _lease_holder(client, model)
        if holder is not None and holder[0] == me:
            client.delete_registered_model_tag(model, LEASE_TAG)


@contextmanager
def hold(uri: str, model: str, client: Any, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the model's write lock (file lock for a local store, lease on a server)."""
    path = local_lock_path(uri, model)
    if path is not None:
        with _file_lock(path, wait_s):
            yield
    else:
        with _lease(client, model, wait_s):
            yield
