"""Recurring runs (KFP schedules) for the stand-in KFP API (:class:`~tools.standins.kfp_api_server.FakeKFP`).

Serves the ``/apis/v2beta1/recurringruns`` endpoints ``kfp.Client`` calls — create, list (display-name filter,
experiment, namespace, pages), get, ``:enable``, ``:disable``, delete — with the fields the client sends and the
real API returns (``trigger`` with ``cron_schedule`` or ``periodic_schedule``, ``max_concurrency``, ``no_catchup``,
``mode`` and ``status``), and refuses what the real API refuses (no trigger or two, a cron robfig/cron cannot
parse, ``max_concurrency`` outside 1..10, an unknown experiment).

Nothing runs on a clock: a test **fires** a schedule at a time it chooses (:meth:`RecurringRuns.fire`), which
creates a run as KFP's scheduler would — ``recurring_run_id``, ``scheduled_at`` = that time, the schedule's
pipeline spec and runtime config — unless the schedule is paused or ``max_concurrency`` runs of it are still
going. :meth:`RecurringRuns.catch_up` fires a list of missed times the way ``no_catchup`` says (only the latest,
or each). :func:`task_inputs` and :func:`task_command` resolve a run's task as the backend's driver would,
``{{$.pipeline_job_schedule_time_utc}}`` included.

Hooked into FakeKFP's router by one line (``route``); the state lives on the FakeKFP instance (``recurring``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from typing import Any

PREFIX = "/apis/v2beta1"
SCHEDULE_TIME_PLACEHOLDER = "{{$.pipeline_job_schedule_time_utc}}"  # dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER
INPUT_RE = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")
ACTIVE = {"PENDING", "RUNNING", "PAUSED", "CANCELING", ""}
SORT = {"created_at": "created_at", "display_name": "display_name", "name": "display_name",
        "recurring_run_id": "recurring_run_id", "id": "recurring_run_id"}  # listing: pages as kfp_paging says


def rfc3339(when: dt.datetime) -> str:
    when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bad(message: str) -> tuple[int, dict]:
    return 400, {"code": 3, "message": message}


class RecurringRuns:
    """The recurring runs of one FakeKFP (``fake.recurring``)."""

    def __init__(self, fake: Any) -> None:  # the FakeKFP it serves (not imported: it imports this module)
        self.fake = fake
        self.items: dict[str, dict] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------ test API
    def fire(self, recurring_run_id: str, at: dt.datetime) -> dict | None:
        """The run the scheduler starts for the time ``at``, or None when the schedule is paused or
        ``max_concurrency`` of its runs are not over yet (the real scheduler waits then)."""
        with self.fake._lock:
            rec = self.items[recurring_run_id]
            if rec["mode"] != "ENABLE":
                return None
            going = [r for r in self.fake.runs.values()
                     if r.get("recurring_run_id") == recurring_run_id and r.get("state", "") in ACTIVE]
            if len(going) >= int(rec["max_concurrency"]):
                return None
            body = {
                "experiment_id": rec["experiment_id"],
                "display_name": f"{rec['display_name']}-{at.astimezone(dt.timezone.utc):%Y%m%d%H%M%S}",
                "description": rec.get("description", ""),
                "pipeline_spec": rec.get("pipeline_spec"),
                "runtime_config": rec.get("runtime_config") or {},
                "service_account": rec.get("service_account", ""),
            }
            create = getattr(self.fake, "create_run", None)
            if create is not None:  # a FakeKFP that records the scheduled time itself (and may execute the run)
                return create(body, scheduled_at=at, recurring_run_id=recurring_run_id)
            return self.fake._create_run({**body, "recurring_run_id": recurring_run_id, "scheduled_at": rfc3339(at)})

    def catch_up(self, recurring_run_id: str, missed: list[dt.datetime]) -> list[dict]:
        """Fire the times a schedule missed (paused, or behind): only the latest with ``no_catchup``, else each
        in order (each still subject to ``max_concurrency``)."""
        rec = self.items[recurring_run_id]
        times = sorted(missed)[-1:] if rec.get("no_catchup") else sorted(missed)
        return [r for r in (self.fire(recurring_run_id, t) for t in times) if r is not None]

    # ----------------------------------------------------------------------------------- model
    def _create(self, body: dict) -> tuple[int, Any]:
        from hydra_plugins.navitune_kfp.recurring import TriggerError, normalize_cron

        if not body.get("display_name"):
            return _bad("a recurring run needs a display_name")
        if body.get("experiment_id") not in self.fake.experiments:
            return _bad("unknown experiment_id")
        if not body.get("pipeline_spec") and not body.get("pipeline_version_reference"):
            return _bad("a recurring run needs a pipeline_spec or a pipeline_version_reference")
        trigger = body.get("trigger") or {}
        cron, periodic = trigger.get("cron_schedule"), trigger.get("periodic_schedule")
        if bool(cron) == bool(periodic):
            return _bad("the trigger needs exactly one of cron_schedule and periodic_schedule")
        if cron:
            fields = str(cron.get("cron", "")).split()
            try:  # robfig/cron's default parser: 5 or 6 fields, seconds first, day of week optional
                normalize_cron(" ".join(fields) if len(fields) != 5 or fields[0].startswith("@") else
                               " ".join([*fields, "*"]))
            except TriggerError as err:
                return _bad(f"invalid cron {cron.get('cron')!r}: {err}")
        if periodic and not 0 < int(periodic.get("interval_second") or 0):
            return _bad("periodic_schedule.interval_second must be > 0")
        concurrency = int(body.get("max_concurrency") or 1)
        if not 1 <= concurrency <= 10:
            return _bad("max_concurrency must be in 1..10")
        now = self.fake_now()
        mode = body.get("mode") or "ENABLE"
        rec = {**body, "recurring_run_id": f"rec-{next(self._ids)}", "mode": mode, "max_concurrency": str(concurrency),
               "no_catchup": bool(body.get("no_catchup", False)), "created_at": now, "updated_at": now,
               "status": "ENABLED" if mode == "ENABLE" else "DISABLED", "namespace": body.get("namespace") or ""}
        self.items[rec["recurring_run_id"]] = rec
        return 200, rec

    @staticmethod
    def fake_now() -> str:
        return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _list(self, query: dict[str, str]) -> tuple[int, Any]:
        items = [r for r in self.items.values()
                 if (not query.get("experiment_id") or r["experiment_id"] == query["experiment_id"])
                 and (not query.get("namespace") or r["namespace"] == query["namespace"])]
        # "recurringRuns": the API's JSON name
        return 200, self.fake._listing("recurringRuns", items, query, "recurring_run_id", SORT)

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if path == f"{PREFIX}/recurringruns":
            return self._create(body or {}) if method == "POST" else self._list(query)
        m = re.fullmatch(rf"{PREFIX}/recurringruns/([^/:]+)(?::(enable|disable))?", path)
        rec = self.items.get(m.group(1)) if m else None
        if rec is None:
            return 404, {"code": 5, "message": "recurring run not found"}
        action = m.group(2) if m else None
        if method == "POST" and action:
            rec["mode"], rec["status"] = ("ENABLE", "ENABLED") if action == "enable" else ("DISABLE", "DISABLED")
            rec["updated_at"] = self.fake_now()
            return 200, {}
        if method == "GET" and not action:
            return 200, rec
        if method == "DELETE" and not action:
            del self.items[rec["recurring_run_id"]]
            return 200, {}
        return 404, {"code": 5, "message": f"no route {method} {path}"}


def recurring(fake: Any) -> RecurringRuns:
    """The recurring runs of ``fake`` (created on first use)."""
    if getattr(fake, "recurring", None) is None:
        fake.recurring = RecurringRuns(fake)  # type: ignore[attr-defined]
    return fake.recurring  # type: ignore[attr-defined]


def route(fake: Any, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    """FakeKFP's router hands every ``/recurringruns`` request here (under its lock)."""
    return recurring(fake).route(method, path, query, body)


