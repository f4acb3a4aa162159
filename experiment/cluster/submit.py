"""``navitune submit -m [overrides]``: run the whole sweep on the cluster and return at once.

Compiles the driver pipeline (one task: the same multirun command, with the remote kfp launcher against the
in-cluster API), submits one run of it to ``hydra.launcher.host`` through ``kfp.Client`` into the sweep's KFP
experiment (the study's name, beside its trial runs), and prints the driver run's URL. Exit codes: 0 submitted,
2 bad input (one line, nothing submitted), 1 the KFP API refused or cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from experiment.cluster.plan import DEFAULT_DRIVER_HOST, ClusterError, Plan, compile_plan, prepare


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (its own print the usage first) and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}; allowed: see {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (ASCII digits: ``int`` reads other scripts' digits too)."""
    def parse(text: str) -> int:
        if not (text.strip().isascii() and text.strip().isdigit()) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number in {low}..{high}")
        return int(text)
    return parse


def duration(text: str) -> int:
    """An argparse type: ``7d``, ``12h``, ``90m``, ``3600s``, ``1w`` in seconds (60 s .. 366 days)."""
    from hydra_plugins.navitune_kfp.recurring import TriggerError, parse_every

    try:
        return parse_every(text)
    except TriggerError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None


def add_driver_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver-host", default=DEFAULT_DRIVER_HOST,
                   help=f"the KFP API as the driver pod reaches it (default {DEFAULT_DRIVER_HOST})")
    p.add_argument("--retries", type=whole(0, 10), default=3, metavar="0..10",
                   help="times KFP starts a dead driver pod again (default 3)")
    p.add_argument("--retry-backoff-s", type=whole(1, 3600), default=60, metavar="1..3600",
                   help="first pause before KFP starts a dead driver pod again; doubles each time (default 60)")
    p.add_argument("--timeout", type=duration, default=None, metavar="DURATION",
                   help="the driver pod's deadline, e.g. 12h, 7d (60 s .. 366 days); KFP stops the driver after it "
                        "(default: none for submit; a schedule's period, so no cycle outlives the next)")
    p.add_argument("--output", help="also write the compiled driver pipeline (YAML) here")
    p.add_argument("--dry-run", action="store_true", help="check and compile only; submit nothing")


def parser() -> OneLineParser:
    p = OneLineParser(prog="navitune submit", description=__doc__.split("\n\n")[0])
    add_driver_options(p)
    return p


def check_output(kind: str, output: str | None) -> None:
    """``--output`` is a file to write the compiled pipeline to: one line, before anything is compiled, if it
    names a directory or a file in a directory that does not exist."""
    if output is None:
        return
    path = Path(output).expanduser()
    if not output.strip() or path.is_dir() or not path.absolute().parent.is_dir():
        raise ClusterError(f"navitune {kind}: invalid --output {output!r}; allowed: a file path (not a directory) in "
                           "an existing directory, for the compiled driver pipeline (YAML)")


def compiled(plan: Plan, args: argparse.Namespace, tmp: str, timeout_s: int | None = None) -> Path:
    path = Path(args.output) if args.output else Path(tmp) / "driver.yaml"
    compile_plan(plan, path, args.retries, args.retry_backoff_s, timeout_s=args.timeout or timeout_s)
    return path


def submit(plan: Plan, package: Path) -> str:
    """Submit the driver run; its UI link. A driver of the same sweep that is not over yet is refused (two
    drivers would split one study's trials between two sweepers)."""
    from hydra_plugins.navitune_kfp.recurring import ACTIVE, Session

    session = Session(plan.settings)
    session.experiment_for(plan.experiment, f"navitune sweep {plan.experiment}")
    alive = [r for r in session.runs_named(plan.name) if str(r.state or "").upper() in ACTIVE]
    if alive:
        raise ClusterError(f"navitune submit: a driver of this sweep is still {alive[0].state}: "
                           f"{session.link('runs', alive[0].run_id)}; allowed: wait for it to end, or terminate it")
    run = session.submit(plan.name, plan.description, str(package))
    return session.link("runs", run.run_id)


def main(argv: Sequence[str] | None = None) -> int:
    from hydra_plugins.navitune_kfp.errors import KFPApiError, KFPUnavailable

    args, rest = parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        check_output("submit", args.output)
        plan = prepare("submit", rest, args.driver_host)
        with tempfile.TemporaryDirectory() as tmp:
            package = compiled(plan, args, tmp)
            if args.dry_run:
                print(f"navitune submit: driver pipeline compiled{f' to {package}' if args.output else ''}; "
                      "nothing submitted (--dry-run)")
                return 0
            url = submit(plan, package)
    except ClusterError as err:
        print(str(err), file=sys.stderr)
        return 2
    except (KFPUnavailable, KFPApiError) as err:
        print(f"navitune submit: {err}", file=sys.stderr)
        return 1
    print(f"navitune submit: driver run {plan.name} submitted (experiment {plan.experiment}): {url}")
    return 0
