"""Job configs of a sweep without a full Hydra composition per job.

Hydra's ``load_sweep_config`` composes the whole config again for every job (defaults tree, config
files, schema merges): 50-150 ms of the sweeper's time per trial, which is most of its per-trial
overhead. A sweeper's job overrides, however, almost always only *set values* (``x=0.3``,
``++hydra.job.env_set.K=V``). For those, composing once without the job's overrides and then applying
them, exactly as Hydra applies command-line overrides after composition, gives the same config.
Anything else (a config-group choice, a deletion, a package, an override of the launcher, sweeper,
search path or aliases) takes Hydra's own path.
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
        self._base: DictConfig | bool | None = None  # None: not composed yet; False: cannot be
        self._lock = threading.Lock()
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self._parser = OverridesParser.create()

    def prepare(self) -> None:
        """Compose the base config now (e.g. before forking job processes, which then inherit it). When
        the config cannot be composed without the job's overrides (a mandatory ``???`` default that every
        job sets), every job is composed by Hydra."""
        with self._lock:
            if self._base is None:
                try:
                    self._base = self.loader.load_sweep_config(self.master, [])
                except Exception:
                    self._base = False

    def load(self, overrides: Sequence[str], private: bool = False) -> DictConfig:
        """The job's config. ``private=True`` (in a forked job process, which owns its copy of memory)
        applies the overrides to the base itself instead of to a deep copy of it: this factory must
        not be used again in that process."""
        overrides = list(overrides)
        try:
            parsed = [parse_simple(o) or self._parser.parse_overrides([o])[0] for o in overrides]
        except Exception:
            parsed = None  # let Hydra report it
        self.prepare()
        if parsed is None or self._base is False or not all(self._value_only(o) for o in parsed):
            return self.loader.load_sweep_config(self.master, overrides)
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        with self._lock:
            assert isinstance(self._base, DictConfig)
            cfg = self._base if private else copy.deepcopy(self._base)
        ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
        for override in parsed:
            target = cfg.hydra.overrides.hydra if override.is_hydra_override() else cfg.hydra.overrides.task
            target.append(override.input_line)
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        return cfg

    def _value_only(self, override: Any) -> bool:
        key = str(override.key_or_group)
        return (
            override.package is None
            and not override.is_delete()
            and not override.is_sweep_override()
            and not any(key == k or key.startswith(k + ".") for k in _COMPOSITION_KEYS)
            and not self.loader.repository.group_exists(key)
        )


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
