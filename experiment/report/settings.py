"""The report's fixed names and its user settings (``report.*`` / ``hydra.callbacks.report.*``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra_plugins.navitune_shared.errors import invalid

DEMANDS = ("ml", "stats")
SETS = ("production", "tuned")
from experiment.study import CANDIDATE, REPORT_FILES, REVENUE_PLOT  # noqa: E402,F401  (what a sweep holds)
CI_METHOD = ("mean of the per-replication paired % differences 100*(tuned_r/production_r - 1), "
             "two-sided Student-t interval with n-1 degrees of freedom")
PROMOTION_RULE = "promote only if the lower bound of the 95 % interval is above 0 for every demand source"
SEQUENTIAL_CI_METHOD = ("mean of the per-replication paired % differences 100*(tuned_r/production_r - 1), two-sided "
                        "95 % repeated confidence interval (Pocock boundary over the planned looks, Student-t with n-1 "
                        "degrees of freedom at the nominal level): valid however many looks were taken")
SEQUENTIAL_RULE = ("after each look: promote if the repeated interval's lower bound is above 0 for every demand "
                   "source; reject if its upper bound is below report.min_gain_pct for some source; else add "
                   "report.batch replications; undecided at report.max_replications")
from experiment.study import OWN_KEYS  # noqa: E402,F401  (the report chooses these itself)
#: report.window=auto: the rolling test span of a sweep tuned on window=rolling, else FIXED_TEST_WINDOW
AUTO_WINDOW = "auto"
MAX_SELECTION_TOP = 20  # finalists x seeds simulations: bounded like the report's own replications
MAX_SELECTION_SEEDS = 20
FIXED_TEST_WINDOW = "test_week"
ROLLING_WINDOW = "rolling"
RULES = ("sequential", "fixed")
MAX_REPLICATIONS = 100  # per look and in all: 4 simulations each. The report's seeds (test seed + r) stay clear of
#: bench oracle's test-week seeds (1101.., 1201..) and of bench retune's evaluation seeds (cycle seed + 700..)


from experiment.errors import ReportError  # noqa: E402,F401  (raised by experiment.study too)



def under(text: str, prefix: str = "hydra.callbacks.") -> str:
    """A settings message with every ``report.<key>`` it names written as the key the user set, e.g.
    ``hydra.callbacks.report.max_replications`` for the end-of-sweep report ("navitune.report:" stays)."""
    import re

    return re.sub(r"(?<![\w.])report\.", prefix + "report.", text)


def setting_value(raw: str) -> Any:
    """The value of a ``<key>=<value>`` setting read as YAML (5, true, 2026-01-05), or the text as written when
    it is no YAML value (including a date that is no day, 2026-02-30, which YAML's parser rejects with a
    ValueError): the setting's own check then says what it allows, in one line."""
    import yaml

    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError):
        return raw


def _conf_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "conf"



