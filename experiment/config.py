"""Structured configs (the schema of every config group) and the checks Hydra's types cannot express.

The dataclasses are registered in Hydra's ConfigStore, so a wrong type or an unknown key fails at
composition. :func:`validate` then checks ranges and cross-field rules and raises :class:`ConfigError`
with one line that names the key, the value and what is allowed, before anything runs or is written.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.navitune_shared.errors import invalid
from hydra_plugins.navitune_shared.proxy_settings import DEFAULT_IMAGE as DEFAULT_PROXY_IMAGE
from omegaconf import MISSING, DictConfig, OmegaConf

from experiment.errors import ConfigError, take_resolver_error  # noqa: F401  (ConfigError: raised by validate())
from experiment.sim.network import ROAD_CLASSES, TURN_TYPES
from experiment.sim.regions import REGIONS
from experiment.sim.scenario import Change, NewHotspot, Scenario
from experiment.sim.shifts import SHIFT_KINDS
from experiment.windows import register_resolver

register_resolver()  # window=rolling computes its dates with it: any reader of a navitune config imports this

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"  # the config groups (a source checkout or -e install)
DEMAND_SOURCES = ("ml", "stats")
SINKS = ("duckdb", "bigquery")
PROMOTIONS = ("auto", "manual")  # registry.promotion: decide and carry out, or decide and wait for a person
# a Google Cloud project id, optionally domain-scoped (example.com:my-project)
GCP_PROJECT = re.compile(r"([a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
BQ_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")
BQ_LOCATION = re.compile(r"[A-Za-z]+(-[a-z]+[0-9]+)?")  # US, EU, asia-northeast1, ...
HTTP_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?/?")
SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_WINDOW_DAYS = 28
# The engine runs any fleet that fits in memory (check_memory, with the simulator's own estimate), and time grows
# with the fleet: this bound, far above any city (Tokyo has about 30,000 corporate taxis) and twice the largest
# fleet the tests run (tests/test_sim_numba.py), keeps a typo from starting a simulation of many hours.
MAX_DRIVERS = 2_000_000
MAX_REQUESTS_PER_HOUR = 1_000_000
MAX_SHARE = 1_000_000
# seeds are stored in the sink's INT64 ``seed`` column (and NumPy takes them as 64-bit words)
MAX_SEED = (1 << 63) - 1
# The scenario's city stays near the calibrated one: a demand trend of at most +-50 % a year (a recession's shock
# was about -13 % in a year, docs/retune.md), a new hot spot at most 10 (Tokyo Station is 3.0), and on every day a
# window simulates, a demand factor (month x trend x changes) in DAY_DEMAND_RANGE: the range the simulator's
# calibration and memory estimate are meant for. So a far date (window.as_of=2999-12-31 with drifting's +2 %/year
# is ~2e8 x the demand) is one line, not a 226 GiB allocation.
TREND_PCT_RANGE = (-50.0, 50.0)
DAY_DEMAND_RANGE = (0.2, 5.0)
MAX_HOTSPOT_WEIGHT = 10.0
MAX_HOTSPOT_SIGMA_M = 20_000.0


@dataclass
class RegionConfig:
    name: str = "tokyo_central"
    drivers: int = 1000
    requests_per_hour: float = 1200.0  # mean street-hail requests per hour over the week
    fleet_mix: Dict[str, float] = field(
        default_factory=lambda: {"alternate": 0.6, "day": 0.25, "night": 0.15}
    )
    network_seed: int = 0


@dataclass
class DemandConfig:
    source: str = "ml"  # ml | stats: the forecast the navigation plans with
    ml_error: float = 0.2  # log-normal error of the ml forecast per zone and slot
    ml_late_prob: float = 0.08  # share of slots where the ml forecast is late (falls back to stats)
    patience_median_min: float = 8.0  # how long street-hail customers really wait (truth)


@dataclass
class WindowConfig:
    name: str = "tune_week"
    start: str = "2026-06-01"  # first operating day (ISO date)
    end: str = "2026-06-08"  # day after the last operating day (exclusive)
    seed: int = 1
    drivers: Optional[int] = None  # use at most this many of the region's drivers (smoke runs)
    max_shift_h: Optional[float] = None  # cap shift length (smoke runs)


@dataclass
class RollingWindowConfig(WindowConfig):
    """``window=rolling``: name, start, end and seed are computed from these (experiment.windows), so
    everything that reads a fixed window reads a rolling one the same way."""

    as_of: str = "${navitune.utc_today:}"  # YYYY-MM-DD, UTC; the CLI pins "today" once, as an override (see __main__)
    tune_days: int = 7  # the tuning span: the tune_days before the test span
    test_days: int = 7  # the held-out test span: the test_days just before as_of
    span: str = "tune"  # tune | test: which of the two this window simulates (the report sets test)
    cycle: str = "rolling_${.as_of}"  # names the cycle's study, MLflow and KFP experiments (one per as_of)


@dataclass
class PolicyConfig:
    """The keys of a ``conf/policy`` option and their types. No values: production's live in
    ``conf/policy/production.yaml`` only (Python reads them with :func:`production_policy`)."""

    name: str = MISSING
    navigation: bool = True  # false: vacant drivers cruise on habit (the random_cruise baseline)
    gamma: float = MISSING
    max_wait_min: float = MISSING
    road_weights: Dict[str, float] = MISSING  # ROAD_CLASSES and TURN_TYPES
    compliance: float = MISSING


PRODUCTION_YAML = CONF_DIR / "policy" / "production.yaml"


@functools.lru_cache(maxsize=1)
def _production_yaml() -> DictConfig:
    loaded = OmegaConf.load(PRODUCTION_YAML)
    loaded.pop("defaults", None)
    return OmegaConf.merge(OmegaConf.structured(PolicyConfig), loaded)  # type: ignore[return-value]


def production_policy() -> dict[str, Any]:
    """The production policy's values, read from ``conf/policy/production.yaml`` (the one place they are
    written) and checked against :class:`PolicyConfig`: for code that simulates production without composing
    a config (the tunability scans, benchmarks, tests). A fresh dict on every call."""
    out = OmegaConf.to_container(_production_yaml(), resolve=True, throw_on_missing=True)
    assert isinstance(out, dict)
    return out


@dataclass
class ScenarioChangeConfig:
    """One dated change of the city (experiment.sim.scenario.Change); factors multiply today's city."""

    label: str = ""
    start: str = "2026-01-01"  # ISO date
    end: Optional[str] = None  # exclusive; null: for good
    demand: float = 1.0
    patience: float = 1.0
    congestion: float = 1.0
    right_turn_delay: float = 1.0
    fleet: float = 1.0
    hotspot: Optional[Dict[str, Any]] = None  # name, kind, x, y, sigma_m, weight[, learned_after_days]
    source: str = "assumption"


