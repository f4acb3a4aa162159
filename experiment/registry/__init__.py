"""The champion in MLflow's Model Registry (issue 13 §3, docs/retune.md).

For the next tools (``navitune retune``, the retune bench):

* :func:`decide` ``(sweep_dir, region=None, uri=None, promotion=None) -> Decision``: the end-of-sweep decision,
  idempotent per sweep; ``Decision.outcome`` is promoted | challenger | already_decided | unavailable | skipped.
* :func:`champion_policy` ``(region, uri) -> dict``: the champion's complete policy (``name`` = champion_v<N>);
  raises ConfigError (one line) when there is none.
* :class:`Registry` ``.at(uri, region)``: champion(), alias(), versions(), history(), register(), set_champion(),
  set_challenger(), rollback().
* :func:`record_start` ``(config, sweep_dir)``: the champion at a sweep's start (the report callback calls it).
* ``experiment.champion.init(cfg)``: ``navitune champion init`` for a composed config.
"""

from experiment.registry.decision import PROMOTIONS, Decision, decide, record_start
from experiment.registry.resolver import champion_policy
from experiment.registry.store import (CHALLENGER, CHAMPION, Registry, RegistryError, RegistryUnavailable,
                                       model_name)

__all__ = ["CHALLENGER", "CHAMPION", "PROMOTIONS", "Decision", "Registry", "RegistryError", "RegistryUnavailable",
           "champion_policy", "decide", "model_name", "record_start"]