# ------------------------------------------------------------------------------- a run's task, resolved
def task_inputs(fake: Any, run: dict, task: str | None = None) -> dict[str, Any]:
    """FakeKFP's ``task_inputs`` plus the run's scheduled time in place of
    ``{{$.pipeline_job_schedule_time_utc}}`` (a run no schedule started: its creation time)."""
    when = run.get("scheduled_at") or run.get("created_at", "")
    return {k: v.replace(SCHEDULE_TIME_PLACEHOLDER, when) if isinstance(v, str) else v
            for k, v in fake.task_inputs(run, task).items()}


def task_command(fake: Any, run: dict, task: str | None = None) -> list[str]:
    """The container command and args of the run's task (the only one unless named) with its input parameters
    filled in, as the pod would start them."""
    spec = run["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)
    tasks = spec["root"]["dag"]["tasks"]
    if task is None:
        (task,) = tasks
    component = spec["components"][tasks[task]["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    inputs = task_inputs(fake, run, task)

    def fill(arg: str) -> str:
        return INPUT_RE.sub(lambda m: str(inputs[m.group(1)]) if not isinstance(inputs[m.group(1)], (dict, list))
                            else json.dumps(inputs[m.group(1)]), arg)

    return [fill(a) for a in [*container.get("command", []), *container.get("args", [])]]
