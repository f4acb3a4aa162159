"""What one job sends to its KFP run: the composed config as YAML, the task function's reference, the run name.

Why YAML with interpolations kept: ``${oc.env:...}`` (passwords) must be resolved inside the job from its own
environment (Kubernetes secrets exposed as env), never written into the run's parameters. Only
``${now:...}`` is pinned here, because the job would otherwise resolve it at its own (later) time and write
to another sweep directory.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_plugins.navitune_shared.redact import literal_secrets
from omegaconf import DictConfig, OmegaConf
from hydra_plugins.navitune_shared.protocol import ENV_ATTEMPT, ENV_ORIGIN, ENV_STUDY, ENV_TRIAL, SWEEP_ENV

from .settings import KFPConfigError, safe_name

# the sweeper (optuna_async) tells each job its study, trial, attempt and first attempt's trial ("origin")


@dataclass(frozen=True)
class JobSpec:
    """One job, ready for a backend."""

    idx: int
    overrides: list[str]
    config: DictConfig  # the job's composed config (hydra node included)
    run_name: str
    config_yaml: str


def _env_set(config: DictConfig) -> dict[str, str]:
    """The sweeper's NAVITUNE_OPTUNA_* entries of ``hydra.job.env_set`` (only these: other entries may hold
    ``${oc.env:...}`` secrets, which are not resolved here)."""
    node = OmegaConf.select(config, "hydra.job.env_set", default=None)
    if node is None:
        return {}
    keys = SWEEP_ENV
    return {k: str(node[k]) for k in keys if k in node and node[k] is not None}


def sweep_tag(config: DictConfig) -> str:
    """A short stable tag of the sweep directory: fallback run names of two sweeps never collide."""
    return hashlib.sha1(str(Path(str(config.hydra.sweep.dir)).resolve()).encode()).hexdigest()[:6]


def run_name(config: DictConfig, idx: int) -> str:
    """``<study>-t<origin>-a<attempt>`` for an optuna_async trial (the same name after a sweeper restart
    retries the same attempt, which is how a run is re-attached), else ``<job name>-<sweep tag>-j<idx>``."""
    env = _env_set(config)
    study, origin, attempt = env.get(ENV_STUDY), env.get(ENV_ORIGIN, env.get(ENV_TRIAL)), env.get(ENV_ATTEMPT)
    if study and origin is not None and attempt is not None:
        return safe_name(f"{study}-t{origin}-a{attempt}")
    return safe_name(f"{app_name(config)}-{sweep_tag(config)}-j{idx}")


def app_name(config: DictConfig) -> str:
    """What the runs of a sweep without a study are named after: Hydra's job name, unless it is only the name of
    the module that started it (``python -m experiment`` makes it ``__main__``, which KFP shows as ``main``):
    then ``navitune``."""
    name = str(OmegaConf.select(config, "hydra.job.name", default="") or "")
    return "navitune" if name.strip("_") in ("", "main") else name


def study_name(config: DictConfig) -> str | None:
    """The job's study (from the sweeper's env_set), if it is an Optuna trial."""
    return _env_set(config).get(ENV_STUDY)


def study_of_sweep(config: DictConfig) -> str | None:
    """The sweeper's study name (optuna_async, optuna), or None (Hydra's basic sweeper has no study)."""
    study = OmegaConf.select(config, "hydra.sweeper.study_name", default=None)
    return str(study) if study else None


def experiment_name(settings_experiment: str | None, config: DictConfig) -> str:
    """The KFP experiment of a sweep: the configured one, else the study name, else :func:`app_name`."""
    if settings_experiment:
        return settings_experiment
    return study_of_sweep(config) or app_name(config)


def pipeline_name(settings_name: str | None, experiment: str) -> str:
    """KFP wants lowercase letters, digits and '-' (at most 128)."""
    if settings_name:
        return settings_name
    name = re.sub(r"[^a-z0-9-]+", "-", experiment.lower()).strip("-")[:128].strip("-")
    return name or "navitune-job"


def _now_paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths (in the plain container) of the strings that hold ``${now:...}``."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _now_paths(v, path + (k,))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _now_paths(v, path + (i,))]
    return [path] if isinstance(node, str) and "${now:" in node else []


def config_yaml(config: DictConfig) -> str:
    """The job's composed config as YAML, interpolations kept except ``${now:...}`` (resolved through the
    job's config, whose resolver cache holds the sweep's time)."""
    import yaml
    from omegaconf._utils import get_omega_conf_dumper

    container: Any = OmegaConf.to_container(config, resolve=False, enum_to_str=True, throw_on_missing=False)
    for path in _now_paths(container):
        value: Any = config
        for key in path:
            value = value[key]
        parent = container
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False,
                     Dumper=get_omega_conf_dumper())


def clear_passwords(config: DictConfig) -> list[str]:
    """Keys whose (unresolved) value holds a literal secret (a URL's password, a secret query value, a
    webhook's path): an interpolation such as ``${oc.env:X}`` is fine."""
    return list(literal_secrets(OmegaConf.to_container(config, resolve=False)))


# ---------------------------------------------------------------------------------- task reference
def _unwrap(obj: Any) -> Any:
    """``@hydra.main`` wraps the task function (functools.wraps): the module attribute is the wrapper."""
    seen = 0
    while hasattr(obj, "__wrapped__") and seen < 10:
        obj = obj.__wrapped__
        seen += 1
    return obj


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def task_reference(task_function: Any) -> str | None:
    """``module:qualname`` (or ``file:<path>:qualname`` for a script run as ``python app.py``) under which the
    job can import the task function, or None when it cannot be imported by name (a closure, a callable
    object): then only ``backend=local`` can run it, from a pickle."""
    module_name = getattr(task_function, "__module__", None)
    qualname = getattr(task_function, "__qualname__", None)
    if not module_name or not qualname or "<locals>" in qualname or not callable(task_function):
        return None
    module = sys.modules.get(module_name)
    if module is None:
        return None
    try:
        found = _unwrap(_lookup(module, qualname))
    except AttributeError:
        return None
    if found is not _unwrap(task_function):
        return None
    if module_name == "__main__":
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            return f"{spec.name}:{qualname}"  # python -m package: importable as package.__main__
    elif _importable(module_name):
        return f"{module_name}:{qualname}"
    path = getattr(module, "__file__", None)  # a script, or a module loaded from a file by hand
    return f"file:{Path(path).resolve()}:{qualname}" if path else None


def _importable(module_name: str) -> bool:
    """Can another process import this module by name (found by an import finder, not only present in
    sys.modules)? Every finder of ``sys.meta_path`` is asked, not only the ``sys.path`` one: an editable install
    (``pip install -e .``) is found by its own finder, from any working directory."""
    top = module_name.split(".")[0]
    if top in sys.builtin_module_names:
        return True
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec(top, None) is not None:
                return True
        except Exception:  # noqa: BLE001 - a finder that cannot answer: ask the next one
            continue
    return False


def remote_reference(ref: str | None, task_function: Any) -> str:
    """The reference a remote job can use, or a one-line error: the image has the installed packages and,
    in its working directory, the project (so a script path relative to the current directory works)."""
    name = getattr(task_function, "__qualname__", repr(task_function))
    if ref is None:
        raise KFPConfigError(f"kfp: backend=remote needs a task function importable by name; {name!r} is not "
                             "(a nested function or a callable object); allowed: a module-level function")
    if ref.startswith("file:"):
        _, path, qualname = ref.split(":", 2)
        try:
            rel = Path(path).relative_to(Path.cwd())
        except ValueError:
            raise KFPConfigError(
                f"kfp: backend=remote cannot import the task function from {path} (outside the current "
                "directory, so not in the image); allowed: run the app as a module (python -m <package>) or "
                "from the project directory the image is built from") from None
        return f"file:{rel}:{qualname}"
    return ref


def import_task(ref: str) -> Any:
    """The task function of a reference (in the job)."""
    if ref.startswith("file:"):
        _, path, qualname = ref.split(":", 2)
        name = "navitune_kfp_task_" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load the task module {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return _unwrap(_lookup(module, qualname))
    module_name, _, qualname = ref.partition(":")
    return _unwrap(_lookup(importlib.import_module(module_name), qualname))
