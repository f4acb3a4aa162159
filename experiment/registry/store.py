"""The region's policies in MLflow's Model Registry: registered model ``navitune-policy-<region>``, one version
per complete ``conf/policy`` option, aliases ``champion`` (what production runs) and ``challenger`` (the latest
candidate not promoted), MLflow's documented champion/challenger pattern.

Each version points at the artifact directory ``policy/`` of a small run in the experiment ``navitune-registry``
that holds ``policy.yaml`` (the option, loadable as ``conf/policy/<name>.yaml``) and the report that justified
it (``report.json``, ``report.md``). Which versions were champion, in order, is the registered model's tag
``champion_history`` (``rollback`` pops it). ``mlflow`` is imported lazily.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from omegaconf import OmegaConf

from experiment.tracking.common import Settings, first_line, mask

MODEL_PREFIX = "navitune-policy-"
CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"  # registered model tag: "1,3,4", the champion versions in order
EVAL_SCALE_TAG = "eval_scale"  # registered model tag: the scale the champion is evaluated at (JSON, see scale.py)
REGISTRY_EXPERIMENT = "navitune-registry"
ARTIFACT_DIR = "policy"
POLICY_FILE = "policy.yaml"
INIT_STUDY = "navitune champion init"


class RegistryError(Exception):
    """A one-line problem the user can act on (no champion, unknown version, ...)."""


class RegistryUnavailable(RegistryError):
    """MLflow could not be reached: nothing was changed."""


class ChampionChanged(RegistryError):
    """The champion is not the one the command started from (another command moved it): nothing was changed."""


#: ``expected`` of :meth:`Registry.set_champion` / :meth:`Registry.rollback` when any champion will do
ANY = object()


def model_name(region: str) -> str:
    return f"{MODEL_PREFIX}{region}"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Version:
    """One registered version: its number, the complete policy option, tags and aliases."""

    number: int
    policy: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    run_id: str | None = None
    created: str | None = None


def flat_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as ``experiment.app.tuned_params`` flattens it (``road_weights.right`` ...), without its name."""
    out: dict[str, Any] = {}
    for key, value in policy.items():
        if key in ("name", "defaults"):
            continue
        if isinstance(value, dict):
            out |= {f"{key}.{k}": v for k, v in value.items()}
        else:
            out[key] = value
    return out


def same_policy(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Do two flat policies hold the same values on the keys both have (floats compared to 1e-9)?"""
    keys = (set(a) & set(b)) - {"policy", "name"}
    if not keys:
        return False
    for k in keys:
        x, y = a[k], b[k]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


def policy_from_yaml(text: str) -> dict[str, Any]:
    """A ``conf/policy`` option's values (its ``defaults`` list dropped), checked against the schema."""
    from experiment.config import PolicyConfig

    loaded = OmegaConf.create(text)
    loaded.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.structured(PolicyConfig), loaded)
    out = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(out, dict)
    return out


def policy_yaml(policy: dict[str, Any], header: Iterable[str] = ()) -> str:
    """A complete ``conf/policy`` option: every key, so it stays what was tested when production.yaml changes."""
    body = OmegaConf.to_yaml(OmegaConf.create({"defaults": ["policy_schema", "_self_"], **policy}))
    return "".join(f"# {line}\n" for line in header) + body


