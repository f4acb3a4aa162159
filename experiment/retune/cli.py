"""``navitune retune [--as-of YYYY-MM-DD] [overrides...]`` (also ``python -m experiment retune ...``): one
re-tuning cycle (docs/retune.md, "One command per cycle").

Exit codes: 0 the cycle is decided (now or earlier: promoted, challenger, already decided); 1 it is not decided
yet and running the same command again continues it (MLflow unreachable, the sweep or report did not finish,
another retune holds the cycle); 2 bad input (one line, nothing written); 130 interrupted (resumable).
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from experiment.retune.checks import USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(args):
        print(f"usage: {USAGE}\n\n{__doc__.split(chr(10) * 2, 1)[1].strip()}\nSee docs/retune.md.")
        return 0
    from experiment.retune.checks import BadInput, Unreachable, plan
    from experiment.retune.cycle import Busy, run

    logging.getLogger("navitune.registry").setLevel(logging.WARNING)  # the checks' own lookups stay quiet
    try:
        p = plan(args)
        logging.getLogger("navitune.registry").setLevel(logging.NOTSET)
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return run(p)
    except BadInput as err:
        print(str(err), file=sys.stderr)
        return 2
    except (Unreachable, Busy) as err:
        print(str(err), file=sys.stderr)
        return 1
