"""``policy=champion`` and the sweep's baseline, as OmegaConf resolvers (registered by
``experiment.registration.register_configs``):

* ``${navitune_champion:REGION,TRACKING_URI,KEY}``: KEY of the region's champion policy
  (``models:/navitune-policy-<region>@champion``); ``name`` gives ``champion_v<N>``, so every run records which
  version ran (summary.json ``params.policy``, MLflow params). No champion, no registry, MLflow down: one line
  (:class:`~experiment.config.ConfigError`, which ``validate`` reports before anything is written).
* ``${navitune_baseline:REGION,TRACKING_URI,KEY,FALLBACK}``: the champion's KEY when the region has one, else
  FALLBACK (the composed policy's value: ``production``). MLflow down: FALLBACK and one warning; the decision
  then sees that the baseline was not the champion.
* ``${navitune_earlier_champion:REGION,TRACKING_URI,K,KEY,FALLBACK}``: KEY of the K-th earlier champion (most
  recent first, at most EARLIER_CHAMPIONS), else the baseline's: a sweep's enqueue list after its baseline.

Lookups are cached per process (forked sweep jobs inherit the sweep process's answer, so a sweep's jobs all see
the champion its baseline was taken from).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from experiment.errors import ConfigError, keep_resolver_error, take_resolver_error
from experiment.registry.store import Registry, RegistryUnavailable, Version

log = logging.getLogger("navitune.registry")
_CACHE: dict[tuple[str, str], Version | None] = {}
_EARLIER: dict[tuple[str, str], list[Version]] = {}
_UNREACHABLE: dict[tuple[str, str], str] = {}
_WARNED: set[tuple[str, str]] = set()
# OmegaConf re-raises a resolver's error "from None": its one line is kept in experiment.errors for the check
take_error = take_resolver_error  # the one-line error of the last failed navitune_champion lookup (and forget it)


def _fail(text: str) -> Exception:
    keep_resolver_error(text)
    return ConfigError(text)


def _no_local_store(uri: str) -> bool:
    """A local store that does not exist yet holds no champion; reading it must not create it (nothing is
    written before a sweep starts: checks, compile_only)."""
    return str(uri).startswith("sqlite:///") and not Path(str(uri)[len("sqlite:///"):]).exists()


def cached_champion(uri: str, region: str) -> Version | None:
    """The champion of ``region`` on ``uri``, looked up once per process; raises RegistryUnavailable."""
    key = (str(uri), str(region))
    if key in _UNREACHABLE:  # asked once per process: each key of the enqueue list would wait for it again
        raise RegistryUnavailable(_UNREACHABLE[key])
    if key not in _CACHE:
        if _no_local_store(uri):
            return None
        try:
            _CACHE[key] = Registry.at(str(uri), str(region)).champion()
        except RegistryUnavailable as err:
            _UNREACHABLE[key] = str(err)
            raise
    return _CACHE[key]


def forget_warnings() -> None:
    """The CLI's checks resolve the baseline before logging is set up: the sweep says it again."""
    _WARNED.clear()


def forget() -> None:
    """Drop the cached answers (a new sweep in the same process, tests)."""
    _CACHE.clear()
    _EARLIER.clear()
    _UNREACHABLE.clear()
    _WARNED.clear()


def _get(policy: dict[str, Any], key: str) -> Any:
    node: Any = policy
    for part in key.split("."):
        node = node[part]
    return node


def champion_value(region: Any, uri: Any, key: str) -> Any:
    if uri in (None, "", "None", "null"):
        raise _fail("navitune: invalid config policy=champion with tracking=off: the champion lives in "
                          "MLflow's Model Registry; allowed: tracking=local or tracking=server")
    try:
        version = cached_champion(str(uri), str(region))
    except RegistryUnavailable as err:
        raise _fail(f"navitune: policy=champion: {err}") from None
    if version is None:
        raise _fail(f"navitune: policy=champion: region {region} has no champion in "
                          f"{Registry.at(str(uri), str(region)).settings.where}; create it with: navitune champion "
                          f"init region={region}")
    if key == "name":
        return f"champion_v{version.number}"
    return _get(version.policy, key)


