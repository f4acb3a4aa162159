"""``navitune retune [--as-of YYYY-MM-DD] [overrides...]`` (also ``python -m experiment retune ...``): one
re-tuning cycle (docs/retune.md, "One command per cycle").

Exit codes: 0 the cycle is decided (now or earlier: promoted, challenger, already decided); 1 it is not decided
yet and running the same command again continues it (MLflow unreachable, the sweep or report did not finish,
another retune holds the cycle); 2 bad input (one line, nothing written); 130 interrupted (resumable).
"""

from __future__ import annotations

import logging
import signal
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
    from experiment.retune.record import RecordError

    logging.getLogger("navitune.registry").setLevel(logging.WARNING)  # the checks' own lookups stay quiet
    previous = signal.signal(signal.SIGTERM, _terminated)  # SIGTERM stops the cycle as Ctrl-C does: resumable
    try:
        p = plan(args)
        logging.getLogger("navitune.registry").setLevel(logging.NOTSET)
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return run(p)
    except BadInput as err:
        print(str(err), file=sys.stderr)
        return 2
    except (Unreachable, Busy, RecordError) as err:
        print(str(err), file=sys.stderr)
        return 1
    except OSError as err:  # the cycle's directory or lock could not be made (a full disk, no permission)
        where = f" {err.filename}" if err.filename else ""
        print(f"navitune retune: cannot write{where} ({err.strerror or type(err).__name__}); nothing was run; "
              "fix that and run the same command again", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a pod's or service manager's stop) becomes the Ctrl-C path: the cycle records ``interrupted``
    and exits 130; running the same command again resumes it."""
    raise KeyboardInterrupt
