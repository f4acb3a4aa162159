"""A job's result as JSON, and the channel that brings it back from a remote run.

Why a channel besides the component output: KFP v2's API (``/apis/v2beta1/runs``) returns a run's state and
error, but not its output parameters (those live in ML Metadata, which is not exposed outside the cluster).
A remote job of an Optuna trial can reach the study database (it reports its intermediate values there,
through the Cloud SQL proxy), so it also writes its result as a study user attribute keyed by the run's
display name; the launcher reads it once the run has ended. Keyed by run name, not trial number, because a
run re-attached after a sweeper restart belongs to a new trial of the same attempt. Only JSON crosses: an
error comes back as its type name, message and traceback frames, never as a pickle.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf
from hydra_plugins.navitune_shared.protocol import KFP_RESULT

log = logging.getLogger(__name__)

ATTR_PREFIX = KFP_RESULT
MAX_MESSAGE = 4000
MAX_FRAMES = 60


def _jsonable(value: Any) -> tuple[Any, bool]:
    """(value, exact): JSON as is when possible, else a float, a list of floats, or its repr."""
    try:
        json.dumps(value, allow_nan=True)
        return value, True
    except (TypeError, ValueError):
        pass
    try:
        return float(value), True
    except (TypeError, ValueError):
        pass
    try:
        return [float(v) for v in value], True
    except (TypeError, ValueError):
        return repr(value), False


def _error_payload(ret: JobReturn) -> dict[str, Any]:
    from hydra.core.utils import _serialize_exception_chain, _serialize_traceback

    err = ret._return_value
    if not isinstance(err, BaseException):
        err = RuntimeError(f"the job failed without an exception ({err!r})")
    tb = ret._remote_traceback if ret._remote_traceback is not None else _serialize_traceback(err.__traceback__)
    try:
        chain = (ret._remote_exception_chain if ret._remote_exception_chain is not None
                 else _serialize_exception_chain(err))
        json.dumps(chain)
    except Exception:  # noqa: BLE001 - a chain that does not serialise is left out, not the result
        chain = []
    return {
        "module": type(err).__module__,
        "qualname": type(err).__qualname__,
        "message": str(err)[:MAX_MESSAGE],
        "traceback": [list(f) for f in (tb or [])][-MAX_FRAMES:],
        "chain": chain,
    }


def encode(ret: JobReturn, run_name: str) -> dict[str, Any]:
    """The JSON result of a job: ``{"status": "COMPLETED", "value": ...}`` or ``{"status": "FAILED", "error": ...}``."""
    out: dict[str, Any] = {"run_name": run_name, "working_dir": ret.working_dir}
    if ret.status == JobStatus.COMPLETED:
        value, exact = _jsonable(ret._return_value)
        out |= {"status": "COMPLETED", "value": value}
        if not exact:
            out["value_is_repr"] = True
    else:
        out |= {"status": "FAILED", "error": _error_payload(ret)}
    return out


def error_line(payload: dict[str, Any]) -> str:
    """``TypeName: message`` (what a failed run shows as its error)."""
    err = payload.get("error") or {}
    name = str(err.get("qualname", "Error")).rsplit(".", 1)[-1]
    return f"{name}: {err.get('message', '')}"


def exception_from(err: dict[str, Any]) -> BaseException:
    """The remote exception: its own class when that class is already imported here and takes a message
    (``optuna.TrialPruned``, builtins), else a stand-in class of the same name (Hydra's remote-error type)."""
    module, qualname, message = str(err.get("module", "")), str(err.get("qualname", "")), str(err.get("message", ""))
    loaded = sys.modules.get(module) if module else None
    if loaded is not None and "<locals>" not in qualname:
        try:
            cls: Any = loaded
            for part in qualname.split("."):
                cls = getattr(cls, part)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                exc = cls(message)
                if str(exc) == message:
                    return exc
        except Exception:  # noqa: BLE001 - a class that cannot be rebuilt from its message: stand-in below
            pass
    from hydra.core.utils import _deserialize_exception_node

    return _deserialize_exception_node([module or "builtins", qualname or "RuntimeError", message, True, [], [], []])


def decode(payload: dict[str, Any], overrides: list[str], config: DictConfig) -> JobReturn:
    """A JobReturn from a JSON result (``return_value`` re-raises a failure with its remote traceback)."""
    ret = JobReturn(overrides=list(overrides), cfg=_task_cfg(config), hydra_cfg=config,
                    working_dir=payload.get("working_dir"), task_name=str(config.hydra.job.name))
    if payload.get("status") == "COMPLETED":
        ret.status = JobStatus.COMPLETED
        ret.return_value = payload.get("value")
        return ret
    err = payload.get("error") or {}
    ret.status = JobStatus.FAILED
    ret.return_value = exception_from(err)
    ret._remote_traceback = [tuple(f) for f in err.get("traceback") or []] or None  # type: ignore[misc]
    ret._remote_exception_chain = err.get("chain") or None
    return ret


def failed(overrides: list[str], config: DictConfig | None, error: BaseException) -> JobReturn:
    """A FAILED JobReturn for a job that produced no result of its own (the run failed, was canceled...)."""
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    if config is not None:
        ret.cfg, ret.hydra_cfg, ret.task_name = _task_cfg(config), config, str(config.hydra.job.name)
    ret.return_value = error
    return ret


def completed(overrides: list[str], config: DictConfig, value: Any) -> JobReturn:
    """A COMPLETED JobReturn the launcher makes itself (a remote run whose value stays in KFP)."""
    ret = JobReturn(overrides=list(overrides), cfg=_task_cfg(config), hydra_cfg=config,
                    task_name=str(config.hydra.job.name), status=JobStatus.COMPLETED)
    ret.return_value = value
    return ret


def _task_cfg(config: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- the channel
def channel(config: DictConfig) -> tuple[Any, str] | None:
    """(storage setting, study name) when the job is a trial of a study in a storage, else None."""
    from .jobspec import study_name

    study = study_name(config)
    storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
    if not study or storage in (None, "", "None", "null"):
        return None
    return storage, study


def _storage(setting: Any) -> Any:
    from hydra_plugins.navitune_shared.storage import shared_storage

    return shared_storage(setting)  # the job's reporter's storage, if it has one: one connection


class ResultStore:
    """Study user attributes ``navitune:kfp_result:<run name>`` in the sweep's Optuna storage."""

    def __init__(self, storage_setting: Any, study: str) -> None:
        self.storage = _storage(storage_setting)
        if self.storage is None:
            raise ValueError("the study storage is in memory: a remote job cannot reach it")
        self.study = study
        self.study_id = int(self.storage.get_study_id_from_name(study))

    def publish(self, run_name: str, payload: dict[str, Any]) -> None:
        value = json.loads(json.dumps(payload, default=str))  # plain JSON types only (NaN survives, as in Optuna)
        self.storage.set_study_user_attr(self.study_id, ATTR_PREFIX + run_name, value)

    def fetch(self, run_name: str) -> dict[str, Any] | None:
        attrs = self.storage.get_study_user_attrs(self.study_id)
        value = attrs.get(ATTR_PREFIX + run_name)
        return value if isinstance(value, dict) else None


def loads_result_file(path: str) -> Any:
    """The pickled JobReturn a local job wrote (our own file: written by a child of this launcher)."""
    import pickle

    with open(path, "rb") as fh:
        return pickle.load(fh)  # nosec B301 - written by this launcher's own job process

