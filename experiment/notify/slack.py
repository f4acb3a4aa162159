"""Slack messages when a sweep starts, finishes or fails (``+notify=slack``), from a Hydra callback.

* **Failure**: Hydra has no "on failure" hook, but (1.4) calls ``on_multirun_end`` in a ``finally``, so an
  exception in flight there (``sys.exc_info()``) is the sweep's error; the callback posts it instead of the
  finish message. No wrapper around the app is needed, and the callback works with any Hydra app.
* **The webhook URL is a secret**: the config holds only the NAME of the environment variable that holds it
  (``webhook_env``), so the URL never reaches ``.hydra/*.yaml``, ``multirun.yaml`` or the logs; any text this
  module logs or posts has the URL masked.
* **Posting never breaks a sweep**: a failed post logs one warning (without the URL) and the sweep goes on.
* **compile_only** (``hydra/launcher=kfp hydra.launcher.compile_only=true``): nothing runs, so no start message
  and no "sweep finished": one "pipeline compiled" message naming the pipeline file at the end.
* **Links without configuration**: the finish and failure messages link the sweep's MLflow parent run and KFP
  experiment. ``mlflow_url`` / ``kfp_url`` win when set; else the pages the sweep process publishes: the MLflow
  callback's ``NAVITUNE_MLFLOW_PARENT_RUN_URL`` (tracking=server only: a local store has no page) and the KFP
  launcher's ``NAVITUNE_KFP_EXPERIMENT_URL`` (backend=remote). Both are read when the message is written, at
  the end: the launcher is set up after every ``on_multirun_start``, and the MLflow callback leaves its variable
  in place at its end, so the link is there whichever of the two callbacks Hydra ends first. A KFP page still
  in the environment when this callback starts is an earlier sweep's (Hydra sets the launcher up later), so it
  is dropped then. Credentials in a link's URL are masked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra_plugins.navitune_shared.errors import invalid, message_line
from hydra_plugins.navitune_shared.redact import redact
from omegaconf import DictConfig, OmegaConf
from hydra_plugins.navitune_shared.protocol import ENV_KFP_EXPERIMENT_URL

from experiment.tracking.common import ENV_PARENT_URL, mask
from experiment.tracking.common import compiles_only

log = logging.getLogger("navitune.notify")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ERROR_CHARS = 600


class SlackNotifier(Callback):
    """Posts ``{"text": ...}`` to a Slack incoming webhook whose URL is in the environment variable
    ``webhook_env``; ``mlflow_url`` / ``kfp_url`` (null: the sweep's own pages, see the module docstring) are
    linked in the finish and failure messages."""

    def __init__(
        self,
        webhook_env: str = "NAVITUNE_SLACK_WEBHOOK_URL",
        mlflow_url: str | None = None,
        kfp_url: str | None = None,
        unit: str = "",
        timeout_s: float = 5.0,
    ) -> None:
        from experiment.config import ConfigError

        if not isinstance(webhook_env, str) or not ENV_NAME.fullmatch(webhook_env):
            # never echo the value: it may be the URL itself, put where the variable's name belongs
            raise ConfigError(
                "navitune: invalid config hydra.callbacks.slack.webhook_env; allowed: the NAME of an environment "
                "variable that holds the webhook URL (e.g. NAVITUNE_SLACK_WEBHOOK_URL), never the URL"
            )
        if not float(timeout_s) > 0:
            raise invalid(ConfigError, "navitune", "config hydra.callbacks.slack.timeout_s", timeout_s, "seconds > 0")
        self.webhook_env = webhook_env
        self.mlflow_url, self.kfp_url = mlflow_url or None, kfp_url or None
        self.unit = unit
        self.timeout_s = float(timeout_s)
        self._t0: float | None = None
        self._warned_missing = False
        self._warned_bad = False

    # ------------------------------------------------------------------------------ Hydra hooks
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._t0 = time.monotonic()
        os.environ.pop(ENV_KFP_EXPERIMENT_URL, None)  # an earlier sweep's: this sweep's launcher is set up later
        if compiles_only(config):  # nothing will run: the end says what was compiled
            return
        self.post("start", self.start_text(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        error = sys.exc_info()[1]  # Hydra calls this hook in a finally: an exception in flight = the sweep failed
        if error is not None:
            self.post("failure", self.failure_text(config, error))
        elif compiles_only(config):
            self.post("compiled", self.compiled_text(config))
        else:
            self.post("finish", self.finish_text(config))

    # -------------------------------------------------------------------------------- messages
    def start_text(self, config: DictConfig) -> str:
        s = _sweep(config)
        lines = [f":rocket: *navitune sweep started*: study `{s['study']}`"]
        budget = []
        if s["n_trials"] is not None:
            budget.append(f"{s['n_trials']} trials")
        if s["n_jobs"] is not None:
            budget.append(f"{s['n_jobs']} at a time")
        if s["params"]:
            budget.append("tuning " + ", ".join(s["params"]))
        if budget:
            lines.append(", ".join(budget))
        lines.append(f"sweep dir `{s['dir']}` on {socket.gethostname()}")
        return "\n".join(lines)

    def finish_text(self, config: DictConfig) -> str:
        s = _sweep(config)
        lines = [f":white_check_mark: *navitune sweep finished*: study `{s['study']}`{self._took()}"]
        try:
            lines += self._results(config, s)
        except Exception as err:  # the study may be unreachable or not an Optuna study: still say it finished
            lines.append(f"(no study results: {type(err).__name__}: {_first_line(err)})")
        lines += self.link_lines()
        lines.append(f"sweep dir `{s['dir']}`")
        return "\n".join(lines)

    def compiled_text(self, config: DictConfig) -> str:
        """``hydra.launcher.compile_only=true``: the pipeline was written, nothing was submitted, no trial ran
        (a "sweep finished" message would be false)."""
        s = _sweep(config)
        pipeline = Path(str(s["dir"])) / "pipeline.yaml"
        lines = [f":package: *navitune pipeline compiled*: study `{s['study']}` (compile_only: nothing was "
                 f"submitted, no trial ran){self._took()}",
                 f"pipeline `{pipeline}`" if pipeline.is_file() else "no pipeline file in the sweep dir",
                 f"sweep dir `{s['dir']}`"]
        return "\n".join(lines)

    def link_lines(self) -> list[str]:
        """``MLflow: <url>`` / ``KFP: <url>``: the configured URL, else the one the sweep process published."""
        links = (("MLflow", self.mlflow_url or os.environ.get(ENV_PARENT_URL)),
                 ("KFP", self.kfp_url or os.environ.get(ENV_KFP_EXPERIMENT_URL)))
        return [f"{name}: {mask(url.strip())}" for name, url in links if url and url.strip()]

    def failure_text(self, config: DictConfig, error: BaseException) -> str:
        s = _sweep(config)
        what = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        message = str(error).strip()
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + " ..."
        lines = [f":x: *navitune sweep {what}*: study `{s['study']}`{self._took()}",
                 f"```{type(error).__name__}: {message}```"]
        lines += self.link_lines()
        lines.append(f"sweep dir `{s['dir']}`")
        return "\n".join(lines)

    def _results(self, config: DictConfig, s: dict[str, Any]) -> list[str]:
        """Counts, the best trial and the improvement over the production baseline (the study's trial with
        user attribute ``navitune:baseline`` == 0), read back from the study."""
        import optuna

        from hydra_plugins.navitune_shared.study_summary import summarize

        if s["storage"] in (None, "", "None", "null") or s["study"] is None:
            return []
        try:
            study = optuna.load_study(study_name=str(s["study"]), storage=_storage(s["storage"]))
        except KeyError:  # Optuna's "Record does not exist": the sweep never created its study
            return ["no trial ran: the study does not exist"]
        summary = summarize(study)
        lines = [f"{summary.finished} finished trials ({summary.pruned} pruned), {summary.failed} failed"]
        best, base = summary.best, summary.baseline
        if best is None:
            return lines
        unit = f" {self.unit}" if self.unit else ""
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
        lines.append(f"best on the tuning seed: *{best.value:,.1f}{unit}* (trial {best.number}: {params})")
        if summary.improvement_pct is not None:
            lines.append(f"vs production on the tuning seed: *{summary.improvement_pct:+.2f} %* (production "
                         f"{base.value:,.1f}{unit}, trial {base.number})")
        else:
            lines.append("vs production: no completed baseline trial")
        if _report_on(config):  # Hydra ends this hook before the report's: its figures are not there yet
            lines.append("the candidate and its held-out gain: the champion/challenger report (report.md in the "
                         "sweep dir); its selection stage may name another trial, and a tuning-seed gain "
                         "overstates the held-out one")
        return lines

    def _took(self) -> str:
        if self._t0 is None:
            return ""
        s = int(time.monotonic() - self._t0)
        return f" after {s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f" after {s // 60}m{s % 60:02d}s"

    # ---------------------------------------------------------------------------------- posting
    def post(self, what: str, text: str) -> bool:
        """Post ``text``; on any problem log one warning (URL masked) and return False."""
        url = os.environ.get(self.webhook_env, "").strip()
        if not url:
            if not self._warned_missing:
                log.warning("Slack notifications are off: the environment variable %s is not set", self.webhook_env)
                self._warned_missing = True
            return False
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https") or "://" not in url:
            if not self._warned_bad:  # the variable's name only: its value is the secret
                log.warning("Slack notifications are off: the environment variable %s does not hold an "
                            "http(s):// URL (a Slack incoming webhook URL starts with https://)", self.webhook_env)
                self._warned_bad = True
            return False
        body = json.dumps({"text": _mask(text, url)}).encode()
        try:
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json; charset=utf-8"})
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
            return True
        except Exception as err:  # never let a notification break a sweep
            reason = _mask(f"{type(err).__name__}: {_first_line(err)}", url)
            log.warning("Slack %s notification not sent (webhook from $%s): %s", what, self.webhook_env, reason)
            return False


# ------------------------------------------------------------------------------------- helpers
def _sweep(config: DictConfig) -> dict[str, Any]:
    """What the messages say about the sweep, read from the composed config (any sweeper)."""
    def get(key: str) -> Any:
        try:
            return OmegaConf.select(config, key, default=None)
        except Exception:  # an interpolation that cannot be resolved here
            return None

    params = get("hydra.sweeper.params")
    return {
        "study": get("hydra.sweeper.study_name") or "(no study)",
        "storage": get("hydra.sweeper.storage"),
        "n_trials": get("hydra.sweeper.n_trials"),
        "n_jobs": get("hydra.sweeper.n_jobs") or get("hydra.launcher.n_jobs"),
        "params": list(params.keys()) if isinstance(params, DictConfig) else [],
        "dir": get("hydra.sweep.dir"),
    }


def _report_on(config: DictConfig) -> bool:
    """The end-of-sweep report will run (``hydra.callbacks.report`` present and enabled)."""
    try:
        node = OmegaConf.select(config, "hydra.callbacks.report", default=None)
        return node is not None and bool(node.get("enabled", True))
    except Exception:
        return False


def _storage(setting: Any) -> Any:
    """The sweeper's own storage factory when it is installed (journal files), else the URL as is."""
    try:
        from hydra_plugins.navitune_shared.storage import make_storage
    except ImportError:
        return str(setting)
    return make_storage(setting)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


_first_line = message_line


def _mask(text: str, url: str) -> str:
    """The text with the webhook URL (and its path, which is the secret part) masked, and any other secret
    found by structure."""
    return redact(text, url)
