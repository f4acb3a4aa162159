"""The local checks of ``navitune submit`` / ``navitune schedule create``, and what they settle (:class:`Plan`).

Why refuse here: once the driver is submitted, a bad setting fails in a pod an hour later, or every week. So
everything a user can get wrong is one line and exit 2 before anything is compiled or submitted: the sweep's own
checks (the CLI's preflight, with the remote kfp launcher: image, host, study storage the cluster reaches,
secrets by reference), plus what only a pod makes wrong: ``tracking=local`` (a file on this machine), an MLflow
URI left to the pod's defaults, an image no registry holds, a second launcher or a local backend.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from experiment.cluster.command import driver_overrides, key_of, retune_command, sweep_command

DEFAULT_DRIVER_HOST = "http://ml-pipeline.kubeflow:8888"  # the KFP API service as pods reach it
SCHEDULE_PREFIX = "navitune-retune-"
URL_RE = re.compile(r"https?://[^\s/@]+(/\S*)?")


class ClusterError(ValueError):
    """Bad input of ``navitune submit`` / ``schedule``: one line, exit 2, nothing submitted."""


@dataclass
class Plan:
    """What a driver runs and where: settled by :func:`prepare` from the command line."""

    kind: str  # submit | schedule
    cfg: DictConfig  # the composed config, hydra node included
    settings: Any  # hydra_plugins.navitune_kfp.settings.LauncherSettings
    proxy: Any  # ProxySettings or None
    region: str
    scenario: str
    experiment: str  # the KFP experiment of the driver's run(s)
    name: str  # the driver run's / the schedule's display name
    command: list[str]
    overrides: list[str] = field(default_factory=list)  # the user's, as the driver gets them

    @property
    def description(self) -> str:
        from hydra_plugins.navitune_shared.redact import redact

        return redact(f"navitune {self.kind}: " + " ".join(self.overrides))


def schedule_name(region: str, scenario: str) -> str:
    """One schedule per region and scenario; its name says both."""
    return f"{SCHEDULE_PREFIX}{region}-{scenario}"


def split_argv(kind: str, argv: Sequence[str]) -> list[str]:
    """The overrides of the command line (``-m`` dropped: the driver always runs a sweep); an unknown option is
    one line."""
    out = []
    for arg in argv:
        if arg in ("-m", "--multirun"):
            continue
        if arg.startswith("-"):
            raise ClusterError(f"navitune {kind}: unknown option {arg!r}; allowed: see navitune {kind} --help "
                               "(Hydra's own flags such as --cfg do not apply to a driver)")
        out.append(arg)
    return out


def check_overrides(kind: str, overrides: Sequence[str]) -> None:
    """Overrides that would contradict the driver: another launcher, a local backend; for a schedule, a fixed
    ``window.as_of`` (a sweep over regions or scenarios is retune's own refusal: :func:`check_retune_args`)."""
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key == "hydra/launcher" and value != "kfp":
            raise ClusterError(f"navitune {kind}: invalid hydra/launcher={value!r}; allowed: kfp (the driver runs "
                               "the sweep with hydra/launcher=kfp hydra.launcher.backend=remote)")
        if key == "hydra.launcher.backend" and value != "remote":
            raise ClusterError(f"navitune {kind}: invalid hydra.launcher.backend={value!r}; allowed: remote (the "
                               "driver's trials are runs in the cluster)")
        if key == "hydra.launcher.compile_only" and value.lower() not in ("false", "0"):
            raise ClusterError(f"navitune {kind}: invalid hydra.launcher.compile_only={value!r}; allowed: false "
                               f"(to compile the driver without submitting it: navitune {kind} --dry-run --output "
                               "PATH)")
        if kind == "schedule" and key == "window.as_of":
            raise ClusterError(f"navitune schedule: invalid window.as_of={value!r}; allowed: none (each cycle's "
                               "as_of is the run's scheduled time)")
        if kind == "schedule" and key == "window" and value != "rolling":
            raise ClusterError(f"navitune schedule: invalid window={value!r}; allowed: rolling, or leave it out (a "
                               "cycle tunes and tests on the rolling windows before its scheduled date)")


def check_retune_args(overrides: Sequence[str]) -> None:
    """Each cycle runs ``navitune retune`` with these overrides: what retune refuses (a key it computes itself,
    such as ``hydra.sweeper.study_name``) would exit 2 in every cycle's pod, so it is refused now, by retune's
    own check."""
    from experiment.retune.checks import BadInput, split_args

    try:
        split_args(overrides, dt.date(2000, 1, 1))
    except BadInput as err:
        raise ClusterError(str(err).replace("navitune retune:", "navitune schedule:", 1)) from None


def with_launcher(overrides: Sequence[str]) -> list[str]:
    """The overrides plus the remote kfp launcher (once each)."""
    keys = {key_of(o) for o in overrides}
    extra = [o for o in ("hydra/launcher=kfp", "hydra.launcher.backend=remote") if key_of(o) not in keys]
    return [*overrides, *extra]


def compose_sweep(argv: Sequence[str]) -> DictConfig:
    """The config a sweep of ``argv`` composes, hydra node included (sweep values left to the sweeper), as the
    CLI's preflight composes it."""
    from experiment.preflight import compose_without_sweeps

    return compose_without_sweeps(argv, hydra=True)


def launcher_settings(cfg: DictConfig) -> Any:
    from hydra_plugins.navitune_kfp.settings import check

    raw = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert isinstance(raw, dict)
    raw.pop("_target_", None)
    return check(raw)


def check_tracking(kind: str, cfg: DictConfig) -> list[str]:
    """MLflow must be a server the pod reaches: ``tracking=local`` is refused (``off`` too for a schedule: the
    champion lives in MLflow). A ``tracking.uri`` left to its default (``MLFLOW_TRACKING_URI``, else loopback)
    would be the pod's: this machine's ``MLFLOW_TRACKING_URI`` is passed on when it holds no secret; returns the
    overrides to add."""
    kind_of = str(OmegaConf.select(cfg, "tracking.kind", default="off"))
    allowed = "tracking=server tracking.uri=<the MLflow server's URL as the cluster reaches it>"
    if kind_of == "local" or (kind_of == "off" and kind == "schedule"):
        why = ("a pod cannot reach this machine's MLflow store" if kind_of == "local" else
               "each cycle reads and moves the region's champion in MLflow's Model Registry")
        raise ClusterError(f"navitune {kind}: invalid tracking={kind_of}: {why}; allowed: {allowed}"
                           + (" or tracking=off" if kind == "submit" else ""))
    written = OmegaConf.to_container(cfg.tracking, resolve=False).get("uri")  # type: ignore[union-attr]
    if kind_of != "server" or "oc.env:MLFLOW_TRACKING_URI" not in str(written):
        check_not_loopback(kind, "tracking.uri", str(written))
        return []  # set on the command line or in a preset: the pod gets it as written
    from hydra_plugins.navitune_shared.redact import redact

    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not env:
        raise ClusterError(f"navitune {kind}: missing tracking.uri: the driver pod would use its own "
                           "http://127.0.0.1:5000; allowed: " + allowed)
    if redact(env) != env:
        raise ClusterError(f"navitune {kind}: invalid MLFLOW_TRACKING_URI={redact(env)!r}: it holds a secret, "
                           "which the driver's command would carry; allowed: tracking.uri=http://user:"
                           "${oc.env:VAR}@host with VAR from hydra.launcher.secrets")
    check_not_loopback(kind, "MLFLOW_TRACKING_URI", env)
    return [f"tracking.uri={env}"]


#: test-only: set to 1 by the end-to-end tests, whose stand-in runs the pods on this machine (so a loopback
#: MLflow is the pods' too); read by :func:`check_not_loopback` only, never set it for a real cluster
LOOPBACK_ESCAPE = "NAVITUNE_TEST_PODS_ON_THIS_HOST"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::")


def loopback_host(uri: str) -> str | None:
    """The host of ``uri`` if it is this machine's loopback (``localhost``, ``127.x``, ``::1``), else None."""
    rest = uri.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host = rest[1:].split("]", 1)[0] if rest.startswith("[") else rest.rsplit(":", 1)[0] if rest.count(":") == 1 \
        else rest
    host = host.lower().rstrip(".")
    return host if host in LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(".localhost") else None


def check_not_loopback(kind: str, key: str, uri: str) -> None:
    """A loopback MLflow URI is the pod's own loopback in the cluster, where no MLflow listens."""
    host = loopback_host(uri)
    if host is not None and os.environ.get(LOOPBACK_ESCAPE) != "1":
        from hydra_plugins.navitune_shared.redact import redact

        raise ClusterError(f"navitune {kind}: invalid {key}={redact(uri)!r}: {host} is the driver pod's own "
                           "loopback, where no MLflow listens; allowed: tracking.uri=<the MLflow server's URL as "
                           "the cluster reaches it>, e.g. http://mlflow.kubeflow:5000")


def check_image(kind: str, image: str) -> None:
    """An image the cluster can pull names a registry (``<registry>/<path>:<tag>``)."""
    if "/" not in image:
        raise ClusterError(f"navitune {kind}: invalid hydra.launcher.image={image!r}: a local image the cluster "
                           "cannot pull; allowed: a pushed image such as "
                           "us-docker.pkg.dev/<project>/<repo>/navitune-job:<tag> (make image IMAGE=..., docker push)")


def check_env(kind: str, cfg: DictConfig, settings: Any) -> None:
    """The driver pod has only the variables ``hydra.launcher.secrets`` and ``hydra.launcher.env`` give it: a
    reference to any other one (a password set only on this machine) would fail in the pod."""
    from experiment.config import env_references

    given = set(settings.env) | {env for s in settings.secrets for env in s.secret_key_to_env.values()}
    for key, var in env_references(cfg, webhooks=True):
        if var not in given and var != "MLFLOW_TRACKING_URI":  # that one: check_tracking
            raise ClusterError(
                f"navitune {kind}: {key} reads environment variable {var}, which the driver pod does not have; "
                f"allowed: a variable given to the pod, e.g. hydra.launcher.secrets=[{{secret_name: <Secret>, "
                f"secret_key_to_env: {{<key in the Secret>: {var}}}}}] or hydra.launcher.env={{{var}: <value>}} "
                "(no secret)")


def check_driver_host(kind: str, driver_host: str) -> None:
    """``--driver-host`` is compiled into the driver's command: a token or password in it would be in clear in the
    pipeline, the run and its description (the driver calls the in-cluster API without credentials). Refused as a
    secret in ``hydra.launcher.host`` is (:func:`experiment.preflight.secret_in_clear`)."""
    from experiment.preflight import secret_in_clear
    from hydra_plugins.navitune_shared.redact import redact

    allowed = f"the KFP API URL as pods reach it, http(s)://host[:port], without credentials (default {DEFAULT_DRIVER_HOST})"
    problem = secret_in_clear(f"navitune {kind}", "--driver-host", driver_host,
                              "compiled into the driver pipeline and its run", allowed)
    if problem:
        raise ClusterError(problem)
    if not URL_RE.fullmatch(driver_host):
        raise ClusterError(f"navitune {kind}: invalid --driver-host {redact(driver_host)!r}; allowed: {allowed}")


def prepare(kind: str, argv: Sequence[str], driver_host: str = DEFAULT_DRIVER_HOST) -> Plan:
    """Check the command line of ``navitune submit`` / ``schedule create`` and settle the driver; raises
    :class:`ClusterError` (one line) on the first problem."""
    from experiment.preflight import check_group_choices, pin_as_of, preflight
    from hydra_plugins.navitune_kfp.jobspec import experiment_name, safe_name
    from hydra_plugins.navitune_shared.proxy_settings import proxy_settings
    from hydra_plugins.navitune_shared.redact import without_userinfo

    check_driver_host(kind, driver_host)
    overrides = split_argv(kind, argv)
    problem = check_group_choices(overrides)
    if problem:
        raise ClusterError(problem)
    check_overrides(kind, overrides)
    if kind == "schedule":
        check_retune_args(overrides)
    if kind == "submit":  # a rolling window's day is fixed now: a retried driver resumes the same study
        checked = with_launcher(overrides)
        pinned = pin_as_of(["-m", *checked])[len(checked) + 1:]
        overrides, checked = [*overrides, *pinned], [*checked, *pinned]
    else:
        window = [] if any(key_of(o) == "window" for o in overrides) else ["window=rolling"]
        from experiment.windows import utc_today

        today = utc_today().isoformat()
        checked = with_launcher([*overrides, *window, f"window.as_of={today}"])
    problem = preflight(["-m", *checked])
    if problem:
        raise ClusterError(problem)
    try:
        cfg = compose_sweep(checked)
    except Exception as err:  # noqa: BLE001 - preflight composed it already; Hydra's own message otherwise
        raise ClusterError(f"navitune {kind}: {str(err.__cause__ or err).splitlines()[0]}") from None
    settings = launcher_settings(cfg)
    check_image(kind, settings.image)
    check_env(kind, cfg, settings)
    overrides += check_tracking(kind, cfg)
    try:
        proxy = proxy_settings(cfg)
    except ValueError as err:
        raise ClusterError(f"navitune {kind}: {err}") from None
    region = str(cfg.region.name)
    scenario = str(OmegaConf.select(cfg, "hydra.runtime.choices.scenario", default=None)
                   or OmegaConf.select(cfg, "scenario.name", default="default"))
    ui = settings.ui_host or without_userinfo(str(settings.host))
    driven = driver_overrides(overrides, driver_host, ui)
    if kind == "submit":
        experiment = experiment_name(settings.experiment, cfg)
        name, command = safe_name(f"{experiment}-driver"), sweep_command(driven)
    else:
        experiment = name = schedule_name(region, scenario)
        command = retune_command(driven)
    return Plan(kind=kind, cfg=cfg, settings=settings, proxy=proxy, region=region, scenario=scenario,
                experiment=experiment, name=name, command=command, overrides=list(overrides))


def compile_plan(plan: Plan, path: Any, retries: int, backoff_s: int = 60, timeout_s: int | None = None) -> Any:
    """Compile the plan's driver pipeline to ``path`` (``timeout_s``: the driver pod's deadline, None: none)."""
    from pathlib import Path

    from hydra_plugins.navitune_kfp.driver import DriverOptions, compile_driver
    from hydra_plugins.navitune_kfp.jobspec import pipeline_name

    return compile_driver(plan.settings, pipeline_name(None, plan.name), plan.description[:1000], plan.command,
                          Path(path), proxy=plan.proxy, scheduled=plan.kind == "schedule",
                          options=DriverOptions(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s))
