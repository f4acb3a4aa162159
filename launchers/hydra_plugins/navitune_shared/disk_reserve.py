"""The disk reserve: a little space set aside next to a journal while a sweeper runs, given back on a full disk.

It exists apart because it is no part of opening or using a storage: only the sweeper holds one, so that a full
disk still leaves room to record that its trials stopped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .pids import alive


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
