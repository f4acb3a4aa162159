"""What the sweep callback and the job tracker share: settings, secret masking, the MLflow client with short
timeouts, the experiment of a study, the parent run's key, and the one-warning-per-problem guard.

Nothing here imports ``mlflow`` at module level (see the package docstring).
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import logging
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from hydra_plugins.navitune_shared.errors import error_line, invalid
from hydra_plugins.navitune_shared.protocol import (
    ENV_MLFLOW_EXPERIMENT_ID, ENV_MLFLOW_PARENT_RUN_ID, ENV_MLFLOW_PARENT_RUN_URL,
)
from hydra_plugins.navitune_shared.redact import redact, without_userinfo
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("navitune.tracking")
T = TypeVar("T")

# Set by the sweep callback before the launcher starts jobs (forked and local jobs inherit them): the parent
# run's id, or UNAVAILABLE when MLflow could not be reached at the start of the sweep (jobs then stay quiet:
# the sweep already warned once).
ENV_PARENT = ENV_MLFLOW_PARENT_RUN_ID
ENV_EXPERIMENT = ENV_MLFLOW_EXPERIMENT_ID
UNAVAILABLE = "unavailable"
# Also set by the sweep callback (tracking=server only): the parent run's page in the MLflow UI, without
# credentials, for other callbacks of the sweep process (the Slack finish message). Unlike the two above it is
# left in place when the sweep ends (a callback listed before the tracking one ends after it) and replaced or
# removed when the next sweep starts.
ENV_PARENT_URL = ENV_MLFLOW_PARENT_RUN_URL

KINDS = ("local", "server", "off")
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # MLflow 3 opens a "training runs" table, not the GenAI overview
PARENT_TAG = "mlflow.parentRunId"
# The objective's one name: the trials' metric (their objective), the parent's headline (the best trial's value)
# and the study's metric name (conf/search_space/_optuna_async.yaml: optuna-dashboard, the report's plots).
# MLflow's runs table and compare view list metrics sorted by name, capitals first: this one leads.
OBJECTIVE_METRIC = "Revenue per driver-day in yen"
# MLflow 3.17's runs table shows no metric or param column until one is chosen. An experiment tag
# mlflow.sharedViewState.<key> holds a view (MLflow's "share view" writes the same), which a link's
# ?viewStateShareKey=<key> opens: navitune's links open this one (the objective, the tuned parameters, the
# trial state), in the "Model training" workspace (?workflowType=; the experimentKind tag alone does not pick
# the workspace in 3.17).
VIEW_KEY = "navitune"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
DEFAULT_VIEW_PARAMS = ("policy.gamma", "policy.max_wait_min", "policy.road_weights.right")


def runs_view(params: Iterable[str] = DEFAULT_VIEW_PARAMS) -> str:
    """The shared view's JSON: the objective as the first metric column, then the parameters and the state."""
    import json

    columns = [f"metrics.`{OBJECTIVE_METRIC}`", *(f"params.`{p}`" for p in params), "tags.`navitune.state`"]
    return json.dumps({"selectedColumns": columns}, separators=(",", ":"))
ROLE_TAG = "navitune.role"  # sweep (parent) | trial (child) | run (standalone)
SWEEP_KEY_TAG = "navitune.sweep_key"  # hash of study + storage: finds the parent when a sweep resumes
STUDY_KEY_TAG = "navitune.study_key"  # hash of the study name alone (remote jobs whose storage URL differs)
PROJECT_ROOT = Path(__file__).resolve().parents[2]

_SERVER_URI = re.compile(r"https?://([^/@\s]+@)?[A-Za-z0-9.\-\[\]:]+(/\S*)?")
_LOCAL_URI = re.compile(r"sqlite:///[^\s?#]+")


def mask(text: Any) -> str:
    """``text`` with the secrets of every URL in it masked (tracking URIs, storage URLs and webhooks may carry
    credentials; they must never reach MLflow or the logs): the project's one masking,
    :func:`hydra_plugins.navitune_shared.redact.redact`. An unresolved ``${oc.env:...}`` stays: it names the
    secret's variable, which is what configs should hold."""
    return redact(text)


first_line = error_line  # "<Type>: <first line>", masked (experiment.registry reads it from here)


def _invalid(key: str, value: Any, allowed: str) -> Exception:
    from experiment.errors import ConfigError

    return invalid(ConfigError, "navitune", f"config tracking.{key}", value, allowed)


