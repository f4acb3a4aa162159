"""The end-of-sweep hook (``hydra.callbacks.report`` in conf/config.yaml)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra_plugins.navitune_shared.errors import invalid
from omegaconf import DictConfig, OmegaConf

from experiment.report._util import _first_line
from experiment.report.build import build_report
from experiment.report.settings import ReportError, ReportSettings, under
from experiment.study import finished_since as _finished_since, load_sweep

log = logging.getLogger("navitune.report")


class ReportCallback(Callback):
    """Runs :func:`build_report` when a sweep has finished (``on_multirun_end`` without an exception in flight
    and with an ``optimization_results.yaml``). A report that fails costs one warning, never the sweep.
    Registered after the MLflow callback so it runs first at the end (Hydra calls end hooks in reverse) and
    MLflow attaches its files to the parent run."""

    def __init__(self, enabled: bool = True, **settings: Any) -> None:
        """``settings`` are :class:`ReportSettings`' fields; a key left out takes its default there (one place
        for the defaults: conf/config.yaml repeats them, and a test checks that it does)."""
        from experiment.config import ConfigError

        self.enabled = enabled
        try:
            self.settings = ReportSettings.from_mapping(settings, also=("enabled",))
        except ReportError as err:
            raise ConfigError(under(str(err))) from None
        if not isinstance(enabled, bool):
            raise invalid(ConfigError, "navitune", "config hydra.callbacks.report.enabled", enabled, "true or false")
        self._started: dt.datetime | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = dt.datetime.now()
        if self.enabled:  # the champion the sweep starts from (its baseline), for the decision at the end
            from experiment.registry.decision import record_start

            record_start(config, Path(str(OmegaConf.select(config, "hydra.sweep.dir"))))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled or sys.exc_info()[1] is not None:  # an exception in flight: the sweep failed
            return
        try:
            sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        except Exception:
            return
        if not (sweep_dir / "optimization_results.yaml").is_file():
            log.debug("no optimization_results.yaml in %s: no champion/challenger report", sweep_dir)
            return
        try:
            sweep = load_sweep(sweep_dir, config)
            if self._started is not None and not _finished_since(sweep, self._started):
                nothing_ran(sweep_dir, sweep.study_name, config)
                return
            build_report(sweep_dir, settings=self.settings, config=config)
        except Exception as err:
            log.warning("champion/challenger report not written (the sweep itself is complete): %s: %s",
                        type(err).__name__, _first_line(err))
            return
        from experiment.registry.decision import decide_after_sweep

        decision = decide_after_sweep(sweep_dir, config)  # best vs champion: move the alias or register the challenger
        if decision is not None:  # report.md was written before: it says what the registry did
            from experiment.report.files import note_registry

            note_registry(sweep_dir, decision.line())


#: what a sweep that ran no trial leaves in a new directory (the sweeper's results, the champion at its start)
NO_OP_FILES = ("optimization_results.yaml", "registry_start.json")


def nothing_ran(sweep_dir: Path, study: str | None, config: DictConfig) -> None:
    """A rerun whose study was already complete. When another sweep directory holds the study's report, this
    rerun's new directory (only what this rerun wrote) is removed and the line points there. Otherwise the
    directory stays (a retune cycle's own directory, or a study whose report was never written), with the
    sweep's config saved beside its results so that the hint it gives works."""
    earlier = earlier_report(sweep_dir, study) if study else None
    removed = False
    if earlier is not None and earlier != sweep_dir:
        try:
            entries = list(sweep_dir.iterdir())
            if all(e.is_file() and (e.name in NO_OP_FILES or e.name.startswith("best_")) for e in entries):
                for e in entries:
                    e.unlink()
                sweep_dir.rmdir()
                removed = True
        except OSError:
            pass
    if earlier is not None:
        where = f"its report: {earlier / 'report.md'}"
    else:
        if not (sweep_dir / "multirun.yaml").is_file() and not any(sweep_dir.glob("*/.hydra/hydra.yaml")):
            try:
                OmegaConf.save(config, sweep_dir / "multirun.yaml")
            except OSError:
                pass
        where = f"python -m experiment.report {sweep_dir} writes its report"
    log.info("nothing to run: study %s already holds its finished trials%s; %s", study,
             " (this rerun's empty directory was removed)" if removed else "", where)


def earlier_report(sweep_dir: Path, study: str) -> Path | None:
    """The latest sweep directory (``<sweeps>/<date>/<time>``, or this one) whose report.json is of ``study``."""
    import json

    candidates = [sweep_dir, *sorted(sweep_dir.parent.parent.glob("*/*"), reverse=True)]
    for d in candidates[:200]:  # bounded: the latest 200 sweeps
        try:
            if json.loads((d / "report.json").read_text()).get("study") == study:
                return d
        except (OSError, ValueError, AttributeError):
            continue
    return None
