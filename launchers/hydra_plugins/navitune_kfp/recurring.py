"""Driver runs and recurring runs (KFP schedules) through ``kfp.Client``, and the checks of a schedule's trigger.

Why a cron check here: KFP's scheduler parses cron with robfig/cron, whose default format has **six** fields,
seconds first, and the day of week optional, so a usual five-field expression is read shifted by one field
(``30 3 * * 1`` would mean second 30 of minute 3 of every hour in January). :func:`normalize_cron` accepts five
fields (prepends second 0) or six, checks every field's values, and always returns six, so what runs is what
was meant; a bad expression is one line before anything is submitted.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterator

from hydra_plugins.navitune_shared.retry import Backoff, call_with_retries

from .errors import KFPApiError
from .remote_backend import MAX_BACKOFF_S, RemoteBackend, _name_filter
from .settings import LauncherSettings

# robfig/cron's fields, seconds first, with their ranges and names
FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 6))
MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1)}
DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_ALLOWED = ("5 fields 'minute hour day-of-month month day-of-week' (UTC), or 6 with seconds first as KFP "
                "writes them, or one of " + ", ".join(DESCRIPTORS) + ", in ASCII, that fires at most once an hour; "
                "e.g. '0 3 * * MON' (Mondays 03:00 UTC)")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MIN_INTERVAL_S = 60
# a schedule fires one re-tuning cycle (a whole sweep, its report and a decision) at most once an hour: a faster
# trigger ('* * * * * *' fires every second) would pile up cycles and give each a deadline shorter than its sweep
MIN_PERIOD_S = 3600
MAX_INTERVAL_S = 366 * 86400
PAGE = 100
MAX_PAGES = 50  # every listing is bounded: at most 5,000 items


class _NoConnection(OSError):
    """The health probe found no server to talk to (worth another try, as an API call's is)."""


class TriggerError(ValueError):
    """A cron expression or interval KFP would not run as meant (one line)."""


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not (text.isascii() and text.isdigit()):
        raise TriggerError(f"{text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise TriggerError(f"{value} is outside {low}-{high}")
    return value


def _check_field(text: str, name: str, low: int, high: int) -> None:
    names = MONTHS if name == "month" else DAYS if name == "day of week" else {}
    for part in text.split(","):
        rng, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise TriggerError(f"{name} {part!r}: the step must be a whole number > 0")
        if rng in ("*", "?"):
            if rng == "?" and name not in ("day of month", "day of week"):
                raise TriggerError(f"{name} {part!r}: '?' is allowed only in day of month or day of week")
            continue
        first, dash, last = rng.partition("-")
        try:
            a = _value(first, low, high, names)
            b = _value(last, low, high, names) if dash else a
        except TriggerError as err:
            raise TriggerError(f"{name} {part!r}: {err}") from None
        if b < a:
            raise TriggerError(f"{name} {part!r}: the range runs backwards")


def normalize_cron(expr: str) -> str:
    """``expr`` as KFP's six-field cron (seconds first), or a descriptor; :class:`TriggerError` if it is not one."""
    text = " ".join(str(expr).split())
    if not text.isascii():
        raise TriggerError("characters outside ASCII (digits are 0-9, names such as MON or JAN)")
    if text.startswith("@"):
        if text in DESCRIPTORS:
            return text
        raise TriggerError(f"unknown descriptor {text!r} (for a fixed interval use --every)")
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise TriggerError(f"{len(fields)} fields")
    for value, (name, low, high) in zip(fields, FIELDS):
        _check_field(value, name, low, high)
    return " ".join(fields)


def parse_every(text: str) -> int:
    """An interval such as ``7d``, ``12h``, ``90m``, ``3600s`` or ``1w``, in seconds (60 s .. 366 days)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", str(text), re.ASCII)
    if not m:
        raise TriggerError("not a whole number with a unit s, m, h, d or w")
    seconds = int(m.group(1)) * UNITS[m.group(2) or "s"]
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise TriggerError(f"{seconds} s is outside {MIN_INTERVAL_S} s .. 366 days")
    return seconds


def fire_times(cron: str, fires: int = 1000) -> list[float]:
    """Up to ``fires`` fire times (epoch seconds) of a cron (KFP's six fields, seconds first, or a descriptor) from
    a fixed day, so the answer is the same every day; fewer if croniter finds no more (``0 0 3 31 2 *``: none)."""
    import datetime as dt

    from croniter import CroniterError, croniter

    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    try:
        it = croniter(cron, start, second_at_beginning=not cron.startswith("@"))
    except (CroniterError, ValueError) as err:
        raise TriggerError(f"not a cron expression ({err})") from None
    times: list[float] = []
    try:
        for _ in range(fires):
            times.append(it.get_next(float))
    except (CroniterError, ValueError, OverflowError):
        pass  # no further date (or past year 9999): what was found is the answer
    return times


def period_s(cron: str | None = None, every_s: int | None = None, fires: int = 1000) -> int:
    """A trigger's period in seconds: the interval, or the smallest gap between two of a cron's next ``fires``
    fire times (KFP's six fields, seconds first, or a descriptor); :class:`TriggerError` for a cron that fires
    less than twice (``0 3 31 2 *``, February 31st, never fires)."""
    if every_s is not None:
        return int(every_s)
    assert cron is not None
    times = fire_times(cron, fires)
    if len(times) < 2:
        raise TriggerError("it never fires" if not times else "it fires only once")
    return int(min(b - a for a, b in zip(times, times[1:])))


def check_period(cron: str | None = None, every_s: int | None = None) -> int:
    """The period of a schedule's trigger, checked: it fires, at most once every :data:`MIN_PERIOD_S`."""
    period = period_s(cron, every_s)
    if period < MIN_PERIOD_S:
        raise TriggerError(f"it fires every {period} s, more often than once every {MIN_PERIOD_S // 3600} h "
                           "(one re-tuning cycle at a time)")
    return period


def describe_trigger(trigger: Any) -> str:
    """A recurring run's trigger in words: ``cron 0 0 3 * * 1`` or ``every 604800 s``."""
    cron = getattr(trigger, "cron_schedule", None) if trigger is not None else None
    if cron is not None and cron.cron:
        return f"cron {cron.cron}"
    periodic = getattr(trigger, "periodic_schedule", None) if trigger is not None else None
    if periodic is not None and periodic.interval_second:
        return f"every {periodic.interval_second} s"
    return "no trigger"


#: a command someone waits for (submit, schedule ...) gives up on an API it cannot reach within seconds, in one
#: line: at most this many retries, 1 s apart then 2 s, each request bounded by a socket timeout; a sweep's own
#: patience (hydra.launcher.api_retries, 6 by default, ~63 s and a warning per retry) is for unattended runs
INTERACTIVE_RETRIES = 2
INTERACTIVE_BACKOFF_S = 1.0
INTERACTIVE_TIMEOUT_S = 10.0


class Session(RemoteBackend):
    """A connection to the KFP API (with :class:`RemoteBackend`'s retries of transient errors, bounded for a
    command someone waits for) that creates no experiment until asked: listing or pausing a schedule must not
    create anything."""

    def __init__(self, settings: LauncherSettings) -> None:  # noqa: D107 - no experiment, unlike the parent
        import dataclasses

        from .errors import KFPUnavailable, LauncherShutdown

        settings = dataclasses.replace(settings, api_retries=min(settings.api_retries, INTERACTIVE_RETRIES),
                                       api_backoff_s=min(settings.api_backoff_s, INTERACTIVE_BACKOFF_S))
        self.settings = settings
        self.closing = threading.Event()
        self.pipeline_spec = None
        self._stores = {}
        self._lock = threading.Lock()
        try:
            self.client = self._connect()
        except (KFPApiError, LauncherShutdown) as err:
            raise KFPUnavailable(f"kfp: cannot use the KFP API at hydra.launcher.host={settings.host}: {err}") from None

    def api(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """:meth:`RemoteBackend.api` without its warning per retry: the command's one line says what failed."""
        import logging

        from . import remote_backend

        logger = logging.getLogger(remote_backend.__name__)
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            return super().api(what, fn, *args, **kwargs)
        finally:
            logger.setLevel(level)

    def _connect(self) -> Any:
        """:meth:`RemoteBackend._connect` after :meth:`_probe`: kfp's client sends its requests without a timeout,
        so a host that never answers would hold the command for minutes."""
        self._probe()
        return super()._connect()

    def _probe(self) -> None:
        """``GET <host>/apis/v2beta1/healthz`` with a :data:`INTERACTIVE_TIMEOUT_S` timeout: any HTTP answer (even
        401) is a server; no connection is retried like an API call, no answer in time is not (it would not come)."""
        import ssl
        import urllib.error
        import urllib.request

        s = self.settings
        url = f"{s.host}/apis/v2beta1/healthz"
        context = None
        if url.startswith("https:"):
            context = ssl.create_default_context(cafile=s.ssl_ca_cert) if s.verify_ssl else \
                ssl._create_unverified_context()  # noqa: S323 - the user's verify_ssl=false
        tries = s.api_retries + 1

        def get() -> None:
            try:
                with urllib.request.urlopen(url, timeout=INTERACTIVE_TIMEOUT_S, context=context):
                    return
            except urllib.error.HTTPError:
                return  # a server answered: the API calls say the rest
            except (TimeoutError, OSError) as err:
                reason = getattr(err, "reason", err)
                if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                    raise KFPApiError(f"connect: no answer within {INTERACTIVE_TIMEOUT_S:g} s") from None
                raise _NoConnection(f"connect: {type(reason).__name__}: {reason}") from None

        try:  # no connection (refused, no route, DNS) is retried as an API call is
            call_with_retries(get, attempts=tries, retry_on=lambda err: isinstance(err, _NoConnection),
                              backoff=Backoff(s.api_backoff_s, max_s=MAX_BACKOFF_S, jitter=0.0))
        except _NoConnection as err:
            raise KFPApiError(f"{err} (after {tries} attempts)") from None

    def experiment_for(self, name: str, description: str) -> str:
        """The id of the experiment ``name`` (created if missing; the oldest of that name)."""
        self.experiment, self.description = name, description
        self.experiment_id = self._find_or_create_experiment()
        return self.experiment_id

    # ----------------------------------------------------------------------------------- runs
    def runs_named(self, name: str) -> list[Any]:
        resp = self.api("list runs", self.client.list_runs, experiment_id=self.experiment_id,
                        filter=_name_filter(name), sort_by="created_at desc", page_size=PAGE)
        return [r for r in (resp.runs or []) if r.display_name == name]

    def submit(self, name: str, description: str, package: str) -> Any:
        """Create a run of the compiled ``package`` in the current experiment. A create that failed with a
        transient error is retried only after looking for a run of that name that is not over (the server may
        have created it after all), so it is never doubled."""
        import kfp_server_api
        from kfp.client.client import _extract_pipeline_yaml

        body = kfp_server_api.V2beta1Run(
            experiment_id=self.experiment_id, display_name=name, description=description[:1000],
            pipeline_spec=_extract_pipeline_yaml(package).to_dict(),
            runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters={},
                                                               pipeline_root=self.settings.pipeline_root),
            service_account=self.settings.service_account)
        first = True

        def create() -> Any:
            nonlocal first
            if not first:
                alive = [r for r in self.runs_named(name) if str(r.state or "").upper() in ACTIVE]
                if alive:
                    return alive[0]
            first = False
            return self.client.runs.run_service_create_run(run=body)

        return self.api("create run", create)

    # ----------------------------------------------------------------------------- recurring
    def recurring_runs(self, prefix: str = "") -> Iterator[Any]:
        """Every recurring run whose display name starts with ``prefix`` (at most :data:`MAX_PAGES` pages)."""
        token = ""
        for _ in range(MAX_PAGES):
            resp = self.api("list recurring runs", self.client.list_recurring_runs, page_token=token,
                            page_size=PAGE, sort_by="created_at", namespace=self.settings.namespace)
            for item in resp.recurring_runs or []:
                if str(item.display_name or "").startswith(prefix):
                    yield item
            token = resp.next_page_token or ""
            if not token:
                return

    def recurring_named(self, name: str) -> Any | None:
        found = [r for r in self.recurring_runs(name) if r.display_name == name]
        return found[0] if found else None

    def create_recurring(self, name: str, description: str, package: str, *, cron: str | None = None,
                         every_s: int | None = None, catchup: bool = False, start_time: str | None = None) -> Any:
        """A recurring run of ``package`` in the current experiment: one run at a time (``max_concurrency`` 1),
        no catch-up of missed times unless ``catchup``. Not retried blindly: a failed create is looked up by
        name first."""
        kwargs = dict(experiment_id=self.experiment_id, job_name=name, description=description[:1000],
                      start_time=start_time, cron_expression=cron, interval_second=every_s, max_concurrency=1,
                      no_catchup=not catchup, pipeline_package_path=package, enabled=True,
                      pipeline_root=self.settings.pipeline_root, service_account=self.settings.service_account)
        first = True

        def create() -> Any:
            nonlocal first
            if not first:
                existing = self.recurring_named(name)
                if existing is not None:
                    return existing
            first = False
            return self.client.create_recurring_run(**kwargs)

        return self.api("create recurring run", create)

    def set_enabled(self, recurring_run_id: str, enabled: bool) -> None:
        if enabled:
            self.api("enable recurring run", self.client.enable_recurring_run, recurring_run_id)
        else:
            self.api("disable recurring run", self.client.disable_recurring_run, recurring_run_id)

    def delete_recurring(self, recurring_run_id: str) -> None:
        self.api("delete recurring run", self.client.delete_recurring_run, recurring_run_id)


ACTIVE = {"", "RUNTIME_STATE_UNSPECIFIED", "PENDING", "RUNNING", "PAUSED", "CANCELING"}