@dataclass
class ScenarioConfig:
    """The city along the calendar (``scenario=drifting|stationary``): seasonality, trend, dated changes."""

    name: str = "stationary"
    monthly_demand: List[float] = field(default_factory=lambda: [1.0] * 12)  # January first
    monthly_patience: List[float] = field(default_factory=lambda: [1.0] * 12)
    trend_pct_per_year: float = 0.0
    trend_anchor: str = "2026-06-01"
    changes: List[ScenarioChangeConfig] = field(default_factory=list)


@dataclass
class SinkConfig:
    """``sink=duckdb`` uses path and table; ``sink=bigquery`` project, dataset, table, location and, for an
    emulator, api_endpoint. Credentials never live here: BigQuery reads them from the environment (ADC)."""

    kind: str = "duckdb"
    path: Optional[str] = "${paths.outputs}/results.duckdb"
    table: str = "driver_days"
    project: Optional[str] = None  # null: the project of the Application Default Credentials
    dataset: Optional[str] = None
    location: Optional[str] = None  # BigQuery location of a dataset it creates, e.g. US, asia-northeast1
    api_endpoint: Optional[str] = None  # null in production; http://host:port of an emulator (anonymous)


@dataclass
class ProxyConfig:
    """The Cloud SQL Auth Proxy beside each remote job (``proxy=none|cloudsql``); checked by
    ``hydra_plugins.navitune_shared.proxy_settings.proxy_settings``, which the remote job also uses."""

    mode: str = "none"  # none | process (a supervised child process in the job) | native (K8s native sidecar)
    instance: str = ""  # Cloud SQL connection name project:region:instance
    port: int = 3306  # local TCP port the proxy listens on (127.0.0.1) and the study URL points at
    image: str = DEFAULT_PROXY_IMAGE  # native mode
    args: List[str] = field(default_factory=list)  # extra proxy flags, e.g. --private-ip, --auto-iam-authn
    credentials_secret: Optional[str] = None  # Kubernetes Secret with a service-account key (by name only)
    credentials_key: str = "credentials.json"  # key of that Secret
    command: Optional[List[str]] = None  # process mode: replaces cloud-sql-proxy; {instance}, {port} expand
    start_timeout_s: float = 30.0  # wait at most this long for the proxy to accept connections
    stop_timeout_s: float = 5.0  # SIGTERM, then SIGKILL after this long
    requests: Dict[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "128Mi"})  # native
    limits: Dict[str, str] = field(default_factory=lambda: {"memory": "256Mi"})  # native


