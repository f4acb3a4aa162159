"""Checks of a kfp sweep that need its whole config (proxy, study storage), shared by the launcher's setup and
the app's preflight.

Why the preflight: Hydra runs ``on_multirun_start`` callbacks (e.g. a tracking callback that opens a store)
before it instantiates the sweeper and the launcher, so an app that wants "one line and nothing written"
checks the launcher's settings itself first; :func:`preflight` is that check, without kfp or a connection.
"""

from __future__ import annotations

import re
from typing import Any

from hydra_plugins.navitune_shared.redact import redact
from omegaconf import DictConfig, OmegaConf

from . import jobspec
from .settings import KFPConfigError, LauncherSettings, check

TARGET = "hydra_plugins.navitune_kfp.kfp_launcher.KFPLauncher"
_NODE_REF = re.compile(r"\$\{([A-Za-z_][\w.\[\]-]*)\}")  # ${a.b.c}: another key's value (not a resolver)


def check_proxy(settings: LauncherSettings, config: DictConfig) -> Any:
    """The Cloud SQL proxy settings of the sweep (``proxy`` config group), or None; one-line errors."""
    try:
        from .proxy import proxy_settings
    except ImportError:  # the proxy module is optional: no proxy support without it
        return None
    try:
        proxy = proxy_settings(config)
    except ValueError as err:
        raise KFPConfigError(f"kfp: {err}") from None
    runs_locally = settings.backend == "local" and not settings.compile_only
    if proxy is not None and proxy.mode == "native" and runs_locally:
        raise KFPConfigError("kfp: invalid proxy.mode='native' with hydra.launcher.backend=local (there is no "
                             "pod for a sidecar); allowed: proxy.mode=process or none")
    if proxy is not None and proxy.mode == "process" and runs_locally and settings.n_jobs > 1:
        # pods have a network each; local jobs share this machine's ports
        raise KFPConfigError(
            f"kfp: invalid hydra.launcher.n_jobs={settings.n_jobs} with proxy.mode=process and backend=local "
            f"(every job would start a proxy on 127.0.0.1:{proxy.port}); allowed: hydra.launcher.n_jobs=1, or "
            "proxy=none (local jobs reach the database as the sweeper does)")
    return proxy


def check_remote_config(config: DictConfig) -> None:
    """A remote job must reach the study (to report and to send its result) and must get no password."""
    leaks = jobspec.clear_passwords(config)
    if leaks:
        raise KFPConfigError(
            f"kfp: invalid {leaks[0]}: it holds a password in clear, which would be sent to the cluster as a "
            "run parameter; allowed: ${oc.env:VAR} (set VAR from a Kubernetes Secret with hydra.launcher.secrets)")
    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None)
    if sweeper is None or "storage" not in sweeper:
        return
    storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None, throw_on_resolution_failure=False)
    text = str(storage or "")
    if not text or text.startswith(("journal://", "sqlite:")):
        raise KFPConfigError(
            f"kfp: invalid hydra.sweeper.storage={text or None!r} with hydra.launcher.backend=remote: remote jobs "
            "report to the study and cannot reach a local file or memory; allowed: a database URL the cluster "
            "reaches, e.g. mysql+pymysql://user:${oc.env:DB_PASSWORD}@127.0.0.1:3306/optuna with proxy=cloudsql")


def _raw(config: DictConfig, key: str) -> Any:
    """The value at ``key`` as written (interpolations kept), or None."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(config, parent, default=None) if parent else config
    if not isinstance(node, DictConfig) or leaf not in node:
        return None
    return OmegaConf.to_container(node, resolve=False).get(leaf)


def _from_environment(config: DictConfig, value: Any, depth: int = 0) -> bool:
    """Does ``value`` take (part of) its text from the environment: ``${oc.env:...}``, directly or through
    the keys it interpolates?"""
    if not isinstance(value, str) or "${" not in value or depth > 10:
        return False
    if "oc.env:" in value:
        return True
    return any(_from_environment(config, _raw(config, key), depth + 1) for key in _NODE_REF.findall(value))


def check_env(config: DictConfig) -> None:
    """``hydra.launcher.env`` is written as plain text into the compiled pipeline (and the run's pod spec):
    a value resolved from this machine's environment would put its secret there. Refused, in one line that
    points to ``hydra.launcher.secrets`` (a Kubernetes Secret, referenced by name)."""
    node = OmegaConf.select(config, "hydra.launcher.env", default=None)
    if not isinstance(node, DictConfig):
        return
    for name, value in OmegaConf.to_container(node, resolve=False).items():
        if _from_environment(config, value):
            raise KFPConfigError(
                f"kfp: invalid hydra.launcher.env.{name}={redact(value)!r}: a value from this machine's "
                "environment would be written into the compiled pipeline; allowed: plain strings; pass secrets "
                "with hydra.launcher.secrets (a Kubernetes Secret exposed as environment variables)")


def check_sweep(settings: LauncherSettings, config: DictConfig) -> Any:
    """Every check of a sweep's config; returns the proxy settings to compile with."""
    check_env(config)
    proxy = check_proxy(settings, config)
    if settings.backend == "remote" and not settings.compile_only:
        check_remote_config(config)
    return proxy


def preflight(config: DictConfig) -> str | None:
    """The one-line problem of a composed config (hydra node included) whose launcher is kfp, else None."""
    node = OmegaConf.select(config, "hydra.launcher", default=None)
    if node is None or OmegaConf.select(node, "_target_", default=None) != TARGET:
        return None
    raw = OmegaConf.to_container(node, resolve=False)
    assert isinstance(raw, dict)
    raw.pop("_target_", None)
    try:
        check_sweep(check(raw), config)
    except KFPConfigError as err:
        return str(err)
    return None
