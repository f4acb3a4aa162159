"""``backend=remote``: each job as a run in a KFP cluster, through ``kfp.Client`` (API ``/apis/v2beta1``).

* **One experiment per sweep** (the study name): looked up by name, created once, reused; two sweepers that
  create it at the same moment both settle on the oldest.
* **Idempotent submission**: before creating a run, look for a run of the same display name in the
  experiment and wait for that one instead (a sweeper restarted after a crash retries a stale trial as the same
  attempt, so the name matches). A create that failed with a transient error is retried only after the same
  look, so a create the server did perform is not doubled.
* **Every run state**: SUCCEEDED, FAILED, CANCELED / CANCELING (kfp's ``wait_for_run_completion`` would wait on
  forever), SKIPPED end the job; PENDING, RUNNING, PAUSED and unknown states are waited on, up to
  ``timeout_s`` (then the run is terminated and the job fails).
* **Transient API errors** (HTTP 5xx, 429, no connection) are retried with exponential backoff.
* **One look for all runs**: with more than :data:`LIST_ABOVE` runs in flight, the job threads share one
  ``list_runs`` of the experiment (newest first, paged until every watched run is seen) per half poll interval
  instead of one ``get_run`` per run per interval: the API sees a request per interval, not one per run, and
  the sweeper parses one response (measured by ``python -m experiment.bench kfp-scale``; see
  docs/performance.md). A run the listing does not reach (older than its pages, or deleted) is asked for alone.
  Listings are read as plain JSON (:class:`RunRecord`), not as kfp_server_api models: building the models of
  100 runs (each with its pipeline spec) twice a second took most of a core in the sweeper's process.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
import warnings
from typing import Any, Callable

from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.navitune_shared.errors import error_line
from hydra_plugins.navitune_shared.redact import redact

from . import results
from .errors import (KFPApiError, KFPUnavailable, LauncherShutdown, RunCanceled, RunFailed, RunResultMissing,
                     RunSkipped, RunTimedOut)
from .jobspec import JobSpec
from .settings import LauncherSettings, ui_base

log = logging.getLogger(__name__)

EQUALS = 1  # kfp's filter operation code, as kfp.Client sends it
WAITING = {"", "RUNTIME_STATE_UNSPECIFIED", "PENDING", "RUNNING"}
KNOWN = WAITING | {"SUCCEEDED", "FAILED", "CANCELED", "CANCELING", "SKIPPED", "PAUSED"}
MAX_BACKOFF_S = 60.0
LIST_ABOVE = 4  # runs in flight above which the threads poll through one shared list_runs
LIST_SLACK = 20  # extra rows per page: runs of other sweepers in the same experiment, created meanwhile
MAX_PAGE_SIZE = 200
MAX_LIST_PAGES = 20


def _name_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": EQUALS, "key": "display_name", "stringValue": name}]})


def _status(err: BaseException) -> int | None:
    """The HTTP status of kfp_server_api's ``ApiException`` (0: the request got no answer), else None."""
    from kfp_server_api.exceptions import ApiException

    return int(err.status or 0) if isinstance(err, ApiException) else None


def _transient(err: BaseException) -> bool:
    """Worth retrying, by the answer's status and the error's type (never its text): the server failed (5xx),
    is throttling (429), or could not be reached (no answer, a connection or timeout error). Any other 4xx
    is the request's fault: it fails at once, in one line."""
    import urllib3

    status = _status(err)
    if status is not None:
        return status == 0 or status == 429 or status >= 500
    return isinstance(err, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def _describe(err: BaseException) -> str:
    """One line: ``HTTP <status> <reason>: <the server's message>`` for an API answer, else the error's line."""
    from kfp_server_api.exceptions import ApiException

    if isinstance(err, ApiException):
        detail = ""
        try:
            body = json.loads(err.body or "{}")
            detail = str(body.get("message") or body.get("error") or "")
        except (TypeError, ValueError, AttributeError):  # not JSON, or JSON that is no object
            detail = str(err.body or "")
        detail = " ".join(detail.split())[:300]  # one line, whatever the server sent
        return f"HTTP {err.status} {err.reason or ''}".rstrip() + (f": {detail}" if detail else "")
    return error_line(err)  # masked: a connection error may show the host's URL


def _when(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str) and value:  # RFC 3339, as the API's JSON has it
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


class _Fields:
    """Attribute access to a JSON object's fields (a missing field reads as None), as kfp_server_api's models
    offer it."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._fields.get(name)
        if isinstance(value, dict):
            return _Fields(value)
        if isinstance(value, list):
            return [_Fields(v) if isinstance(v, dict) else v for v in value]
        return value

    def to_dict(self) -> dict[str, Any]:
        return self._fields


class RunRecord(_Fields):
    """A run as the API's JSON answered it (``run_id``, ``display_name``, ``state``, ``created_at``, ``error``,
    ``run_details``, ``runtime_config``, ...): what the launcher reads of a listed run, without the cost of
    kfp_server_api's models, which build a client configuration per nested object."""