def check_tracking(t: Any) -> None:
    """The ``tracking`` group's rules, one line per problem (called by ``experiment.config.validate``)."""
    if t.kind not in KINDS:
        raise _invalid("kind", t.kind, ", ".join(KINDS))
    if t.kind == "server" and not (t.uri and _SERVER_URI.fullmatch(str(t.uri))):
        raise _invalid("uri", t.uri, "http(s)://host[:port] of an MLflow tracking server (tracking=server)")
    if t.kind == "local" and not (t.uri and _LOCAL_URI.fullmatch(str(t.uri))):
        raise _invalid("uri", t.uri, "sqlite:///PATH, the SQLite store MLflow 3 recommends (tracking=local); "
                             "http(s)://... needs tracking=server")
    if t.experiment is not None and not (0 < len(str(t.experiment)) <= 500):
        raise _invalid("experiment", t.experiment, "null (the study's name) or a name of 1 to 500 characters")
    if not (isinstance(t.timeout_s, (int, float)) and 0 < float(t.timeout_s) <= 600):
        raise _invalid("timeout_s", t.timeout_s, "seconds in (0, 600]")
    if not (isinstance(t.max_retries, int) and 0 <= t.max_retries <= 10):
        raise _invalid("max_retries", t.max_retries, "a whole number in [0, 10]")


@dataclass(frozen=True)
class Settings:
    """The resolved ``tracking`` node (None from :meth:`from_cfg` when tracking is off)."""

    kind: str
    uri: str
    experiment: str | None
    artifact_location: str | None
    timeout_s: float
    max_retries: int

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> "Settings | None":
        t = OmegaConf.select(cfg, "tracking")
        if t is None or t.kind == "off":
            return None
        check_tracking(t)
        return cls(kind=str(t.kind), uri=str(t.uri), experiment=None if t.experiment is None else str(t.experiment),
                   artifact_location=None if t.artifact_location is None else str(t.artifact_location),
                   timeout_s=float(t.timeout_s), max_retries=int(t.max_retries))

    @property
    def where(self) -> str:
        """The store or server, for messages (credentials masked)."""
        return mask(self.uri)

    def ui_url(self, experiment_id: str, run_id: str | None = None) -> str:
        """Where to look: the MLflow UI page of the experiment's runs (or of one run) on a server; for a local
        store, the command that opens the UI on it, and the page to go to."""
        page = f"#/experiments/{experiment_id}/runs" + (f"/{run_id}?" if run_id else
                                                         f"?viewStateShareKey={VIEW_KEY}&")
        page += "workflowType=machine_learning"
        if self.kind == "server":
            base = without_userinfo(self.uri).rstrip("/")  # a link without credentials
            return f"{base}/{page}"
        return f"mlflow ui --backend-store-uri {self.where}, then http://127.0.0.1:5000/{page}"