@dataclass
class ReportSettings:
    """``report.*`` on the command line, ``hydra.callbacks.report.*`` for the end-of-sweep report."""

    replications: int = 4  # paired replications per pattern at the first look (rule=fixed: the only look; >= 2)
    window: str = "auto"  # the held-out window option (conf/window/); auto: see compose.held_out_window_overrides
    workers: int = 2  # simulation processes
    match_scale: bool = True  # the test window takes the tuning window's days, window.drivers and max_shift_h
    plots: bool = True
    selection_top: int = 3  # the best trials simulated again on fresh tuning seeds before naming the candidate (0, 1: off)
    selection_seeds: int = 1  # fresh seeds of the tuning window per finalist
    rule: str = "sequential"  # sequential: looks until shown better / not better (docs/report.md); fixed: one look
    batch: int = 1  # replications added per later look (rule=sequential; 1 measured best, docs/report.md)
    max_replications: int = 16  # the last look; undecided there (rule=sequential)
    min_gain_pct: float = 0.2  # reject when the gain is shown below this for a demand source (rule=sequential)

    def check(self) -> "ReportSettings":
        def bad(key: str, value: Any, allowed: str) -> ReportError:
            return invalid(ReportError, "navitune.report", f"report.{key}", value, allowed)

        if isinstance(self.replications, bool) or not isinstance(self.replications, int) \
                or not 2 <= self.replications <= MAX_REPLICATIONS:
            raise bad("replications", self.replications, f"a whole number in 2..{MAX_REPLICATIONS}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise bad("workers", self.workers, "a whole number >= 1")
        if isinstance(self.selection_top, bool) or not isinstance(self.selection_top, int) \
                or not 0 <= self.selection_top <= MAX_SELECTION_TOP:
            raise bad("selection_top", self.selection_top, f"a whole number in 0..{MAX_SELECTION_TOP} (0 or 1: no "
                      "selection stage, the sweep's best trial is the candidate)")
        if isinstance(self.selection_seeds, bool) or not isinstance(self.selection_seeds, int) \
                or not 1 <= self.selection_seeds <= MAX_SELECTION_SEEDS:
            raise bad("selection_seeds", self.selection_seeds, f"a whole number in 1..{MAX_SELECTION_SEEDS}")
        if self.rule not in RULES:
            raise bad("rule", self.rule, ", ".join(RULES))
        self._check_sequential(bad, ranges=self.rule == "sequential")  # fixed: one look, only the types matter
        windows = sorted(p.stem for p in (_conf_dir() / "window").glob("*.yaml") if not p.stem.startswith("_"))
        windows.insert(0, AUTO_WINDOW)
        if self.window not in windows:
            raise bad("window", self.window, ", ".join(windows))
        for key in ("match_scale", "plots"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, getattr(self, key), "true or false")
        return self

    def _check_sequential(self, bad: Any, ranges: bool) -> None:
        """The sequential rule's settings: their types always, their ranges when the rule is sequential."""
        from experiment.report.sequential import MAX_LOOKS, planned_looks

        whole = {"batch": 1, "max_replications": self.replications if ranges else 1}
        for key, lo in whole.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= MAX_REPLICATIONS:
                extra = " (at least report.replications, the first look; or report.rule=fixed)" \
                    if key == "max_replications" and ranges else ""
                raise bad(key, value, f"a whole number in {lo}..{MAX_REPLICATIONS}{extra}")
        if isinstance(self.min_gain_pct, bool) or not isinstance(self.min_gain_pct, (int, float)) \
                or not 0.0 <= self.min_gain_pct <= 100.0:
            raise bad("min_gain_pct", self.min_gain_pct, "a number in 0..100 (per cent)")
        if not ranges:
            return
        if len(planned_looks(self.replications, self.batch, self.max_replications)) > MAX_LOOKS:
            top = self.replications + (MAX_LOOKS - 1) * self.batch
            raise bad("max_replications", self.max_replications, f"at most {top}: {MAX_LOOKS} looks from "
                      f"report.replications={self.replications} by report.batch={self.batch} (raise report.batch "
                      f"for more)")

    def design(self) -> Any:
        """The decision's looks: sequential from report.replications by report.batch up to report.max_replications;
        fixed: one look at report.replications with the plain 95 % interval (no reject margin)."""
        from experiment.report.sequential import SequentialDesign

        if self.rule == "fixed":
            return SequentialDesign(self.replications, 1, self.replications, min_gain_pct=-float("inf"))
        return SequentialDesign(self.replications, self.batch, self.max_replications, float(self.min_gain_pct))

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> "ReportSettings":
        """The settings of a resolved ``hydra.callbacks.report`` node (its other keys, ``_target_`` and
        ``enabled``, are the callback's), unchecked: the caller checks and words the error."""
        known = set(asdict(cls()))
        return cls(**{k: v for k, v in node.items() if k in known})

    @classmethod
    def from_overrides(cls, items: Sequence[str]) -> "ReportSettings":
        """Settings from ``report.<key>=<value>`` strings (values parsed as YAML: 5, true, test_week)."""
        values: dict[str, Any] = {}
        for item in items:
            key, _, raw = item.partition("=")
            values[key.removeprefix("report.")] = setting_value(raw)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], also: Sequence[str] = ()) -> "ReportSettings":
        """Checked settings from ``{key: value}``; a key left out takes its default here. An unknown key is one
        line naming the allowed ones (``also``: the caller's own keys, e.g. the end-of-sweep hook's ``enabled``)."""
        known = set(asdict(cls()))
        unknown = sorted(set(values) - known - set(also))
        if unknown:
            raise ReportError(f"navitune.report: unknown setting report.{unknown[0]}; allowed: "
                              + ", ".join(f"report.{k}" for k in sorted(known | set(also))))
        return cls(**{k: v for k, v in values.items() if k in known}).check()