@dataclass
class TrackingConfig:
    """MLflow (``tracking=local|server|off``): ``uri`` is the store (``sqlite:///...``) or the server
    (``http(s)://host:port``); the rules live in ``experiment.tracking.common.check_tracking``."""

    kind: str = "local"  # local | server | off
    uri: Optional[str] = "sqlite:///${paths.outputs}/mlflow.db"
    experiment: Optional[str] = None  # null: the Optuna study's name (single runs: navitune_<region>_<window>_<demand>)
    artifact_location: Optional[str] = "${paths.outputs}/mlartifacts"  # of experiments navitune creates; null: the server's
    timeout_s: float = 5.0  # per MLflow HTTP request: a dead server costs seconds, not minutes
    max_retries: int = 1  # MLflow HTTP retries


@dataclass
class PathsConfig:
    outputs: str = "outputs"


@dataclass
class RegistryConfig:
    """The champion in MLflow's Model Registry (experiment/registry): what the end of a sweep does when the
    promotion rule holds. ``auto`` moves the ``champion`` alias; ``manual`` registers the ``challenger``.
    A plain sweep (``python -m experiment -m``) is ``manual``: a quick look never replaces production behind a
    user's back. ``navitune retune`` runs its cycle with ``auto``; a promotion still needs every guard to pass,
    the report's scale included (docs/retune.md, "Who promotes")."""

    promotion: str = "manual"


@dataclass
class NavituneConfig:
    region: RegionConfig = field(default_factory=RegionConfig)
    demand: DemandConfig = field(default_factory=DemandConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)


ROAD_WEIGHT_KEYS = ROAD_CLASSES + TURN_TYPES
GROUP_SCHEMAS: dict[str, type] = {
    "region": RegionConfig, "demand": DemandConfig, "window": WindowConfig,
    "policy": PolicyConfig, "sink": SinkConfig, "paths": PathsConfig,
    "proxy": ProxyConfig, "tracking": TrackingConfig, "registry": RegistryConfig,
    "scenario": ScenarioConfig,
}


def schema_field(group: str, name: str) -> Any:
    """The dataclass of ``group`` (name ""), or the field ``name`` of it; None if there is none."""
    schema = GROUP_SCHEMAS.get(group)
    if schema is None or not name:
        return schema
    return next((f for f in fields(schema) if f.name == name), None)


def _invalid(key: str, value: Any, allowed: str) -> ConfigError:
    return invalid(ConfigError, "navitune", f"config {key}", value, allowed)


