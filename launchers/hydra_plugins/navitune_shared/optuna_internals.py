"""Every use of a private API of the pinned Optuna and hydra-optuna-sweeper, in one module.

Why: the sweeper needs a few things the public APIs do not offer (a study's storage and ids, to write
attributes without loading the study again; a cache subclass that answers "which trials wait?" in one query;
hydra-optuna-sweeper's search-space parsing). Kept here, an upgrade of either pin touches this file and its
tests (``tests/test_sweeper_hardening.py``), not the sweeper, the storage and the app.
"""

from __future__ import annotations

import copy
from typing import Any


# ------------------------------------------------------------------------------ a study's storage and ids
def storage_of(study: Any) -> Any:
    """The storage object a loaded ``optuna.Study`` writes to (``Study._storage``)."""
    return study._storage


def study_system_attrs(study: Any) -> dict[str, Any]:
    """The study's system attributes, read from its storage now (not from a loaded copy)."""
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: Any, key: str, value: Any) -> None:
    study._storage.set_study_system_attr(study._study_id, key, value)


def study_id(study: Any) -> int:
    return study._study_id


def set_trial_user_attr(study: Any, trial: Any, key: str, value: Any) -> None:
    """Set a user attribute of ``trial`` (an ``optuna.Trial`` in flight) without its ``set_user_attr``, which
    would refuse a trial another sweeper has finished; the storage's own check is the one that counts."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def trial_by_number(study: Any, number: int) -> Any:
    """The running ``optuna.Trial`` numbered ``number`` of ``study`` (a job reporting to the trial the sweeper
    launched it for)."""
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(number))
    return optuna.trial.Trial(study, trial_id)


# ------------------------------------------------------------------------------ Optuna's RDB cache
_WAITING_QUERY_CACHE: Any = None


def waiting_query_cache(backend: Any) -> Any:
    """Optuna's RDB cache, except that a query for WAITING trials only goes to the database directly. It
    subclasses Optuna's private ``_CachedStorage`` (the class is made on first use, so a change there breaks
    the sweeper's start, not every job, and
    ``tests/test_sweeper_hardening.py::test_the_sweepers_ask_finds_waiting_trials_*`` fails)."""
    global _WAITING_QUERY_CACHE
    if _WAITING_QUERY_CACHE is None:
        from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
        from optuna.trial import TrialState

        class WaitingQueryCache(_CachedStorage):
            def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list:
                if states is None or tuple(states) != (TrialState.WAITING,):
                    return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
                waiting = self._backend.get_all_trials(study_id, deepcopy=False, states=states)
                with self._lock:  # known to the cache as its own reload leaves them (a popped one is written to)
                    if study_id not in self._studies:
                        self._studies[study_id] = _StudyInfo()
                    self._add_trials_to_cache(study_id, waiting)
                    self._studies[study_id].unfinished_trial_ids.update(t._trial_id for t in waiting)
                return copy.deepcopy(waiting) if deepcopy else waiting

        _WAITING_QUERY_CACHE = WaitingQueryCache
    return _WAITING_QUERY_CACHE(backend)


# ------------------------------------------------------------------------------ hydra-optuna-sweeper
def optuna_sweeper_impl() -> tuple[type, Any]:
    """hydra-optuna-sweeper's ``OptunaSweeperImpl`` (parameter parsing, grid handling) and
    ``create_params_from_overrides``, from its private ``_impl`` module."""
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides

    return OptunaSweeperImpl, create_params_from_overrides
