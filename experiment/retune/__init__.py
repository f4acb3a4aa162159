"""``navitune retune``: one continuous re-tuning cycle per command (issue 13 §4, docs/retune.md).

``checks`` (the command line, refused in one line before anything is written), ``cycle`` (sweep, report,
decision, notification: each step resumes from what the cycle's directory holds), ``record`` (``retune.json``,
the contract other tools read), ``cli`` (the entry point).
"""

from experiment.retune.checks import cycle_dir
from experiment.retune.record import FINAL, OUTCOMES, RECORD

__all__ = ["FINAL", "OUTCOMES", "RECORD", "cycle_dir"]
