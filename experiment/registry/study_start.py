"""The champion at a sweep's start, kept in the sweep's Optuna study as well as in its directory.

Why: ``registry_start.json`` lives in the sweep directory, which for ``navitune submit`` / ``navitune schedule``
is the driver pod's own disk. When KFP retries the driver after an eviction, the new pod resumes the study (in
the shared storage) with an empty sweep directory, and without the record the decision could only say
``champion_unknown``. The study's copy (system attribute :data:`STUDY_KEY`) is written once per study, with the
storage's atomic set-if-absent (``claim``): a resumed sweep keeps the champion its study started with.

Only a known champion is kept in the study (a record with an ``error``, e.g. MLflow down or ``tracking=off``,
stays in the directory's file): "unknown" is not a fact worth pinning for the study's life. The record holds
the masked registry URI only, never the storage URL.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Any

from hydra_plugins.navitune_shared.optuna_internals import study_system_attrs
from omegaconf import ListConfig, OmegaConf

log = logging.getLogger("navitune.registry")
STUDY_KEY = "navitune:registry_start"  # a study system attribute; read by experiment.registry only
DIRECTIONS = ("minimize", "maximize")


def _directions(config: Any) -> list[str] | None:
    """The sweeper's directions as Optuna names (None when the config has none it could run with)."""
    try:
        value = OmegaConf.select(config, "hydra.sweeper.direction", default=None)
    except Exception:
        return None
    values = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    names = [v.name if isinstance(v, Enum) else str(v) for v in values]
    return names if names and all(n in DIRECTIONS for n in names) else None


def _open(config: Any, create: bool) -> tuple[Any, Any]:
    """(study, storage) of the sweep's config, or (None, why not). ``create``: make the study when it does not
    exist yet, with the sweeper's directions (the sweeper then loads it: ``load_if_exists``), so that the record
    is in the study before the first trial. Raises on a storage that cannot be reached."""
    import optuna
    from hydra_plugins.navitune_shared.storage import make_storage

    from experiment.study import resolved_storage

    try:
        name = OmegaConf.select(config, "hydra.sweeper.study_name", default=None)
    except Exception:
        name = None
    setting, problem = resolved_storage(config)
    if setting is None or not name:  # in memory (one process: nothing to resume) or a sweeper without a study
        return None, problem or "the sweep has no study name"
    journal = str(setting)[len("journal://"):] if str(setting).startswith("journal://") else None
    if not create and journal is not None and not Path(journal).is_file():  # opening one would create it
        return None, f"the journal {journal} does not exist"
    storage = make_storage(setting)
    directions = _directions(config) if create else None
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created": the sweeper says its own
    try:
        if directions is not None:
            return optuna.create_study(study_name=str(name), storage=storage, directions=directions,
                                       load_if_exists=True), storage
        return optuna.load_study(study_name=str(name), storage=storage), storage
    except KeyError:  # Optuna's "Record does not exist": no study of that name (yet)
        _close(storage)
        return None, f"study {name} does not exist"
    except Exception:
        _close(storage)
        raise
    finally:
        optuna.logging.set_verbosity(verbosity)


def _close(storage: Any) -> None:
    """Give an RDB storage's connections back (the sweeper holds its own; this one would stay idle)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def keep(config: Any, record: dict[str, Any]) -> dict[str, Any] | None:
    """Put ``record`` in the sweep's study unless an earlier start did; the study's record (this one, or the
    earlier one: first writer wins), or None when the study cannot hold it (in memory, unreachable, or the record
    is not a known champion and the study has none). Never raises."""
    from hydra_plugins.navitune_shared.claims import claim

    from experiment.tracking.common import first_line

    try:
        study, storage = _open(config, create=True)
        if study is None:
            log.debug("registry: the champion at the start is kept in the sweep directory only (%s)", storage)
            return None
        try:
            if not record.get("error"):
                claim(study, STUDY_KEY, record)
            return _read(study)
        finally:
            _close(storage)
    except Exception as err:  # noqa: BLE001 - the directory's file still holds it
        log.warning("registry: the champion at the start is kept in the sweep directory only: the study cannot "
                    "hold it (%s); a driver pod retried on an empty disk will not auto-promote", first_line(err))
        return None


def recorded(config: Any) -> dict[str, Any] | None:
    """The record the sweep's study holds (None: none, or the study cannot be read). Never raises; creates
    nothing."""
    try:
        study, storage = _open(config, create=False)
        if study is None:
            return None
        try:
            return _read(study)
        finally:
            _close(storage)
    except Exception:  # noqa: BLE001 - the caller treats it as not recorded (champion_unknown)
        return None


def _read(study: Any) -> dict[str, Any] | None:
    value = study_system_attrs(study).get(STUDY_KEY)
    return value if isinstance(value, dict) else None
