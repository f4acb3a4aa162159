"""Champion/challenger report of a finished sweep: is the tuned policy better than production on the held-out
test window, for both demand forecasts? (the four patterns of the talk: {production, tuned} x {ml, stats}).

``python -m experiment.report <sweep dir> [overrides...]`` runs it on demand; :class:`ReportCallback` runs it at
the end of every navitune sweep (``hydra.callbacks.report`` in ``conf/config.yaml``). Both call
:func:`build_report`, which

* re-composes the sweep's own config (its command-line overrides, not its tuned values) with
  ``window=test_week`` (``report.window``) and ``demand=ml`` / ``demand=stats``;
* simulates the PRODUCTION parameters (the study's baseline trial, else the sweep's policy option, by default
  ``conf/policy/production.yaml``) and the BEST parameters (``optimization_results.yaml``) in paired replications
  with common random numbers (replication ``r`` runs both with window seed ``window.seed + r``), added look by
  look until the sequential decision promotes, rejects or stops undecided at ``report.max_replications``;
* runs the simulations in ``report.workers`` processes (plain :func:`experiment.sim.simulate.simulate` on the
  composed configs' :func:`experiment.app.sim_params`; no Hydra inside the workers);
* writes ``report.json``, ``report.md``, ``policy_candidate.yaml`` and PNG plots into the sweep directory.

Why a re-composition rather than the job's saved config: the test window is a different config-group option, and
composing it the way ``python -m experiment window=test_week`` does keeps the report reproducible by hand.
Imports are lazy: Hydra instantiates the callback for every run, and ``python -m experiment --help`` stays fast.

Layout: ``settings`` (names, user settings), ``sweep`` (reading a finished sweep), ``compose`` (test configs),
``simulations`` (worker processes), ``sequential`` (the looks and the decision rule), ``assemble`` and ``stats``
(the verdict), ``files`` and ``plots`` (what is
written), ``build`` (end to end), ``callback`` (end of sweep), ``cli``.
"""

from experiment.report.build import build_report
from experiment.report.callback import ReportCallback
from experiment.report.compose import compose_patterns
from experiment.report.files import report_paths
from experiment.report.settings import CANDIDATE, DEMANDS, REPORT_FILES, SETS, ReportError, ReportSettings
from experiment.report.simulations import run_simulations
from experiment.study import Sweep, candidate_name, load_sweep, resolved_storage as _resolved_storage, reusable_overrides as _reusable_overrides

__all__ = [
    "CANDIDATE", "DEMANDS", "REPORT_FILES", "SETS", "ReportCallback", "ReportError", "ReportSettings", "Sweep",
    "build_report", "candidate_name", "compose_patterns", "load_sweep", "report_paths", "run_simulations",
    "_resolved_storage", "_reusable_overrides",
]
