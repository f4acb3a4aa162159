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
    try:
        return optuna.storages.RDBStorage(text, engine_kwargs={"pool_pre_ping": True})
    except Exception as err:
        from ._core import SweeperConfigError, _describe

        reason = str(err).splitlines()[0][:200]
        raise SweeperConfigError(
            f"optuna_async: cannot reach hydra.sweeper.storage={_describe(text)}: {reason}"
        ) from None
