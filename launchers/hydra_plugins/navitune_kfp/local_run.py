"""``python -m hydra_plugins.navitune_kfp.local_run``: one ``backend=local`` job, in a process of its own.

Why a process per job and not a thread: ``kfp.local`` keeps process-global state that concurrent runs would
corrupt. ``kfp.local.init`` replaces one global ``LocalExecutionConfig``; every task swaps the root logger's
handlers (``local_logger_context``) and monkey-patches ``builtins.print`` (``indented_print``), restoring
whatever it saw on entry, so two overlapping runs leave the process with kfp's handler and an indenting
``print`` for good; and each pipeline run deletes the shared ``workspace_root`` when it ends, under its
neighbours' feet. One process per job isolates all of it; the component itself runs in a further
subprocess (``SubprocessRunner(use_venv=False)``), as on a cluster.

Arguments: the compiled pipeline YAML, a JSON file with the run's parameters, and a pipeline root (its
outputs). The pipeline's output is written to ``<root>/output.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hydra_plugins.navitune_kfp.local_run")
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args(argv)
    # the local runner warns that resources, node selectors... have no effect, and that the image may not be
    # Python: both are true and expected here
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
    warnings.filterwarnings("ignore", message=".*non-Python base image.*")
    import kfp.local
    from kfp import components

    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "outputs"),
                   workspace_root=str(root / "workspace"), raise_on_error=False)
    (root / "workspace").mkdir(exist_ok=True)
    pipeline = components.load_component_from_file(args.pipeline)
    params = json.loads(Path(args.params).read_text())
    task = pipeline(**params)
    outputs = dict(task.outputs) if task.outputs else {}
    output = outputs.get("Output")
    (root / "output.json").write_text(json.dumps({"output": output}))
    return 0 if output is not None else 1


if __name__ == "__main__":
    sys.exit(main())
