"""What a navitune config needs registered before Hydra composes it: the schemas (Hydra's ConfigStore) and the
resolvers (``window=rolling``'s dates, ``policy=champion`` and the sweep's baseline).

Apart from ``experiment.config`` (the schemas themselves), because the champion's resolver is registry code that
builds on those schemas: registering it from config.py made config and the registry import each other.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from experiment.config import (
    DemandConfig, NavituneConfig, PolicyConfig, ProxyConfig, RegionConfig, RollingWindowConfig, ScenarioConfig,
    SinkConfig, TrackingConfig, WindowConfig,
)
from experiment.registry.resolver import register_resolvers


def register_configs() -> None:
    """Register the schema: the primary config extends ``navitune_schema``, each group its own.

    Idempotent: registering twice would make Hydra warn about overwritten entries."""
    register_resolvers()  # policy=champion, the sweep's baseline (cheap: no mlflow import)
    cs = ConfigStore.instance()
    if "navitune_schema.yaml" in cs.repo:
        return
    cs.store(name="navitune_schema", node=NavituneConfig)
    for group, node in (
        ("region", RegionConfig), ("demand", DemandConfig), ("window", WindowConfig),
        ("policy", PolicyConfig), ("sink", SinkConfig), ("proxy", ProxyConfig),
        ("tracking", TrackingConfig), ("scenario", ScenarioConfig),
    ):
        cs.store(group=group, name=f"{group}_schema", node=node)
    cs.store(group="window", name="rolling_window_schema", node=RollingWindowConfig)