def prepare(s: Settings) -> None:
    """Process-wide MLflow settings, before the first MLflow call (jobs forked later inherit them)."""
    # a dead server must cost seconds, not MLflow's default of 7 retries with backoff and 120 s timeouts
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(round(s.timeout_s))))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(s.max_retries)
    # MLflow prints "View run ... at <tracking URI>": noise per trial, and the URI may carry credentials
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if s.uri.startswith("sqlite:"):
        # no pooled SQLite connections: jobs are forked from the sweep process, and a connection must not
        # cross a fork; NullPool opens one per operation (cheap for SQLite)
        os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
        path = Path(urllib.parse.unquote(s.uri.removeprefix("sqlite:///")))
        path.parent.mkdir(parents=True, exist_ok=True)
    for name in ("alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)  # "Creating initial MLflow database tables..."
    # "Creating initial MLflow database tables..." (INFO), and on a database error (a full disk: "database or disk
    # is full") a 50-line traceback it logs and then raises anyway as MlflowException: the Guard's one warning
    # (or the registry's one line) says it, so MLflow's own logger of that module stays silent
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def probe(s: Settings) -> None:
    """Fail fast (within ``timeout_s``, no retries) when a tracking server does not answer ``/health``:
    one clear error instead of MLflow's retry loop and a log line per retry."""
    if s.kind != "server":
        return
    parts = urllib.parse.urlsplit(without_userinfo(s.uri))  # urllib cannot take user:password; /health needs none
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/health", "", ""))
    try:
        with urllib.request.urlopen(url, timeout=s.timeout_s) as response:
            response.read(64)
    except urllib.error.HTTPError as err:
        raise ConnectionError(f"the MLflow server answered HTTP {err.code} on /health") from None
    except OSError as err:  # refused, unreachable, timed out
        reason = getattr(err, "reason", err)
        raise ConnectionError(f"no MLflow server answers at {mask(url)} ({reason})") from None


def client(s: Settings) -> Any:
    """The MLflow client; a fresh local store is created under a lock (:mod:`experiment.tracking.store`)."""
    from experiment.tracking.store import open_client

    return open_client(s.uri)


def experiment_id(mlflow_client: Any, name: str, s: Settings, tags: dict[str, str] | None = None,
                  view_params: Iterable[str] = DEFAULT_VIEW_PARAMS) -> str:
    """The id of experiment ``name``, created (or restored from the trash) if needed, with the tag that makes
    MLflow 3 show its runs table and navitune's view of it (:func:`runs_view` of ``view_params``)."""
    view = runs_view(view_params)
    from mlflow.exceptions import MlflowException

    exp = mlflow_client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if s.artifact_location:
            location = s.artifact_location
            if "://" not in location and not location.startswith("file:"):
                location = Path(location).resolve().as_uri()
            location = f"{location.rstrip('/')}/{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        all_tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, VIEW_TAG: view, **(tags or {})}
        try:
            return str(mlflow_client.create_experiment(name, artifact_location=location, tags=all_tags))
        except MlflowException as err:  # created meanwhile by a parallel job or sweeper
            exp = mlflow_client.get_experiment_by_name(name)
            if exp is None:
                raise err from None
    if exp.lifecycle_stage == "deleted":
        mlflow_client.restore_experiment(exp.experiment_id)
    for key, value in ((EXPERIMENT_KIND_TAG, EXPERIMENT_KIND), (VIEW_TAG, view)):
        if exp.tags.get(key) != value:
            mlflow_client.set_experiment_tag(exp.experiment_id, key, value)
    return str(exp.experiment_id)


def default_experiment(cfg: DictConfig, study: str | None, s: Settings) -> str:
    """``tracking.experiment``, else the study's name, else the name a sweep of these settings gives its study."""
    if s.experiment:
        return s.experiment
    if study:
        return study
    window = OmegaConf.select(cfg, "window.cycle", default=None) or cfg.window.name  # rolling: one per as_of
    return f"navitune_{cfg.region.name}_{window}_{cfg.demand.source}"


def compiles_only(config: DictConfig) -> bool:
    """Does the sweep's launcher only compile (``hydra.launcher.compile_only=true``, the kfp launcher)? Then no
    job runs and no trial is created: nothing to track, and no finished sweep to announce."""
    try:
        return OmegaConf.select(config, "hydra.launcher.compile_only", default=False) is True
    except Exception:  # an interpolation that cannot be resolved here: not a compile-only launcher
        return False


def _key(*parts: str) -> str:
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:20]


def sweep_keys(study: str | None, storage: str | None, sweep_dir: str | None) -> dict[str, str]:
    """Tags that identify a sweep's parent run: the study and its storage (credentials masked before hashing),
    so a resumed sweep finds its parent again; without a study (Hydra's basic sweeper), the sweep directory."""
    if study:
        return {SWEEP_KEY_TAG: _key("study", study, mask(storage or "")), STUDY_KEY_TAG: _key("study", study)}
    return {SWEEP_KEY_TAG: _key("dir", str(sweep_dir))}


def find_parents(mlflow_client: Any, exp_id: str, key_tag: str, key: str) -> list[Any]:
    """Active parent runs with this key, oldest first (the oldest wins if two sweepers raced to create one)."""
    from mlflow.entities import ViewType

    runs = mlflow_client.search_runs(
        [exp_id], filter_string=f"tags.`{key_tag}` = '{key}' and tags.`{ROLE_TAG}` = 'sweep'",
        run_view_type=ViewType.ACTIVE_ONLY, max_results=50,
    )
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def trial_run_name(trial: int, attempt: int | None, state: str | None = None) -> str:
    """The name of a trial attempt's child run: ``trial-12``, ``trial-15-retry-1``; a pruned one ends in
    ``-pruned`` (``trial-6-pruned``), so the runs table shows it at a glance (its status stays FINISHED: the
    run ended as planned; KILLED is a trial stopped by Ctrl-C)."""
    return f"trial-{trial}" + (f"-retry-{attempt}" if attempt else "") + ("-pruned" if state == "PRUNED" else "")


def trial_tags(study: str, trial: int | None, attempt: int | None, origin_trial: int | None) -> dict[str, Any]:
    """The tags that say which Optuna trial attempt a child run is (the jobs' runs and back-filled ones)."""
    return {"navitune.study": study, "navitune.trial": trial, "navitune.attempt": attempt,
            "navitune.origin_trial": origin_trial}


