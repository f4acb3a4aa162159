"""Atomic claims: set a study system attribute only if nobody has, atomically across processes, which Optuna's
storages lack and several sweepers sharing a study need (the baseline trials and each sweeper's random stream
are claimed this way).

RDB: a plain INSERT that the table's unique (study_id, key) constraint refuses the second time, tried again
after a lock conflict; journal: the check and the write under the journal's own file lock.

It exists apart because a claim is made on a study already open, whatever its storage, by the sweeper and the
registry; opening a storage (:mod:`.storage`) knows nothing of it.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from .journal import HeldLockJournalBackend
from .optuna_internals import set_study_system_attr, storage_of, study_id, study_system_attrs
from .retry import Backoff, call_with_retries
from .storage_errors import StorageError, lock_conflict

LOCK_CONFLICT_BACKOFF = Backoff(first_s=0.03, factor=1.5, max_s=0.25, jitter=0.8)  # a deadlock victim's next try


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
                             retry_on=lambda err: isinstance(err, OperationalError) and lock_conflict(err))
