"""The cooperation between sweepers sharing one study: each sweeper's ordinal and sampler stream, the baselines
enqueued once per study, the heartbeats, and the recovery of trials a dead (or silent) sweeper left RUNNING.

A module of its own because it is a protocol between sweeper processes, through study attributes
(``navitune:sweeper:<k>``, the baseline claims, ``navitune:alive:<owner>``, a trial's owner), not part of one
sweeper's loop: what one sweeper writes here, another one reads. The loop (``_core``) calls it; enqueueing a
stale trial again is the retries' job (``retries``), handed in as a callable.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
import time
from typing import Any, Callable, Sequence

import optuna
from hydra.utils import instantiate
from hydra_plugins.navitune_shared.claims import claim
from hydra_plugins.navitune_shared.errors import error_line
from hydra_plugins.navitune_shared.optuna_internals import set_study_system_attr, study_system_attrs
from hydra_plugins.navitune_shared.pids import alive
from hydra_plugins.navitune_shared.protocol import (
    ALIVE, BASELINE, BASELINE_CLAIM, HEARTBEAT, LEGACY_BASELINES, OWNER, SWEEPER_CLAIM,
)
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from .retries import tell_unless_finished

log = logging.getLogger("hydra_plugins.navitune_optuna._core")  # the sweeper's log lines, as before the split


class Cooperation:
    """What one sweeper (``owner``, "host:pid") does for the others on its study; a trial of another sweeper
    is stale once that sweeper is gone or has been silent for ``stale_after_s``."""

    def __init__(self, owner: str, stale_after_s: float) -> None:
        self.owner = owner
        self.stale_after_s = float(stale_after_s)
        self.heartbeat_every = min(self.stale_after_s / 3, 30.0)  # several heartbeats per stale_after_s

    def claim_ordinal(self, study: optuna.Study) -> int:
        """This sweeper's ordinal in the study: the first free ``navitune:sweeper:<k>``, claimed atomically.
        A study with trials but no claim was run before ordinals existed, with ordinal 0's stream: skip it."""
        attrs = study_system_attrs(study)
        taken = [int(k[len(SWEEPER_CLAIM):]) for k in attrs
                 if k.startswith(SWEEPER_CLAIM) and k[len(SWEEPER_CLAIM):].isdigit()]
        ordinal = max(taken) + 1 if taken else (1 if study.get_trials(deepcopy=False) else 0)
        while not claim(study, f"{SWEEPER_CLAIM}{ordinal}", self.owner):
            ordinal += 1
        return ordinal

    def enqueue_baselines(self, study: optuna.Study, enqueue: Sequence[dict[str, Any]]) -> None:
        """Enqueue each baseline once per study, whatever the number of sweepers: enqueueing is claimed
        atomically in the storage (for the journal, the claim and the enqueue land together)."""
        legacy = set(study.user_attrs.get(LEGACY_BASELINES, []))  # studies from before the claims
        for i, params in enumerate(enqueue):
            key = repr(sorted(params.items()))
            if key in legacy:
                continue
            digest = hashlib.sha1(key.encode()).hexdigest()[:16]
            claim(study, f"{BASELINE_CLAIM}{digest}", self.owner,
                  then=functools.partial(study.enqueue_trial, params, user_attrs={BASELINE: i}))

    def stale(self, t: FrozenTrial, now: float, host: str, alive_at: dict[str, float]) -> str | None:
        """Why a RUNNING trial of another sweeper (never this one's: the caller skips those) is stale (its
        process is gone, or it has been silent for stale_after_s), or None. A trial without a heartbeat yet is
        judged by its start time, so a peer that has just asked for it is left alone, and a trial nobody owns
        is not waited for forever. ``alive_at``: each sweeper's last heartbeat (``navitune:alive:<owner>``); a
        trial's own heartbeat attribute is what sweepers wrote before those existed."""
        owner = str(t.user_attrs.get(OWNER, ""))
        owner_host, _, pid = owner.partition(":")
        if owner_host == host and pid.isdigit() and not alive(int(pid)):
            return f"its sweeper {owner} is gone"
        started = t.datetime_start.timestamp() if t.datetime_start is not None else 0.0
        last_sign = max(float(t.user_attrs.get(HEARTBEAT, 0.0)), alive_at.get(owner, 0.0), started)
        if now - last_sign > self.stale_after_s:
            return f"{'its sweeper ' + owner if owner else 'it has no owner and'} has been silent " \
                   f"for {now - last_sign:.0f} s"
        return None

    def recover_stale(self, study: optuna.Study, trials: Sequence[FrozenTrial],
                      live: Callable[[FrozenTrial], bool], enqueue_again: Callable[..., bool]) -> int:
        """Fail RUNNING trials left by a dead (or silent) sweeper and enqueue them again as the SAME
        attempt: the sweeper died, not the job, so no retry is used up, and a launcher that can re-attach
        to the job (e.g. a Kubeflow run named after the trial and attempt) does so. The study's heartbeats
        are read only when another sweeper's trial is RUNNING (never, for a sweep alone on its study).
        ``live``: whether a trial counts (not over budget); ``enqueue_again``: the retries'
        ``enqueue_again(study, number, params, attrs, same_attempt=True)``."""
        now, host = time.time(), socket.gethostname()
        recovered = 0
        alive_at: dict[str, float] | None = None
        for t in trials:
            if t.state != TrialState.RUNNING or not live(t) or t.user_attrs.get(OWNER) == self.owner:
                continue
            if alive_at is None:
                alive_at = heartbeats(study)
            why = self.stale(t, now, host, alive_at)
            if why is None:
                continue
            if not tell_unless_finished(study, t.number, state=TrialState.FAIL):
                continue  # another sweeper recovered it first
            log.warning(f"Trial {t.number} was left RUNNING ({why}): failing it and running it again")
            enqueue_again(study, t.number, t.params, t.user_attrs, same_attempt=True)
            recovered += 1
        return recovered

    def heartbeat(self, study: optuna.Study) -> None:
        """This sweeper's sign of life: one study attribute per sweeper, whatever the number of trials in
        flight (a write per trial was 100 writes every 30 s at 100 in flight, a third of the sweeper's
        time on the study database: ``bench kfp-scale``, docs/performance.md)."""
        try:
            set_study_system_attr(study, ALIVE + self.owner, time.time())
        except Exception as err:  # noqa: BLE001 - the next heartbeat tries again; stale_after_s allows a few
            log.debug("heartbeat not written: %s", error_line(err))