class Registry:
    """One region's registered model on one MLflow store or server. Every MLflow error becomes
    :class:`RegistryUnavailable` (one line, nothing changed)."""

    def __init__(self, settings: Settings, region: str) -> None:
        self.settings = settings
        self.region = region
        self.name = model_name(region)
        self._client: Any = None
        self._lock_depth = 0  # :meth:`locked` is re-entrant within one Registry object

    @classmethod
    def at(cls, uri: str, region: str, artifact_location: str | None = None, timeout_s: float = 5.0) -> "Registry":
        kind = "server" if uri.startswith(("http://", "https://")) else "local"
        return cls(Settings(kind=kind, uri=uri, experiment=None, artifact_location=artifact_location,
                            timeout_s=timeout_s, max_retries=1), region)

    # ----------------------------------------------------------------------------------------- access
    @property
    def client(self) -> Any:
        if self._client is None:
            from experiment.tracking.common import client, prepare, probe

            prepare(self.settings)
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per command
            try:
                probe(self.settings)
                self._client = client(self.settings)
            except Exception as err:
                raise RegistryUnavailable(f"MLflow unreachable at {self.settings.where}: {first_line(err)}") from None
        return self._client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as err:
            code = getattr(err, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            raise RegistryUnavailable(f"MLflow unreachable at {self.settings.where}: {first_line(err)}") from None
        except (OSError, RuntimeError) as err:
            raise RegistryUnavailable(f"MLflow unreachable at {self.settings.where}: {first_line(err)}") from None

    def _missing(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, or None when MLflow says the model, version or alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self._call(fn, *args)
        except MlflowException:
            return None

    def exists(self) -> bool:
        return self._missing(self.client.get_registered_model, self.name) is not None

    def _version(self, mv: Any) -> Version:
        with tempfile.TemporaryDirectory() as tmp:
            path = self._call(self.client.download_artifacts, mv.run_id, f"{ARTIFACT_DIR}/{POLICY_FILE}", tmp)
            policy = policy_from_yaml(Path(path).read_text())
        created = dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.timezone.utc).isoformat(timespec="seconds")
        return Version(int(mv.version), policy, dict(mv.tags or {}), list(getattr(mv, "aliases", []) or []),
                       mv.run_id, created)

    def alias(self, alias: str) -> Version | None:
        """The version behind ``alias`` (``champion``, ``challenger``), None if the model or alias is absent."""
        mv = self._missing(self.client.get_model_version_by_alias, self.name, alias)
        return None if mv is None else self._version(mv)

    def champion(self) -> Version | None:
        return self.alias(CHAMPION)

    def champion_number(self) -> int | None:
        """The champion's version number (no artifact download), None without one."""
        mv = self._missing(self.client.get_model_version_by_alias, self.name, CHAMPION)
        return None if mv is None else int(mv.version)

    def eval_scale(self) -> dict[str, Any] | None:
        """The scale the region's champion is evaluated at (set by ``navitune champion init``), None when the
        registered model predates it."""
        import json

        model = self._missing(self.client.get_registered_model, self.name)
        text = (model.tags or {}).get(EVAL_SCALE_TAG) if model is not None else None
        try:
            value = json.loads(text) if text else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def set_eval_scale(self, scale: dict[str, Any]) -> None:
        import json

        self._call(self.client.set_registered_model_tag, self.name, EVAL_SCALE_TAG, json.dumps(scale, sort_keys=True))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the model's write lock (:mod:`experiment.registry.lock`): one line when another command keeps it."""
        from experiment.registry.lock import RegistryBusy, hold

        if self._lock_depth:  # already held by this registry object (a decision's promotion inside the decision)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        try:
            with hold(self.settings.uri, self.name, self.client):
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0
        except RegistryBusy as err:
            raise RegistryError(f"navitune champion: {err}; nothing was changed, run the command again") from None

    def _expect(self, expected: Any, what: str) -> int | None:
        """The champion now, checked against the one the command started from (inside :meth:`locked`)."""
        current = self.champion_number()
        if expected is not ANY and current != expected:
            raise ChampionChanged(f"navitune champion {what}: the champion changed while this command ran "
                                  f"(v{expected} when it started, v{current} now: another command moved it); "
                                  "nothing was changed; see navitune champion history")
        return current

    def version(self, number: int) -> Version:
        mv = self._missing(self.client.get_model_version, self.name, str(number))
        if mv is None:
            raise RegistryError(f"navitune champion: {self.name} has no version {number}; see navitune champion "
                                f"history region={self.region}")
        return self._version(mv)

    def versions(self, with_policy: bool = False) -> list[Any]:
        """Every version (MLflow ModelVersion objects, or :class:`Version` with ``with_policy``), oldest first."""
        if not self.exists():
            return []
        found = self._call(self.client.search_model_versions, f"name='{self.name}'")
        found = sorted(found, key=lambda mv: int(mv.version))
        return [self._version(mv) for mv in found] if with_policy else found

    def history(self) -> list[int]:
        """The champion versions in the order they became champion (the last one is the champion)."""
        model = self._missing(self.client.get_registered_model, self.name)
        text = (model.tags or {}).get(HISTORY_TAG, "") if model is not None else ""
        return [int(v) for v in text.split(",") if v.strip()]

    # ----------------------------------------------------------------------------------------- changes
    def register(self, policy_text: str, tags: dict[str, str], files: Iterable[Path] = (),
                 description: str = "") -> Version:
        """A new version holding ``policy_text`` (a complete conf/policy option) and ``files`` (the report)."""
        from experiment.tracking.common import experiment_id, source_tags

        policy = policy_from_yaml(policy_text)  # refuse what could not be loaded back
        if not self.exists():
            self._call(self.client.create_registered_model, self.name,
                       description=f"navitune navigation policy for region {self.region} (navitune champion)")
        exp = self._call(experiment_id, self.client, REGISTRY_EXPERIMENT, self.settings)
        run = self._call(self.client.create_run, exp, run_name=f"{self.name} {tags.get('study', '')}".strip(),
                         tags={**source_tags(), "navitune.role": "registry"})
        run_id = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / POLICY_FILE).write_text(policy_text)
            self._call(self.client.log_artifact, run_id, str(Path(tmp) / POLICY_FILE), ARTIFACT_DIR)
        for f in files:
            if Path(f).is_file():
                self._call(self.client.log_artifact, run_id, str(f), ARTIFACT_DIR)
        self._call(self.client.set_terminated, run_id)
        tags = {k: mask(str(v))[:4000] for k, v in tags.items() if v is not None}
        mv = self._call(self.client.create_model_version, self.name, f"{run.info.artifact_uri}/{ARTIFACT_DIR}",
                        run_id=run_id, tags=tags, description=description or None)
        return Version(int(mv.version), policy, tags, [], run_id, now())

    def tag(self, number: int, **tags: Any) -> None:
        for key, value in tags.items():
            self._call(self.client.set_model_version_tag, self.name, str(number), key, mask(str(value))[:4000])

    def set_champion(self, number: int, reason: str, expected: Any = ANY) -> None:
        """Move the ``champion`` alias to ``number`` and append it to the champion history, under the model's
        lock; ``expected``: the champion the caller decided against (:class:`ChampionChanged` when it moved)."""
        self.version(number)  # one line if it does not exist
        with self.locked():
            self._expect(expected, "promote")
            self._move_champion(number, reason)

    def _move_champion(self, number: int, reason: str) -> None:
        """The alias first, then the history, then the tags: a kill between them leaves the alias (the truth)
        ahead of the history, which :meth:`set_champion` of the same version completes."""
        from experiment.failpoints import crash_point

        history = self.history()
        self._call(self.client.set_registered_model_alias, self.name, CHAMPION, str(number))
        crash_point("champion_alias_set")
        if not history or history[-1] != number:
            history.append(number)
        self._call(self.client.set_registered_model_tag, self.name, HISTORY_TAG, ",".join(map(str, history)))
        crash_point("champion_history_set")
        self.tag(number, champion_since=now(), champion_reason=reason)
        challenger = self._missing(self.client.get_model_version_by_alias, self.name, CHALLENGER)
        if challenger is not None and int(challenger.version) == number:
            self._call(self.client.delete_registered_model_alias, self.name, CHALLENGER)

    def set_challenger(self, number: int) -> None:
        self._call(self.client.set_registered_model_alias, self.name, CHALLENGER, str(number))

    def rollback(self, reason: str = "navitune champion rollback", expected: Any = ANY) -> tuple[int, int]:
        """The champion back to the previous champion; returns (from, to). The history loses its last entry and
        both versions get a tag saying when and why. Under the model's lock; ``expected``: the champion the
        command saw when it started (a concurrent rollback that got there first: :class:`ChampionChanged`)."""
        with self.locked():
            self._expect(expected, "rollback")
            return self._rollback(reason)

    def _rollback(self, reason: str) -> tuple[int, int]:
        history = self.history()
        current = self.champion()
        if current is None:
            raise RegistryError(f"navitune champion: {self.name} has no champion to roll back; create it with: "
                                f"navitune champion init region={self.region}")
        if history and history[-1] == current.number:
            history = history[:-1]
        if not history:
            raise RegistryError(f"navitune champion: {self.name} has no previous champion (history: "
                                f"v{current.number} only); promote a version instead: navitune champion promote "
                                "VERSION")
        previous = history[-1]
        self._call(self.client.set_registered_model_alias, self.name, CHAMPION, str(previous))
        self._call(self.client.set_registered_model_tag, self.name, HISTORY_TAG, ",".join(map(str, history)))
        stamp = now()
        self.tag(current.number, rolled_back=f"{stamp}: replaced by v{previous} ({reason})")
        self.tag(previous, champion_since=stamp, champion_reason=f"rollback from v{current.number} ({reason})")
        return current.number, previous
