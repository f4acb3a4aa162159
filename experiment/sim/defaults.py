"""The default region's size as ``conf/region/tokyo_central.yaml`` writes it (the one place it is written), read
as plain YAML: the simulator's own tools (``experiment.sim.diagnostics``) and the app's scans
(``experiment.tunability``) use the same figures without the model importing the app or Hydra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .shifts import SHIFT_KINDS

CONF = Path(__file__).resolve().parents[2] / "conf"


def default_region(name: str = "tokyo_central") -> dict[str, Any]:
    """``n_drivers``, ``requests_per_hour`` and the shift mix as the simulator's (alternate-day, day, night)
    tuple, from ``conf/region/<name>.yaml``."""
    import yaml  # PyYAML ships with Hydra/OmegaConf

    y = yaml.safe_load((CONF / "region" / f"{name}.yaml").read_text())
    mix = dict(y.get("fleet_mix") or {})
    return {"n_drivers": int(y["drivers"]), "requests_per_hour": float(y["requests_per_hour"]),
            "fleet_mix": tuple(float(mix.get(k, 0.0)) for k in SHIFT_KINDS)}
