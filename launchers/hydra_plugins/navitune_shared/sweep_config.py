"""Job configs of a sweep without a full Hydra composition per job.

Hydra's ``load_sweep_config`` composes the whole config again for every job (defaults tree, config
files, schema merges): 50-150 ms of the sweeper's time per trial, which is most of its per-trial
overhead. A sweeper's job overrides, however, are the same config-group choices for every job (``+experiment=smoke``)
plus values that change (``x=0.3``, ``++hydra.job.env_set.K=V``). Composing once with the group choices
and then applying the values, exactly as Hydra applies command-line overrides after composition, gives
the same config. Anything else (a deletion, a sweep, an override of the launcher, sweeper, search path
or aliases) takes Hydra's own path.
"""

from __future__ import annotations

import copy
import re
import threading
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

# overrides under these keys change how the config is composed or checked: always compose them fully
_COMPOSITION_KEYS = ("hydra.launcher", "hydra.sweeper", "hydra.searchpath", "hydra.aliases", "hydra.job.env_copy",
                     "hydra.defaults", "hydra.mode")


class SweepConfigFactory:
    """``load(overrides)`` returns what ``config_loader.load_sweep_config(master, overrides)`` returns."""

    def __init__(self, config_loader: Any, master_config: DictConfig) -> None:
        self.loader = config_loader
        self.master = master_config
        # base configs by the job's structural overrides (config-group choices such as +experiment=smoke,
        # the same for every job of a sweep); False: that base cannot be composed on its own
        self._bases: dict[tuple[str, ...], DictConfig | bool] = {}
        self._lock = threading.Lock()
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self._parser = OverridesParser.create()
        # a sweep repeats the same fixed overrides (out_dir=/some/path, flag=true) and keys in every job: their
        # parses (ANTLR, ~2 ms each) and config-group lookups (file-system probes) are remembered
        self._parsed: dict[str, Any] = {}
        self._is_group: dict[str, bool] = {}

    def prepare(self, overrides: Sequence[str] = ()) -> None:
        """Compose the base config for jobs with these overrides now (e.g. before forking job processes,
        which then inherit it)."""
        split = self._split(overrides)
        if split is not None:
            self._base(split[1])

    def load(self, overrides: Sequence[str], private: bool = False) -> DictConfig:
        """The job's config. ``private=True`` (in a forked job process, which owns its copy of memory)
        applies the overrides to the cached base itself instead of to a deep copy of it: this factory must
        not be used again in that process."""
        overrides = list(overrides)
        if private:  # a forked process: another thread of the parent may have held the lock at the fork
            self._lock = threading.Lock()
        split = self._split(overrides)
        base = self._base(split[1]) if split is not None else False
        if split is None or base is False:
            return self.loader.load_sweep_config(self.master, overrides)
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        parsed, _, values = split
        assert isinstance(base, DictConfig)
        cfg = base if private else copy.deepcopy(base)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        # the override lists as Hydra writes them: the sweep's hydra overrides after the master's, in order
        cfg.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
        cfg.hydra.overrides.hydra = OmegaConf.to_container(self.master.hydra.overrides.hydra) + [  # type: ignore
            o.input_line for o in parsed if o.is_hydra_override()]
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        return cfg

    def _base(self, structural: tuple[str, ...]) -> DictConfig | bool:
        with self._lock:
            if structural not in self._bases:
                try:
                    self._bases[structural] = self.loader.load_sweep_config(self.master, list(structural))
                except Exception:  # e.g. a mandatory ??? default every job sets: Hydra composes each job
                    self._bases[structural] = False
            return self._bases[structural]

    def _split(self, overrides: Sequence[str]) -> tuple[list[Any], tuple[str, ...], list[Any]] | None:
        """(all parsed overrides, the structural ones' text, the value ones), or None when a job must be
        composed by Hydra (an override it cannot parse, a deletion, a sweep, a composition setting)."""
        try:
            parsed = [parse_simple(o) or self._parse(o) for o in overrides]
        except Exception:
            return None  # let Hydra report it
        structural, values = [], []
        for o in parsed:
            key = str(o.key_or_group)
            if o.is_delete() or o.is_sweep_override() or any(key == k or key.startswith(k + ".")
                                                              for k in _COMPOSITION_KEYS):
                return None
            if o.package is not None or self._group_exists(key):
                structural.append(o.input_line)
            else:
                values.append(o)
        return parsed, tuple(structural), values

    def _parse(self, line: str) -> Any:
        """Hydra's parse of one override, remembered (Overrides are only read when they are applied)."""
        override = self._parsed.get(line)
        if override is None:
            override = self._parser.parse_overrides([line])[0]
            if len(self._parsed) < _MAX_REMEMBERED:
                self._parsed[line] = override
        return override

    def _group_exists(self, key: str) -> bool:
        known = self._is_group.get(key)
        if known is None:
            known = self._is_group[key] = bool(self.loader.repository.group_exists(key))
        return known


_MAX_REMEMBERED = 10_000  # parses kept per sweep: a sweep of ever new string values must not grow without end


# ``key=value`` with a plain number or word: the shape of nearly every override a sweeper writes
_SIMPLE = re.compile(
    r"(?P<prefix>\+\+|\+)?(?P<key>[A-Za-z_]\w*(?:\.\w+)*)="
    r"(?:(?P<int>[-+]?(?:0|[1-9]\d*))|(?P<float>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)|(?P<word>[A-Za-z_]\w*))"
)
_SPECIAL_WORDS = {"true", "false", "null", "inf", "nan"}  # Hydra gives these other types


def parse_simple(line: str) -> Any:
    """The Override Hydra's parser would make of ``line``, for plain ``key=number`` / ``key=word``
    overrides (Hydra's ANTLR parser costs ~3 ms per override); None for anything else."""
    m = _SIMPLE.fullmatch(line)
    if m is None:
        return None
    if m["word"] is not None and m["word"].lower() in _SPECIAL_WORDS:
        return None
    if m["float"] is not None and not any(c in m["float"] for c in ".eE"):
        return None  # digits with a leading zero such as 007: left to Hydra
    from hydra.core.override_parser.types import Override, OverrideType, ValueType

    if m["int"] is not None:
        value: Any = int(m["int"])
    elif m["float"] is not None:
        value = float(m["float"])
    else:
        value = m["word"]
    kind = {None: OverrideType.CHANGE, "+": OverrideType.ADD, "++": OverrideType.FORCE_ADD}[m["prefix"]]
    return Override(type=kind, key_or_group=m["key"], value_type=ValueType.ELEMENT, _value=value,
                    package=None, input_line=line)