def baseline_value(region: Any, uri: Any, key: str, fallback: Any) -> Any:
    if uri in (None, "", "None", "null"):
        return fallback
    try:
        version = cached_champion(str(uri), str(region))
    except RegistryUnavailable:
        if (str(uri), str(region)) not in _WARNED:
            _WARNED.add((str(uri), str(region)))
            # INFO: the tracking callback already warned once that MLflow is unreachable (with its address)
            log.info("sweep baseline: the champion of %s could not be read (the registry is unreachable): the "
                     "baseline is the composed policy, and no auto-promotion will follow this sweep", region)
        return fallback
    return fallback if version is None else _get(version.policy, key)


#: earlier champions a sweep enqueues after its baseline (conf/search_space/navi*.yaml: one enqueue entry each)
EARLIER_CHAMPIONS = 3


def cached_earlier_champions(uri: str, region: str) -> list[Version]:
    """The region's earlier champions, most recent first: each version that was champion before (the
    registry's champion history), without the current champion and without repeats, at most
    EARLIER_CHAMPIONS; looked up once per process. A version that cannot be read (deleted in MLflow, its policy
    file gone) is left out with one warning; an unreachable registry gives none (and is not asked again)."""
    key = (str(uri), str(region))
    if key not in _EARLIER:
        _EARLIER[key] = []
        if _no_local_store(uri) or key in _UNREACHABLE:
            return []
        try:
            registry = Registry.at(str(uri), str(region))
            current = registry.champion_number()
            numbers: list[int] = []
            for number in reversed(registry.history()):
                if number != current and number not in numbers:
                    numbers.append(number)
        except RegistryUnavailable as err:
            _UNREACHABLE[key] = str(err)
            return []  # the baseline's resolver says once that the registry is unreachable
        for number in numbers:
            if len(_EARLIER[key]) == EARLIER_CHAMPIONS:
                break
            try:
                _EARLIER[key].append(registry.version(number))
            except RegistryUnavailable:
                break
            except Exception as err:  # noqa: BLE001 - a broken old version must not stop the sweep
                log.warning("earlier champions: v%d of %s cannot be read, left out: %s", number, region,
                            str(err).splitlines()[0] if str(err) else type(err).__name__)
    return _EARLIER[key]


def earlier_champion_value(region: Any, uri: Any, k: Any, key: str, fallback: Any) -> Any:
    """``${navitune_earlier_champion:REGION,URI,K,KEY,FALLBACK}``: KEY of the K-th earlier champion (1: the
    one before the current champion), else the baseline's KEY (``navitune_baseline`` with FALLBACK). A sweep
    enqueues these after its baseline, so a world that goes back gets its old champion back through the same
    decision; a missing one repeats the baseline, which the sweeper enqueues once (its claim is by parameters)."""
    if uri in (None, "", "None", "null"):
        return fallback
    earlier = cached_earlier_champions(str(uri), str(region))
    k = int(k)
    return _get(earlier[k - 1].policy, key) if 1 <= k <= len(earlier) else baseline_value(region, uri, key, fallback)


def register_resolvers() -> None:
    """Idempotent (``replace=True``): register_configs may run more than once per process."""
    from omegaconf import OmegaConf

    register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
    register("navitune_champion", champion_value, replace=True)
    register("navitune_baseline", baseline_value, replace=True)
    register("navitune_earlier_champion", earlier_champion_value, replace=True)


def champion_policy(region: str, uri: str) -> dict[str, Any]:
    """The region's champion as a complete policy dict (``name`` = ``champion_v<N>``); raises ConfigError
    (one line: no champion, tracking off, MLflow down)."""
    name = champion_value(region, uri, "name")
    version = _CACHE[(str(uri), str(region))]
    assert version is not None
    return {**version.policy, "name": name}
