"""What the driver pod runs: the one place that knows the app's command line.

``submit`` runs the sweep's own multirun command; a scheduled cycle runs ``retune`` with ``--as-of`` set to the
run's scheduled date (the driver task replaces :data:`~hydra_plugins.navitune_kfp.driver.DATE_TOKEN`). Both get
the launcher pointed at the in-cluster KFP API (:func:`driver_overrides`).
"""

from __future__ import annotations

from typing import Sequence

from hydra_plugins.navitune_kfp.driver import DATE_TOKEN

APP = ("python", "-m", "experiment")
# launcher keys that describe how THIS machine reaches the API; the driver pod reaches it from inside
LOCAL_ONLY = ("hydra.launcher.host", "hydra.launcher.auth_token_env", "hydra.launcher.ssl_ca_cert",
              "hydra.launcher.verify_ssl", "hydra.launcher.ui_host", "hydra.launcher.backend", "hydra/launcher")


def key_of(override: str) -> str:
    """The key an override sets (``++a.b=x`` → ``a.b``, ``~a`` → ``a``)."""
    return override.lstrip("+~").split("=", 1)[0]


def driver_overrides(overrides: Sequence[str], driver_host: str, ui_host: str | None) -> list[str]:
    """The user's overrides for the driver pod: the remote kfp launcher against ``driver_host`` (the in-cluster
    API), without this machine's token or CA file, with run links to ``ui_host`` (what the user opens)."""
    kept = [o for o in overrides if key_of(o) not in LOCAL_ONLY]
    out = [*kept, "hydra/launcher=kfp", "hydra.launcher.backend=remote", f"hydra.launcher.host={driver_host}",
           "hydra.launcher.auth_token_env=null", "hydra.launcher.ssl_ca_cert=null"]
    if ui_host:
        out.append(f"hydra.launcher.ui_host={ui_host}")
    return out


def sweep_command(overrides: Sequence[str]) -> list[str]:
    """``navitune submit``: the same multirun command as on a laptop."""
    return [*APP, "-m", *overrides]


def retune_command(overrides: Sequence[str]) -> list[str]:
    """A scheduled cycle: ``navitune retune --as-of <scheduled date>`` (one re-tuning cycle: sweep, report,
    decision)."""
    return [*APP, "retune", "--as-of", DATE_TOKEN, *overrides]