def heartbeats(study: optuna.Study) -> dict[str, float]:
    """Each sweeper's last heartbeat in the study (owner -> epoch seconds)."""
    attrs = study_system_attrs(study)
    return {k[len(ALIVE):]: float(v) for k, v in attrs.items()
            if k.startswith(ALIVE) and isinstance(v, (int, float))}


def stream_seed(seed: int, ordinal: int) -> int:
    """The sampler seed of the ``ordinal``-th sweeper on a study: ``seed`` itself for the first, then
    independent streams derived from it (NumPy's SeedSequence spawning)."""
    if ordinal == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence(entropy=abs(seed), spawn_key=(ordinal,)).generate_state(1)[0])


def own_stream(sampler: Any, sampler_conf: Any, whitelist: Sequence[str], ordinal: int,
               grid: Callable[[], dict[str, Any]]) -> Any:
    """The sampler, seeded for this sweeper's ordinal (unchanged for ordinal 0 or without a seed);
    ``sampler_conf``: the sampler's config (its ``seed``), ``grid``: the search space's choices, for a
    GridSampler."""
    seed = OmegaConf.select(sampler_conf, "seed") if sampler_conf is not None else None
    if seed is None or ordinal == 0:
        return sampler
    conf = OmegaConf.merge(sampler_conf, {"seed": stream_seed(int(seed), ordinal)})
    seeded = instantiate(conf, _execution_whitelist_=whitelist)
    if isinstance(seeded, functools.partial) and seeded.func is optuna.samplers.GridSampler:
        seeded = seeded(grid())
    return seeded
