"""The files a finished sweep leaves in its directory: ``optimization_results.yaml`` and ``best_<group>.yaml``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("hydra_plugins.navitune_optuna._core")


def write_results(study: optuna.Study, config: DictConfig, directions: list[Any], counts: dict[str, int]) -> None:
    """``optimization_results.yaml`` (hydra-optuna-sweeper's shape) and, single-objective, ``best_<group>.yaml``."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if counts["complete"] == 0:
        log.warning("No trial completed: nothing to report")
        return
    if len(directions) < 2:
        best = study.best_trial
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        log.info(f"Best parameters: {best.params}")
        log.info(f"Best value: {best.value}")
        write_best_groups(study, config, sweep_dir, best.params)
    else:
        results = {"name": "optuna",
                   "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials]}
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


def write_best_groups(study: optuna.Study, config: DictConfig, sweep_dir: Path, params: dict[str, Any]) -> None:
    """For each config group the search space tunes (``policy.gamma`` -> ``policy``), write
    ``best_<group>.yaml``: the group's current option plus the best values, usable as an option."""
    choices = OmegaConf.to_container(config.hydra.runtime.choices) or {}
    groups: dict[str, dict[str, Any]] = {}
    for name, value in params.items():
        head, _, rest = name.partition(".")
        if rest and head in choices:
            groups.setdefault(head, {})[rest] = value
    best = study.best_trial
    for group, values in groups.items():
        node = OmegaConf.create({"defaults": [str(choices[group]), "_self_"]})
        for key, value in values.items():
            OmegaConf.update(node, key, value, force_add=True)
        if "name" not in values:
            OmegaConf.update(node, "name", f"tuned_{study.study_name}", force_add=True)
        name, path = str(node.name), sweep_dir / f"best_{group}.yaml"
        # the same destination and command as the report's candidate (policy_candidate.yaml), which is the one
        # to copy when there is a report: complete (not a diff against an option that may change) and tested
        header = [
            f"# Best trial {best.number} of study {study.study_name} ({best.value:,.6g}): the {group} option "
            f"{choices[group]!r} with the tuned values (the sweeper's result, as a diff against that option).",
            f"# Use: cp {path} conf/{group}/{name}.yaml, then {group}={name}",
            f"# A sweep with a champion/challenger report also writes {group}_candidate.yaml: the same values as a "
            "complete option, with their test results; copy that one (to the same name) instead.",
        ]
        path.write_text("\n".join(header) + "\n" + OmegaConf.to_yaml(node))
