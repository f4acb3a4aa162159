"""Checks of a kfp sweep that need its whole config (proxy, study storage), shared by the launcher's setup and
the app's preflight.

Why the preflight: Hydra runs ``on_multirun_start`` callbacks (e.g. a tracking callback that opens a store)
before it instantiates the sweeper and the launcher, so an app that wants "one line and nothing written"
checks the launcher's settings itself first; :func:`preflight` is that check, without kfp or a connection.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from . import jobspec
from .settings import KFPConfigError, LauncherSettings, check

TARGET = "hydra_plugins.navitune_kfp.kfp_launcher.KFPLauncher"


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


def check_sweep(settings: LauncherSettings, config: DictConfig) -> Any:
    """Every check of a sweep's config; returns the proxy settings to compile with."""
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