def _runs_page(response: Any) -> tuple[list[RunRecord], str]:
    """The runs and the next page token of a ``ListRuns`` answer read raw (``_preload_content=False``)."""
    try:
        body = json.loads(response.data or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValueError(f"the answer is not a JSON object (HTTP {getattr(response, 'status', '?')})")
    runs = [RunRecord(r) for r in body.get("runs") or [] if isinstance(r, dict)]
    return runs, str(body.get("next_page_token") or "")


class RemoteBackend:
    """A KFP API connection shared by the launcher's job threads (one experiment, one compiled spec)."""

    def __init__(self, settings: LauncherSettings, experiment: str, description: str) -> None:
        self.settings = settings
        self.experiment = experiment
        self.description = description
        self.closing = threading.Event()
        self.pipeline_spec: dict[str, Any] | None = None
        self._stores: dict[tuple[str, str], results.ResultStore] = {}
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # one listing at a time; the other threads read it
        self._watched: dict[str, float] = {}  # run id -> when its thread began to wait on it (monotonic)
        self._listed: dict[str, Any] = {}
        self._listed_at = float("-inf")
        try:
            self.client = self._connect()
            self.experiment_id = self._ensure_experiment()
        except (KFPApiError, LauncherShutdown) as err:
            raise KFPUnavailable(f"kfp: cannot use the KFP API at hydra.launcher.host={settings.host}: {err}") from None

    # ------------------------------------------------------------------------------- API plumbing
    def api(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API; retry transient failures (HTTP 5xx, 429, no connection) with the shared back-off
        (:mod:`hydra_plugins.navitune_shared.retry`), ended early when the launcher shuts down."""
        from hydra_plugins.navitune_shared.retry import Backoff, call_with_retries

        tries = self.settings.api_retries + 1

        def pause(seconds: float) -> None:
            if self.closing.wait(seconds):
                raise LauncherShutdown(f"{what}: the launcher shut down")

        def warn(err: BaseException, retry: int, seconds: float) -> None:
            log.warning("KFP API: %s: %s; retry %d/%d in %.3g s", what, _describe(err), retry, tries - 1, seconds)

        try:
            return call_with_retries(lambda: fn(*args, **kwargs), attempts=tries, retry_on=_transient,
                                     backoff=Backoff(self.settings.api_backoff_s, max_s=MAX_BACKOFF_S, jitter=0.0),
                                     sleep=pause, on_retry=warn)
        except LauncherShutdown:
            raise
        except Exception as err:  # noqa: BLE001 - the last try's error, or one not worth retrying
            after = f" (after {tries} attempts)" if _transient(err) else ""
            raise KFPApiError(f"{what}: {_describe(err)}{after}", _status(err)) from None

    def _connect(self) -> Any:
        import kfp

        s = self.settings
        kwargs: dict[str, Any] = {"host": s.host, "verify_ssl": s.verify_ssl}
        if s.namespace:
            kwargs["namespace"] = s.namespace
        if s.ssl_ca_cert:
            kwargs["ssl_ca_cert"] = s.ssl_ca_cert
        if s.ui_host:
            kwargs["ui_host"] = s.ui_host
        if s.auth_token_env:
            kwargs["existing_token"] = os.environ[s.auth_token_env]  # the token itself is never logged
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
            client = self.api("connect", kfp.Client, **kwargs)
        self.api("health check", client.healthzs.healthz_service_get_healthz)
        return client

    def link(self, kind: str, ident: str) -> str:
        """The UI page of a run or experiment (``kind``: ``runs``, ``experiments``), credentials left out."""
        return f"{ui_base(self.settings) or ''}/#/{kind}/details/{ident}"

    # ------------------------------------------------------------------------------ experiment
    def _ensure_experiment(self) -> str:
        return self._find_or_create_experiment()  # once per sweep: the sweeper sets its launcher up once

    def _find_or_create_experiment(self) -> str:
        import kfp_server_api

        ns = self.settings.namespace

        def find() -> list[Any]:
            resp = self.api("list experiments", self.client.list_experiments, filter=_name_filter(self.experiment),
                            page_size=10, namespace=ns)
            found = [e for e in (resp.experiments or []) if e.display_name == self.experiment]
            return sorted(found, key=lambda e: (_when(e.created_at), e.experiment_id))

        found = find()
        if not found:
            body = kfp_server_api.V2beta1Experiment(display_name=self.experiment, description=self.description,
                                                    namespace=ns)
            self.api("create experiment", self.client.experiments.experiment_service_create_experiment,
                     experiment=body)
            found = find()  # the oldest of that name: a concurrent sweeper may have created one too
            if not found:
                raise KFPApiError(f"experiment {self.experiment!r} was created but cannot be found")
            log.info("KFP experiment %r created: %s", self.experiment, self.link("experiments", found[0].experiment_id))
        else:
            log.info("KFP experiment %r: %s", self.experiment, self.link("experiments", found[0].experiment_id))
        return str(found[0].experiment_id)

    # ------------------------------------------------------------------------------------- runs
    def list_runs(self, page_size: int, page_token: str = "", filter: str | None = None) -> tuple[list[RunRecord], str]:
        """One page of the experiment's runs, newest first, as :class:`RunRecord` (and the next page's token)."""
        kwargs: dict[str, Any] = {"experiment_id": self.experiment_id, "sort_by": "created_at desc",
                                  "page_size": page_size, "page_token": page_token, "_preload_content": False}
        if filter is not None:
            kwargs["filter"] = filter
        # the body is read and parsed inside the retried call: a connection cut while it streams is retried
        return self.api("list runs", lambda: _runs_page(self.client.runs.run_service_list_runs(**kwargs)))

    def find_run(self, name: str) -> Any | None:
        runs, _ = self.list_runs(10, filter=_name_filter(name))
        runs = [r for r in runs if r.display_name == name]
        return max(runs, key=lambda r: (_when(r.created_at), str(r.run_id))) if runs else None

    def create_run(self, job: JobSpec, params: dict[str, str]) -> Any:
        import kfp_server_api

        assert self.pipeline_spec is not None
        shown = " ".join(filter_overrides(job.overrides))
        body = kfp_server_api.V2beta1Run(
            experiment_id=self.experiment_id,
            display_name=job.run_name,
            description=redact(f"navitune job {job.idx}: {shown}")[:1000],
            pipeline_spec=self.pipeline_spec,
            runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=params,
                                                               pipeline_root=self.settings.pipeline_root),
            service_account=self.settings.service_account,
        )
        first = True

        def create() -> Any:
            nonlocal first
            if not first:  # the failed attempt may have created it after all
                existing = self.find_run(job.run_name)
                if existing is not None:
                    return existing
            first = False
            return self.client.runs.run_service_create_run(run=body)

        return self.api("create run", create)

    def start(self, job: JobSpec, params: dict[str, str]) -> Any:
        """The run of this job: an existing one of the same name (re-attach) or a new one. The study's
        identity travels in the run's options, so a run left by an earlier study of the same name (deleted and
        created again, its trial numbers starting over) is not mistaken for this trial's."""
        store = self._store(job)
        if store is not None:
            options = json.loads(params["options_json"])
            options["study_id"] = store.study_id
            params = dict(params, options_json=json.dumps(options))
        existing = self.find_run(job.run_name)
        if existing is not None:
            theirs = _run_options(existing).get("study_id")
            if store is None or theirs is None or theirs == store.study_id:
                log.info("job %d: re-attached to KFP run %s (%s, %s)", job.idx, job.run_name, existing.state,
                         self.link("runs", existing.run_id))
                return existing
            log.warning("job %d: KFP run %s of the same name belongs to an earlier study %r (id %s, now %s): "
                        "submitting a new run", job.idx, job.run_name, store.study, theirs, store.study_id)
        run = self.create_run(job, params)
        log.info("job %d: KFP run %s submitted: %s", job.idx, job.run_name, self.link("runs", run.run_id))
        return run

    def terminate(self, run_id: str) -> None:
        self.api("terminate run", self.client.terminate_run, run_id)

    # ------------------------------------------------------------------------------------- a job
    def run(self, job: JobSpec, params: dict[str, str], closing: threading.Event) -> JobReturn:
        """Submit (or re-attach), wait for an end state, and turn it into the job's JobReturn."""
        started = time.monotonic()
        run = self.start(job, params)
        run_id, name = str(run.run_id), job.run_name
        where = f"KFP run {name} ({self.link('runs', run_id)})"
        noted: set[str] = set()
        with self._poll_lock:
            self._watched[run_id] = time.monotonic()
        try:
            return self._wait(job, run, where, started, closing, noted)
        finally:
            with self._poll_lock:
                self._watched.pop(run_id, None)
                self._listed.pop(run_id, None)

    def _wait(self, job: JobSpec, run: Any, where: str, started: float, closing: threading.Event,
              noted: set[str]) -> JobReturn:
        run_id = str(run.run_id)
        while True:
            state = str(run.state or "").upper()
            if state not in WAITING and state != "PAUSED" and state in KNOWN:
                return self._ended(job, run, state, where)
            if state not in KNOWN and state not in noted:
                log.warning("%s is in an unknown state %r: waiting", where, run.state)
            if state == "PAUSED" and state not in noted:
                log.warning("%s is PAUSED: waiting for it to resume", where)
            noted.add(state)
            if self.settings.timeout_s is not None and time.monotonic() - started > self.settings.timeout_s:
                self.terminate(run_id)
                err = RunTimedOut(f"{where} exceeded hydra.launcher.timeout_s={self.settings.timeout_s:g} s "
                                  "and was terminated")
                log.error(str(err))
                return results.failed(job.overrides, job.config, err)
            if closing.wait(self.settings.poll_interval):
                if self.settings.cancel_on_shutdown:
                    self.terminate(run_id)
                    why = "terminated"
                else:
                    why = "left running (a restarted sweep re-attaches to it)"
                return results.failed(job.overrides, job.config,
                                      LauncherShutdown(f"the launcher shut down while waiting for {where}: {why}"))
            try:
                run = self._poll(run_id)
            except KFPApiError as err:
                if err.status == 404:  # deleted meanwhile
                    return results.failed(job.overrides, job.config, RunFailed(f"{where} no longer exists"))
                raise

    def _poll(self, run_id: str) -> Any:
        """The run's current record: its own ``get_run`` while few runs are in flight, else from the shared
        listing, refreshed when it is older than half a poll interval or older than this run's wait."""
        with self._poll_lock:
            listed = None
            if len(self._watched) > LIST_ABOVE:
                since = self._watched.get(run_id, time.monotonic())
                if time.monotonic() - self._listed_at >= self.settings.poll_interval / 2 or self._listed_at < since:
                    self._list_watched()
                listed = self._listed.get(run_id)
        if listed is not None:
            return listed
        return self.api("get run", self.client.get_run, run_id)

    def _list_watched(self) -> None:
        """List the experiment's runs, newest first, until every watched run is seen (called under
        ``_poll_lock``); a run not reached stays out of ``_listed`` and is asked for alone."""
        listed_at = time.monotonic()
        want = set(self._watched)
        found: dict[str, Any] = {}
        token = ""
        for _ in range(MAX_LIST_PAGES):
            runs, token = self.list_runs(min(len(want) + LIST_SLACK, MAX_PAGE_SIZE), token)
            for r in runs:
                if str(r.run_id) in want:
                    found[str(r.run_id)] = r
            if not token or want <= found.keys():
                break
        self._listed, self._listed_at = found, listed_at

    def _ended(self, job: JobSpec, run: Any, state: str, where: str) -> JobReturn:
        if state in ("CANCELED", "CANCELING"):
            err: BaseException = RunCanceled(f"{where} was canceled ({state})")
        elif state == "SKIPPED":
            err = RunSkipped(f"{where} was SKIPPED by KFP")
        else:
            payload = self._result(job)
            if payload is not None and (state == "FAILED") == (payload.get("status") == "FAILED"):
                ret = results.decode(payload, job.overrides, job.config)
                if state == "FAILED":
                    log.error("%s failed: %s", where, results.error_line(payload))
                return ret
            if state == "SUCCEEDED":
                if results.channel(job.config) is None:
                    log.warning("%s succeeded; its return value stays in KFP (the job is not a trial of a study "
                                "in a database, the only way back for a result)", where)
                    return results.completed(job.overrides, job.config, None)
                err = RunResultMissing(f"{where} SUCCEEDED but its result is not in the study storage")
            else:
                err = RunFailed(f"{where} FAILED: {_run_error(run)}")
        log.error(str(err))
        return results.failed(job.overrides, job.config, err)

    def _store(self, job: JobSpec) -> results.ResultStore | None:
        """Where this job's result will be (the study of its trial), or None when it is no trial."""
        channel = results.channel(job.config)
        if channel is None:
            return None
        key = (str(channel[0]), channel[1])
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = results.ResultStore(*channel)
        return store

    def _result(self, job: JobSpec) -> dict[str, Any] | None:
        store = self._store(job)
        return store.fetch(job.run_name) if store is not None else None


def _run_options(run: Any) -> dict[str, Any]:
    """The launcher options a run was created with (empty for a run that has none)."""
    config = run.runtime_config
    params = (config.parameters if config is not None else None) or {}
    if hasattr(params, "to_dict"):  # a RunRecord's map of parameters
        params = params.to_dict()
    try:
        value = json.loads(params.get("options_json") or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _run_error(run: Any) -> str:
    """The run's error and its failed tasks' errors (KFP fills them from the pods' termination messages)."""
    parts: list[str] = []
    if run.error is not None and run.error.message:
        parts.append(str(run.error.message))
    details = run.run_details.task_details if run.run_details is not None else None
    for task in details or []:
        msg = task.error.message if task.error is not None else None
        if msg and msg not in parts:
            parts.append(f"task {task.display_name}: {msg}")
    return "; ".join(parts) or "no error message (see the run's logs in the KFP UI)"
