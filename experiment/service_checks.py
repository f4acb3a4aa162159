"""The checks of a config that belong to the code of a service it configures: MLflow tracking and the Cloud SQL
proxy.

``experiment.config.validate`` checks a config's own values (schemas, ranges, dates, the registry's promotion
and a ``policy=champion`` that does not resolve); these rules live beside the service code (``tracking.common``,
``navitune_shared.proxy_settings``), which builds on the schemas, so they run from above both: the CLI's
preflight and ``navitune champion`` call :func:`check_services` after ``validate``. (A job or the report,
started after the preflight, does not check them again.)
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.navitune_shared.proxy_settings import proxy_settings

from experiment.config import _file_path_ok, _invalid
from experiment.errors import ConfigError
from experiment.tracking.common import check_tracking


def check_services(cfg: Any) -> None:
    """The proxy and tracking settings of a validated config (in this order, as ``validate`` ran them before);
    one-line ConfigError on the first problem."""
    check_proxy(cfg)
    check_tracking_settings(cfg)



def check_tracking_settings(cfg: Any) -> None:
    """The tracking rules live beside the tracking code (the sweep callback checks them again)."""
    tracking = cfg.get("tracking") if hasattr(cfg, "get") else getattr(cfg, "tracking", None)
    if tracking is not None:
        check_tracking(tracking)
        uri = str(tracking.uri or "")
        if tracking.kind == "local" and uri.startswith("sqlite:///"):
            path = uri[len("sqlite:///"):]
            if path in ("", ":memory:") or path.startswith(":memory:") or not _file_path_ok(path):
                raise _invalid("tracking.uri", uri, "sqlite:///PATH of a store file (not :memory:, which would keep "
                                           "nothing, nor a directory)")


def check_proxy(cfg: Any) -> None:
    """The proxy rules live beside the code that runs the proxy (the remote job checks them again)."""
    try:
        proxy_settings(cfg)
    except ValueError as err:
        raise ConfigError(f"navitune: {err}") from None
