"""A stand-in for a Kubeflow Pipelines cluster's API server, for tests (no KFP cluster exists here).

It serves the ``/apis/v2beta1`` endpoints ``kfp.Client`` calls — healthz, experiments (create, list with a
display-name filter, get) and runs (create, list with filter and sort, get, terminate) — with the JSON shapes of
the real API (snake_case field names, RFC 3339 times, state strings). Listings come in pages as the real server
gives them (``page_size``, ``page_token``, ``next_page_token``: see ``kfp_paging``). A test can make requests fail with HTTP
errors (``fail``) and reads every request back (``requests``) to assert what the client sent.

Two ways to run what is submitted:

* scripted (no executor): nothing runs; a test scripts the states each run goes through (``script``), and a test
  that plays the pod gets the inputs the backend would give the run's task (``task_inputs``);
* executing (``FakeKFP(executor=kfp_executor.Executor(...))``): every created run is executed from the pipeline
  spec in the request, as processes on this machine (see ``kfp_executor``), and its state is what the pod does.

More endpoints plug in with :meth:`FakeKFP.add_route` (a method, a path regex, a handler); a run created by
other code than ``POST /runs`` (e.g. a recurring run firing) goes through :meth:`FakeKFP.create_run`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

from . import kfp_paging
from .kfp_paging import BadRequest
from .kfp_recurring import route

PREFIX = "/apis/v2beta1"
JOB_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"  # kfp.dsl.PIPELINE_JOB_ID_PLACEHOLDER: the run's id


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float  # time.monotonic() when it arrived
    status: int = 200


@dataclass
class Script:
    states: list[str]  # what successive GETs of the run return; the last one stays
    error: str | None = None  # the run's error message once it is FAILED
    on_end: Callable[[dict], None] | None = None  # called (once) just before the first terminal state is served


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern
    statuses: list[int]


TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
RUN_SORT = {"created_at": "created_at", "finished_at": "finished_at", "scheduled_at": "scheduled_at",
            "display_name": "display_name", "name": "display_name", "run_id": "run_id", "id": "run_id"}
EXPERIMENT_SORT = {"created_at": "created_at", "display_name": "display_name", "name": "display_name",
                   "experiment_id": "experiment_id", "id": "experiment_id"}


def _now(when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now(dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Handler = Callable[[re.Match, dict[str, str], Any], tuple[int, Any]]


class FakeKFP:
    """``with FakeKFP() as kfp: ...``; ``kfp.url`` is the host for ``kfp.Client``. With ``executor`` (an
    ``tools.standins.kfp_executor.Executor``) every created run is executed; leaving the block stops the
    executor (every process it started is killed and reaped) before the server."""

    def __init__(self, executor: Any = None) -> None:
        self.requests: list[Request] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.scripts: dict[str, Script] = {}
        self.default_states: list[str] | None = None  # for runs without a script of their own
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # the executor updates runs under it, also from inside a create
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        self.executor = executor
        if executor is not None:
            executor.attach(self._update_run, api_port=self._server.server_address[1])

    # ------------------------------------------------------------------------------------ test API
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeKFP":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.executor is not None:
            self.executor.shutdown()
        self._server.shutdown()
        self._server.server_close()

    def add_route(self, method: str, path_regex: str, handler: Handler) -> None:
        """Serve ``method`` on paths matching ``path_regex`` (under the API prefix, e.g.
        ``r"/recurringruns/([^/:]+)"``) with ``handler(match, query, body) -> (status, payload)``, called under
        the server's lock. Added routes are tried before the built-in ones."""
        self._routes.append((method, re.compile(PREFIX + path_regex), handler))

    def create_run(self, body: dict, *, scheduled_at: dt.datetime | None = None,
                   recurring_run_id: str | None = None) -> dict:
        """Create a run as ``POST /runs`` does (and execute it, with an executor): for a run a recurring run
        fires, ``scheduled_at`` is its scheduled time (a one-off run's is its creation time), which the
        schedule-time placeholder resolves to. Takes the server's lock: call it from outside a handler."""
        with self._lock:
            return self._create_run(body, scheduled_at=scheduled_at, recurring_run_id=recurring_run_id)

    def start_run(self, experiment_id: str, display_name: str, pipeline_spec: dict, parameters: dict[str, Any],
                  *, scheduled_at: dt.datetime | None = None, recurring_run_id: str | None = None,
                  service_account: str | None = None) -> dict:
        """Create (and, with an executor, execute) a run of ``pipeline_spec`` (the API's ``pipeline_spec``
        field: the spec, or ``{"pipeline_spec": ..., "platform_spec": ...}``) with these parameters: what a
        recurring run does when it fires."""
        body: dict[str, Any] = {"experiment_id": experiment_id, "display_name": display_name,
                                "pipeline_spec": pipeline_spec, "runtime_config": {"parameters": dict(parameters)}}
        if service_account:
            body["service_account"] = service_account
        return self.create_run(body, scheduled_at=scheduled_at, recurring_run_id=recurring_run_id)

    def wait_for(self, run_id: str, timeout_s: float, states: frozenset[str] | set[str] = frozenset(TERMINAL)) -> dict:
        """The run's record once its state is in ``states``; ``TimeoutError`` at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                run = dict(self.runs[run_id])
            if run["state"] in states:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['state']} after {timeout_s:g} s")
            time.sleep(0.02)

    def _update_run(self, run_id: str, fn: Callable[[dict], None]) -> None:
        with self._lock:
            run = self.runs.get(run_id)
            if run is not None:
                fn(run)

    def script(self, display_name: str, *states: str, error: str | None = None,
               on_end: Callable[[dict], None] | None = None) -> None:
        """The states the run of that name shows on successive GETs (after creation it is PENDING)."""
        self.scripts[display_name] = Script(list(states), error, on_end)

    def fail(self, method: str, path_regex: str, *statuses: int) -> None:
        """The next requests matching ``method`` and ``path_regex`` get these HTTP statuses, one each."""
        self._failures.append(_Failure(method, re.compile(path_regex), list(statuses)))

    def add_experiment(self, display_name: str, namespace: str = "") -> dict:
        with self._lock:
            return self._create_experiment({"display_name": display_name, "namespace": namespace})

    def add_run(self, experiment_id: str, display_name: str, state: str = "RUNNING",
                parameters: dict | None = None) -> dict:
        """A run that already exists (e.g. submitted by a sweeper that has since died)."""
        with self._lock:
            run = self._create_run({"experiment_id": experiment_id, "display_name": display_name,
                                    "runtime_config": {"parameters": parameters or {}}})
            run["state"] = state
            return run

    def calls(self, method: str, path_regex: str) -> list[Request]:
        """Requests that reached the API logic (not the injected failures)."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path) and r.status == 200]

    def attempts(self, method: str, path_regex: str) -> list[Request]:
        """All requests, injected failures included."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def task_inputs(self, run: dict, task: str | None = None) -> dict[str, Any]:
        """The input parameters the backend gives a task of the run's pipeline (the only task unless named):
        the run's parameters it takes from the pipeline, and its constants with the run-level placeholders
        resolved, like the real backend's driver does."""
        spec = run["pipeline_spec"]
        spec = spec.get("pipeline_spec", spec)  # {"pipeline_spec": ..., "platform_spec": ...} or the spec itself
        tasks = spec["root"]["dag"]["tasks"]
        if task is None:
            (task,) = tasks
        given = (run.get("runtime_config") or {}).get("parameters") or {}
        out: dict[str, Any] = {}
        for name, value in tasks[task].get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                out[name] = given[value["componentInputParameter"]]
            elif "runtimeValue" in value:
                constant = value["runtimeValue"]["constant"]
                out[name] = constant.replace(JOB_ID_PLACEHOLDER, run["run_id"]) if isinstance(constant, str) \
                    else constant
            else:
                raise ValueError(f"task {task}: input {name} is neither a pipeline parameter nor a constant")
        return out

    # ----------------------------------------------------------------------------------- model
    def _create_experiment(self, body: dict) -> dict:
        exp = {
            "experiment_id": f"exp-{next(self._ids)}",
            "display_name": body.get("display_name", ""),
            "description": body.get("description", ""),
            "namespace": body.get("namespace") or "",
            "created_at": _now(),
            "storage_state": "AVAILABLE",
        }
        self.experiments[exp["experiment_id"]] = exp
        time.sleep(0.002)  # distinct created_at values
        return exp

    def _create_run(self, body: dict, scheduled_at: dt.datetime | None = None,
                    recurring_run_id: str | None = None) -> dict:
        run = dict(body)
        created = _now()
        run.update({"run_id": f"run-{next(self._ids)}", "state": "PENDING", "created_at": created,
                    "scheduled_at": _now(scheduled_at) if scheduled_at else created, "storage_state": "AVAILABLE",
                    "state_history": [{"update_time": created, "state": "PENDING"}]})
        if recurring_run_id:
            run["recurring_run_id"] = recurring_run_id
        self.runs[run["run_id"]] = run
        if self.executor is not None and run.get("pipeline_spec"):
            self.executor.start(dict(run))
        time.sleep(0.002)
        return run

    def _advance(self, run: dict) -> None:
        if self.executor is not None and run["run_id"] in self.executor.runs:
            return  # its pod decides its state
        script = self.scripts.get(run["display_name"])
        if script is None and self.default_states:
            script = self.scripts[run["display_name"]] = Script(list(self.default_states))
        if script is None or run["state"] in TERMINAL or run["state"] == "CANCELING":
            if run["state"] == "CANCELING":
                run["state"] = "CANCELED"
            return
        state = script.states.pop(0) if len(script.states) > 1 else script.states[0]
        if state in TERMINAL and script.on_end is not None:
            hook, script.on_end = script.on_end, None
            hook(run)
        run["state"] = state
        if state == "FAILED" and script.error:
            run["error"] = {"code": 2, "message": script.error}
            run["run_details"] = {"task_details": [
                {"display_name": "navitune-job", "state": "FAILED", "error": {"code": 2, "message": script.error}}]}
        if state in TERMINAL:
            run["finished_at"] = _now()

    @staticmethod
    def _listing(name: str, items: list[dict], query: dict[str, str], key: str,
                 fields: dict[str, str]) -> dict[str, Any]:
        """One page of a listing in the API's JSON: empty fields left out, as protojson leaves them."""
        rows, token, total = kfp_paging.page(items, query, key=key, fields=fields)
        out: dict[str, Any] = {name: rows} if rows else {}
        if total:
            out["total_size"] = total
        if token:
            out["next_page_token"] = token
        return out

    # ----------------------------------------------------------------------------------- HTTP
    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        for want, pattern, handler in self._routes:
            m = pattern.fullmatch(path)
            if m and want == method:
                return handler(m, query, body)
        if method == "GET" and path == f"{PREFIX}/healthz":
            return 200, {"commit_sha": "fake", "tag_name": "2.5.0", "multi_user": False}
        if path.startswith(f"{PREFIX}/recurringruns"):  # schedules: tools/standins/kfp_recurring.py
            return route(self, method, path, query, body)
        if path == f"{PREFIX}/experiments":
            if method == "POST":
                return 200, self._create_experiment(body)
            items = [e for e in self.experiments.values()
                     if not query.get("namespace") or e["namespace"] == query["namespace"]]
            return 200, self._listing("experiments", items, query, "experiment_id", EXPERIMENT_SORT)
        m = re.fullmatch(rf"{PREFIX}/experiments/([^/:]+)", path)
        if m and method == "GET":
            exp = self.experiments.get(m.group(1))
            return (200, exp) if exp else (404, {"error": "not found", "code": 5, "message": "experiment not found"})
        if path == f"{PREFIX}/runs":
            if method == "POST":
                if body.get("experiment_id") not in self.experiments:
                    return 400, {"code": 3, "message": "unknown experiment_id"}
                return 200, self._create_run(body)
            items = [r for r in self.runs.values()
                     if not query.get("experiment_id") or r.get("experiment_id") == query["experiment_id"]]
            return 200, self._listing("runs", items, query, "run_id", RUN_SORT)
        m = re.fullmatch(rf"{PREFIX}/runs/([^/:]+)(:terminate)?", path)
        if m:
            run = self.runs.get(m.group(1))
            if run is None:
                return 404, {"code": 5, "message": "run not found"}
            if method == "POST" and m.group(2):
                if run["state"] not in TERMINAL:
                    run["state"] = "CANCELING"
                    if self.executor is not None:
                        self.executor.terminate(run["run_id"])
                return 200, {}
            if method == "GET" and not m.group(2):
                self._advance(run)
                return 200, run
        return 404, {"code": 5, "message": f"no route {method} {path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                req = Request(method, url.path, query, body, time.monotonic())
                with fake._lock:
                    fake.requests.append(req)
                    status: int | None = None
                    for failure in fake._failures:
                        if failure.statuses and failure.method == method and failure.pattern.fullmatch(url.path):
                            status = failure.statuses.pop(0)
                            payload: Any = {"code": 14, "message": f"injected HTTP {status}"}
                            break
                    if status is None:
                        try:
                            status, payload = fake._route(method, url.path, query, body or {})
                        except BadRequest as err:  # the request's fault, named as the real server names it
                            status, payload = 400, {"code": 3, "message": str(err)}
                        except Exception as err:  # a bug in a test's script shows as a 500 with the reason
                            status, payload = 500, {"code": 13, "message": f"{type(err).__name__}: {err}"}
                    req.status = status
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        return Handler