def parse_day(key: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _invalid(key, value, "an ISO date such as 2026-06-01") from None


def _number(key: str, value: Any, lo: float, hi: float, allowed: str, lo_open: bool = False, hi_open: bool = False) -> None:
    """A finite number within [lo, hi] (or open at either end); NaN and infinities fail too."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        raise _invalid(key, value, allowed)


def _known_keys(cfg: Any) -> None:
    """Keys added with ``+group.key=...`` pass Hydra's struct check: catch typos here."""
    for group, schema in GROUP_SCHEMAS.items():
        node = cfg.get(group) if hasattr(cfg, "get") else getattr(cfg, group)
        schema = _node_schema(schema, node)
        allowed = [f.name for f in fields(schema)]
        for key in node.keys() if hasattr(node, "keys") else []:
            if key not in allowed:
                raise _invalid(f"{group}.{key}", node[key], f"keys {', '.join(allowed)}")


def _node_schema(schema: type, node: Any) -> type:
    """The group's schema, or the subclass its option extends (``window=rolling``: RollingWindowConfig). A node
    without a type (a config read back from YAML, as a kfp job reads the one its run carries) gets the subclass
    that holds most of the node's keys (so a typo is still named as the unknown key)."""
    from omegaconf import OmegaConf

    typ = OmegaConf.get_type(node) if isinstance(node, DictConfig) else type(node)
    if isinstance(typ, type) and issubclass(typ, schema):
        return typ
    keys = set(node.keys()) if hasattr(node, "keys") else set()
    return max([schema, *schema.__subclasses__()], key=lambda c: len(keys & {f.name for f in fields(c)}))


ENV_REF = re.compile(r"\$\{oc\.env:\s*([A-Za-z_][A-Za-z0-9_]*)\s*(,)?")


def env_references(cfg: DictConfig, webhooks: bool = False) -> list[tuple[str, str]]:
    """(key, VAR) of every variable the composed config reads from the environment without a default: its
    ``${oc.env:VAR}`` references and, with ``webhooks``, the ``webhook_env`` of its callbacks (``+notify=slack``)."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                sub = f"{key}.{k}" if key else str(k)
                if sub in ("hydra.overrides", "hydra.job"):
                    continue  # the command line's own text, checked where it lands
                if k == "webhook_env" and isinstance(v, str) and v:
                    if webhooks:
                        found.append((sub, v))
                else:
                    walk(v, sub)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str):
            found.extend((key, m.group(1)) for m in ENV_REF.finditer(node) if not m.group(2))

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return found


def check_env_set(cfg: DictConfig) -> None:
    """Every ``${oc.env:VAR}`` (without a default) names a variable that is set: resolving an unset one fails deep
    inside OmegaConf (a traceback), or worse, reads as a missing value and is reported as another key's fault
    (``hydra.sweeper.storage=None``). One line naming VAR and the key that reads it instead."""
    for key, var in env_references(cfg):
        if var not in os.environ:
            raise ConfigError(f"navitune: config {key} reads environment variable {var}, which is not set; allowed: "
                              f"{var} set in the environment (export {var}=...; on the cluster from "
                              f"hydra.launcher.secrets), or a default: ${{oc.env:{var},<default>}}")


def validate(cfg: DictConfig | NavituneConfig) -> None:
    """Check every key, range and cross-field rule; raise ConfigError on the first problem."""
    if isinstance(cfg, DictConfig):
        check_env_set(cfg)
        _known_keys(cfg)
    _check_registry(cfg)
    r, d, w, p, s = cfg.region, cfg.demand, cfg.window, cfg.policy, cfg.sink
    if r.name not in REGIONS:
        raise _invalid("region.name", r.name, ", ".join(REGIONS))
    if not 0 < r.drivers <= MAX_DRIVERS:
        raise _invalid("region.drivers", r.drivers, f"a whole number in [1, {MAX_DRIVERS}]")
    _number("region.requests_per_hour", r.requests_per_hour, 0, MAX_REQUESTS_PER_HOUR,
            f"a number in (0, {MAX_REQUESTS_PER_HOUR}]", lo_open=True)
    if not 0 <= r.network_seed <= MAX_SEED:
        raise _invalid("region.network_seed", r.network_seed, f"a whole number in [0, {MAX_SEED}]")
    for k, v in r.fleet_mix.items():
        if k not in SHIFT_KINDS:
            raise _invalid(f"region.fleet_mix.{k}", v, f"keys {', '.join(SHIFT_KINDS)}")
        _number(f"region.fleet_mix.{k}", v, 0, MAX_SHARE, f"a share in [0, {MAX_SHARE}]")
    if sum(r.fleet_mix.values()) <= 0:
        raise _invalid("region.fleet_mix", dict(r.fleet_mix), "shares that add up to more than 0")
    if d.source not in DEMAND_SOURCES:
        raise _invalid("demand.source", d.source, ", ".join(DEMAND_SOURCES))
    _number("demand.ml_error", d.ml_error, 0, 2, "0 <= ml_error <= 2")
    _number("demand.ml_late_prob", d.ml_late_prob, 0, 1, "0 <= ml_late_prob <= 1")
    _number("demand.patience_median_min", d.patience_median_min, 0, 240, "minutes in (0, 240]", lo_open=True)
    _check_rolling(w)
    start, end = parse_day("window.start", w.start), parse_day("window.end", w.end)
    if end <= start:
        raise _invalid("window.end", w.end, f"a date after window.start ({w.start})")
    if (end - start).days > MAX_WINDOW_DAYS:
        raise _invalid("window.end", w.end, f"at most {MAX_WINDOW_DAYS} days after window.start")
    if not 0 <= w.seed <= MAX_SEED:
        raise _invalid("window.seed", w.seed, f"a whole number in [0, {MAX_SEED}]")
    if w.drivers is not None and not 0 < w.drivers <= MAX_DRIVERS:
        raise _invalid("window.drivers", w.drivers, f"null or a whole number in [1, {MAX_DRIVERS}]")
    if w.max_shift_h is not None:
        _number("window.max_shift_h", w.max_shift_h, 0, 24, "null or hours in (0, 24]", lo_open=True)
    _number("policy.gamma", p.gamma, 0, 1, "0 <= gamma < 1", hi_open=True)
    _number("policy.max_wait_min", p.max_wait_min, 0, 240, "minutes in (0, 240]", lo_open=True)
    _number("policy.compliance", p.compliance, 0, 1, "0 <= compliance <= 1")
    for k, v in p.road_weights.items():
        if k not in ROAD_WEIGHT_KEYS:
            raise _invalid(f"policy.road_weights.{k}", v, f"keys {', '.join(ROAD_WEIGHT_KEYS)}")
        _number(f"policy.road_weights.{k}", v, 0, 100, "a weight in [0, 100]")
    if s.kind not in SINKS:
        raise _invalid("sink.kind", s.kind, ", ".join(SINKS))
    if not SQL_NAME.fullmatch(str(s.table)):
        raise _invalid("sink.table", s.table, "a SQL name: letters, digits and _ (not starting with a digit)")
    _check_outputs(cfg)
    _check_sink(s)
    _check_scenario(cfg)


def _check_registry(cfg: Any) -> None:
    """``registry.promotion``, and ``policy=champion`` resolved now: no champion, tracking off or MLflow down
    is one line before anything runs (the resolver raises ConfigError; OmegaConf wraps it)."""
    registry = cfg.get("registry") if hasattr(cfg, "get") else getattr(cfg, "registry", None)
    if registry is not None and registry.promotion not in PROMOTIONS:
        raise _invalid("registry.promotion", registry.promotion, ", ".join(PROMOTIONS))
    if not isinstance(cfg, DictConfig):
        return
    from omegaconf.errors import InterpolationResolutionError

    try:
        OmegaConf.to_container(cfg.policy, resolve=True)
    except InterpolationResolutionError:
        problem = take_resolver_error()
        if problem:
            raise ConfigError(problem) from None
        raise


def _check_rolling(w: Any) -> None:
    """``window=rolling``: its own keys first, as its start, end and seed are computed from them."""
    if not hasattr(w, "as_of"):
        return
    from experiment.windows import AS_OF_FORMAT, MAX_SPAN_DAYS, MAX_AS_OF, MIN_AS_OF, SPANS, check_days, parse_as_of

    try:
        parse_as_of(w.as_of)
    except ValueError:
        raise _invalid("window.as_of", w.as_of, f"{AS_OF_FORMAT} between {MIN_AS_OF} and {MAX_AS_OF} (default: today)")
    for key in ("tune_days", "test_days"):
        try:
            check_days(key, getattr(w, key))
        except ValueError:
            raise _invalid(f"window.{key}", getattr(w, key), f"a whole number of days in [1, {MAX_SPAN_DAYS}]")
    if w.span not in SPANS:
        raise _invalid("window.span", w.span, ", ".join(SPANS))


def _check_sink(s: Any) -> None:
    """Each sink kind needs its own keys (one schema holds both: the proxy group does the same)."""
    if s.kind == "duckdb":
        if not s.path or not _file_path_ok(str(s.path)):
            raise _invalid("sink.path", s.path, "a file path for the DuckDB results file (not a directory, in a "
                                       "directory that exists or can be created)")
        return
    if s.project is not None and not GCP_PROJECT.fullmatch(str(s.project)):
        raise _invalid("sink.project", s.project, "null (the credentials' project) or a Google Cloud project id")
    if s.project is None and s.api_endpoint:
        raise _invalid("sink.project", s.project, "a Google Cloud project id (required with sink.api_endpoint)")
    if s.dataset is None or not BQ_DATASET.fullmatch(str(s.dataset)):
        raise _invalid("sink.dataset", s.dataset, "a BigQuery dataset name: letters, digits and _")
    if s.location is not None and not BQ_LOCATION.fullmatch(str(s.location)):
        raise _invalid("sink.location", s.location, "null or a BigQuery location such as US, EU, asia-northeast1")
    if s.api_endpoint is not None and not HTTP_URL.fullmatch(str(s.api_endpoint)):
        raise _invalid("sink.api_endpoint", s.api_endpoint, "null (BigQuery itself) or http(s)://host[:port] of an emulator")


def _check_scenario(cfg: Any) -> None:
    """The scenario builds (dates parse, 12 months, factors > 0): the simulator gets a valid calendar."""
    node = cfg.get("scenario") if hasattr(cfg, "get") else getattr(cfg, "scenario", None)
    if node is None:
        return
    for key in ("monthly_demand", "monthly_patience"):
        values = list(getattr(node, key))
        if len(values) != 12 or any(not (0 < float(v) <= 10) for v in values):
            raise _invalid(f"scenario.{key}", values, "12 factors in (0, 10], January first")
    parse_day("scenario.trend_anchor", node.trend_anchor)
    lo, hi = TREND_PCT_RANGE
    _number("scenario.trend_pct_per_year", node.trend_pct_per_year, lo, hi, f"percent a year in [{lo:g}, {hi:g}]")
    for i, c in enumerate(node.changes):
        key = f"scenario.changes[{i}]"
        parse_day(f"{key}.start", c.start)
        if c.end is not None and parse_day(f"{key}.end", c.end) <= parse_day(f"{key}.start", c.start):
            raise _invalid(f"{key}.end", c.end, f"null or a date after {key}.start ({c.start})")
        for f in ("demand", "patience", "congestion", "right_turn_delay", "fleet"):
            _number(f"{key}.{f}", getattr(c, f), 0, 10, "a factor in (0, 10]", lo_open=True)
        if c.hotspot is not None:
            hot = dict(c.hotspot)
            _number(f"{key}.hotspot.weight", hot.get("weight"), 0, MAX_HOTSPOT_WEIGHT,
                    f"a weight in (0, {MAX_HOTSPOT_WEIGHT:g}] (Tokyo Station is 3.0)", lo_open=True)
            _number(f"{key}.hotspot.sigma_m", hot.get("sigma_m"), 0, MAX_HOTSPOT_SIGMA_M,
                    f"metres in (0, {MAX_HOTSPOT_SIGMA_M:g}]", lo_open=True)
    try:
        scenario = scenario_from_config(node)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"navitune: invalid config scenario: {err}") from None
    _check_scenario_dates(cfg, scenario)


def simulated_days(cfg: Any) -> tuple[dt.date, int]:
    """(first day, number of days) the runs of a validated config simulate: the window and the day after it (the
    last shifts' tails), and for a rolling window its test span up to ``as_of`` too (the report simulates it)."""
    w = cfg.window
    start, end = parse_day("window.start", w.start), parse_day("window.end", w.end)
    if hasattr(w, "as_of"):
        end = max(end, parse_day("window.as_of", w.as_of))
    return start, (end - start).days + 1


def demand_factors(scenario: Scenario, start: dt.date, n_days: int) -> tuple[float, dt.date, float, dt.date]:
    """(lowest, its day, highest, its day) of the scenario's daily demand factor over ``n_days`` from ``start``."""
    days = [start + dt.timedelta(days=i) for i in range(n_days)]
    factors = [scenario.state(d).demand for d in days]
    i, j = factors.index(min(factors)), factors.index(max(factors))
    return factors[i], days[i], factors[j], days[j]


def _check_scenario_dates(cfg: Any, scenario: Scenario) -> None:
    """Every day a window simulates has a demand factor in :data:`DAY_DEMAND_RANGE`: a far date with a trend
    (or a change's factor) would leave the simulator's calibrated range and its memory estimate."""
    window = cfg.get("window") if hasattr(cfg, "get") else getattr(cfg, "window", None)
    if window is None:
        return
    start, n_days = simulated_days(cfg)
    low, low_day, high, high_day = demand_factors(scenario, start, n_days)
    lo, hi = DAY_DEMAND_RANGE
    if lo <= low and high <= hi:
        return
    factor, day = (high, high_day) if high > hi else (low, low_day)
    key, value = ("window.as_of", window.as_of) if hasattr(window, "as_of") else ("window.start", window.start)
    first, last = calendar_range(scenario)
    raise ConfigError(
        f"navitune: invalid config {key}={str(value)!r}: scenario={scenario.name} puts demand at {factor:.3g} x the "
        f"calibrated city on {day} (trend {scenario.trend_pct_per_year:g} %/year from {scenario.trend_anchor}); "
        f"allowed: windows whose daily demand factor stays in [{lo:g}, {hi:g}], for scenario={scenario.name} "
        f"dates from {first} to {last}")


def calendar_range(scenario: Scenario) -> tuple[dt.date, dt.date]:
    """The months around the trend's anchor, as far as :data:`MIN_AS_OF`..:data:`MAX_AS_OF`, whose every day has
    a demand factor in :data:`DAY_DEMAND_RANGE` (for the message of a date outside it)."""
    from experiment.windows import MAX_AS_OF, MIN_AS_OF

    lo, hi = DAY_DEMAND_RANGE

    def month_ok(first: dt.date) -> bool:
        nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        low, _, high, _ = demand_factors(scenario, first, (nxt - first).days)
        return lo <= low and high <= hi

    def step(day: dt.date, months: int) -> dt.date:
        k = day.year * 12 + day.month - 1 + months
        return dt.date(k // 12, k % 12 + 1, 1)

    anchor = scenario.trend_anchor.replace(day=1)
    first = last = anchor
    while first > MIN_AS_OF and month_ok(step(first, -1)):
        first = step(first, -1)
    while step(last, 1) <= MAX_AS_OF and month_ok(step(last, 1)):
        last = step(last, 1)
    return max(first, MIN_AS_OF), min(step(last, 1) - dt.timedelta(days=1), MAX_AS_OF)


def scenario_from_config(node: Any) -> Scenario:
    """The simulator's plain :class:`~experiment.sim.scenario.Scenario` from the ``scenario`` group."""
    changes = []
    for c in node.changes:
        hot = None
        if c.hotspot is not None:
            hot = NewHotspot(**{k: v for k, v in dict(c.hotspot).items()})
        changes.append(Change(
            label=str(c.label), start=parse_day("start", c.start),
            end=None if c.end is None else parse_day("end", c.end), demand=float(c.demand),
            patience=float(c.patience), congestion=float(c.congestion),
            right_turn_delay=float(c.right_turn_delay), fleet=float(c.fleet), hotspot=hot, source=str(c.source),
        ))
    return Scenario(
        name=str(node.name), monthly_demand=tuple(float(v) for v in node.monthly_demand),
        monthly_patience=tuple(float(v) for v in node.monthly_patience),
        trend_pct_per_year=float(node.trend_pct_per_year), trend_anchor=parse_day("anchor", node.trend_anchor),
        changes=tuple(changes),
    )


def _check_outputs(cfg: Any) -> None:
    """``paths.outputs`` holds every store and job directory: empty would mean ``/`` (``${paths.outputs}/x``),
    a file (``/dev/null``) cannot hold anything."""
    paths = cfg.get("paths") if hasattr(cfg, "get") else getattr(cfg, "paths", None)
    if paths is None:
        return
    out = str(paths.outputs or "").strip()
    allowed = "a directory path (created if missing; not empty, not a file such as /dev/null)"
    if not out or out.rstrip("/") == "" or not _dir_path_ok(out):
        raise _invalid("paths.outputs", paths.outputs, allowed)


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _dir_path_ok(text: str) -> bool:
    """A directory, or a path whose nearest existing ancestor is a directory (it can be created)."""
    path = Path(text).expanduser().absolute()
    return _existing_ancestor(path).is_dir()


def _file_path_ok(text: str) -> bool:
    """A file (or a new one) whose directory is, or can be created as, a directory."""
    path = Path(text).expanduser().absolute()
    return not path.is_dir() and _dir_path_ok(str(path.parent))
