"""``python -m experiment.report``."""

from experiment.report.cli import main

raise SystemExit(main())