def trial_runs(mlflow_client: Any, exp_id: str, study: str) -> list[Any]:
    """Every trial run of a study in the experiment, whichever parent it hangs under (all pages; deleted ones
    included, so nothing a user deleted is re-created)."""
    from mlflow.entities import ViewType

    runs: list[Any] = []
    token = None
    query = f"tags.`navitune.study` = '{study}' and tags.`{ROLE_TAG}` = 'trial'"
    while True:
        page = mlflow_client.search_runs([exp_id], filter_string=query, run_view_type=ViewType.ALL,
                                         max_results=1000, page_token=token)
        runs += list(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """The project's git commit and whether tracked files differ from it (None, None outside a checkout).
    Cached: computed once in the sweep process, inherited by forked jobs."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, dirty


def source_tags() -> dict[str, str]:
    """What MLflow's fluent API would tag a run with (user, source, git commit), set explicitly because the
    client API does not."""
    commit, dirty = git_state()
    tags = {"mlflow.source.name": "navitune (python -m experiment)", "mlflow.source.type": "LOCAL"}
    try:
        tags["mlflow.user"] = getpass.getuser()
    except Exception:  # no user name in a container: leave it out
        pass
    if commit:
        tags |= {"mlflow.source.git.commit": commit, "navitune.git_commit": commit,
                 "navitune.git_dirty": str(dirty).lower()}
    return tags


def batches(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def log_batch(mlflow_client: Any, run_id: str, params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None, metrics: list[tuple[str, float, int]] | None = None) -> None:
    """Params, tags and (key, value, step) metrics in as few requests as MLflow's batch limits allow; every
    string is masked and cut to MLflow's length limits."""
    import time

    from mlflow.entities import Metric, Param, RunTag

    ps = [Param(k, mask(v)[:6000]) for k, v in (params or {}).items() if v is not None]
    ts = [RunTag(k, mask(v)[:8000]) for k, v in (tags or {}).items() if v is not None]
    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, int(step)) for k, v, step in (metrics or [])]
    for chunk in batches(ps + ts, 100):
        mlflow_client.log_batch(run_id, params=[x for x in chunk if isinstance(x, Param)],
                                tags=[x for x in chunk if isinstance(x, RunTag)])
    for chunk in batches(ms, 1000):
        mlflow_client.log_batch(run_id, metrics=chunk)


def config_yaml(cfg: DictConfig) -> str:
    """The composed config as YAML with interpolations kept (``${oc.env:...}`` stays a reference, never the
    secret it points to) and URL credentials masked."""
    return mask(OmegaConf.to_yaml(cfg, resolve=False))


def unreachable(err: BaseException) -> bool:
    """Does this error mean the store or server cannot be used at all (rather than one bad request)?"""
    if isinstance(err, (ConnectionError, TimeoutError, OSError)):
        return True
    text = f"{type(err).__name__} {err}"
    return any(s in text for s in ("Max retries exceeded", "ConnectionError", "Connection refused", "timed out",
                                   "ReadTimeout", "ConnectTimeout", "OperationalError", "database is locked",
                                   "RemoteDisconnected", "HTTP 5", "status code 5"))


class Guard:
    """Runs MLflow calls so that tracking never breaks a run: an unreachable store or server, or a failed
    ``fatal`` call (without which nothing can be tracked: connecting, the experiment, the run) logs ONE
    warning (what is not tracked and why) and turns tracking off for the rest of this process's run; any
    other failed call logs one warning per kind of call and the rest goes on."""

    def __init__(self, s: Settings, lost: str) -> None:
        self.settings = s
        self.lost = lost  # what an outage costs, e.g. "trial 7 is not tracked; the sweep goes on"
        self.off = False
        self._warned: set[str] = set()

    def __call__(self, what: str, fn: Callable[..., T], *args: Any, fatal: bool = False, **kwargs: Any) -> T | None:
        if self.off:
            return None
        try:
            with _quiet_retries():
                return fn(*args, **kwargs)
        except Exception as err:
            if unreachable(err) or fatal:
                self.off = True
                log.warning("MLflow tracking at %s %s (%s, while %s): %s", self.settings.where,
                            "is unavailable" if unreachable(err) else "failed", first_line(err), what, self.lost)
            elif what not in self._warned:
                self._warned.add(what)
                log.warning("MLflow: %s failed (%s); tracking goes on without it", what, first_line(err))
            return None


class _DropRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying")


class _quiet_retries:
    """urllib3 logs a warning per HTTP retry; the Guard's one warning says it all."""

    _filter = _DropRetries()

    def __enter__(self) -> None:
        logging.getLogger("urllib3.connectionpool").addFilter(self._filter)

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("urllib3.connectionpool").removeFilter(self._filter)
