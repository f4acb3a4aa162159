"""The asynchronous Optuna sweeper.

* **Exact budget**: ``n_trials`` counts finished (COMPLETE or PRUNED) trials in the whole study. Before
  a trial is launched it must be among the first ``n_trials`` live trials by trial number (numbers are
  handed out by the storage, so this holds across sweeper processes sharing it); a re-run of a finished
  sweep launches nothing, a crashed one continues where it stopped.
* **Asynchronous**: with a launcher that has ``submit`` (a Future per job), ``n_jobs`` trials stay in
  flight and a slot is refilled the moment one finishes; other launchers get batches of ``n_jobs``.
* **Retries**: a failed trial is enqueued again with the same parameters up to ``max_retries`` times, but
  not after two attempts failed the same way (same error type and message, digits aside), nor when the job
  ran to its end and returned a value the study cannot take (it would return it again).
  ``max_failure_rate`` applies to trials that failed for good, over the whole sweep.
* **A sweep always ends**: it stops once more than ``floor(max_failure_rate * n_trials)`` trials failed
  for good (so at most ``n_trials + 1`` of them, even at 1.0), with one line, and exits non-zero.
* **Several sweepers on one study**: the ``enqueue`` baselines are claimed once per study (an atomic claim
  in the storage, see ``navitune_shared.claims.claim``), and each sweeper process claims an ordinal ``k`` in the study and
  seeds its sampler with ``seed`` for k = 0 and ``SeedSequence(seed, spawn_key=(k,))`` after: the k-th
  sweeper to open a study always draws the same stream, and no two draw the same one.
* **Disk full**: a job that fails with ENOSPC stops the sweep (one line); its trial and those in flight are
  failed as stopped and enqueued again as the same attempt, so the same command continues once there is room.
* **Stale trials**: RUNNING trials whose sweeper process is gone (or silent for ``stale_after_s``) are
  failed and retried when a sweeper starts.
* **Pruning**: the job reports intermediate values to its trial through the study's storage
  (see ``reporting``); a pruned trial counts as finished.

This module is the loop (set-up, asking, submitting, telling, the budget); the cooperation between sweepers on
one study (ordinals, baselines, heartbeats, stale trials) is ``cooperation``, the retries and failures
``retries``, what a job's value or error means ``failures``.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate

from hydra_plugins.navitune_optuna.pruning import make_pruner
from hydra_plugins.navitune_shared.disk_reserve import DiskReserve
from hydra_plugins.navitune_shared.errors import error_line, message_line
from hydra_plugins.navitune_shared.optuna_internals import optuna_sweeper_impl, set_trial_user_attr
from hydra_plugins.navitune_shared.protocol import (
    ATTEMPT, ENV_ATTEMPT, ENV_ORIGIN, ENV_STUDY, ENV_TRIAL, OVER_BUDGET, OWNER, RETRY_OF, STOPPED, AsyncLauncher,
    CompilingLauncher, PreparingLauncher,
)
from hydra_plugins.navitune_shared.storage import describe, sweeper_storage
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from .cooperation import Cooperation, own_stream
from .failures import Outcome, disk_full, quiet_full_disk_logging
from .interrupts import HeldInterrupt
from .progress import Progress, best_value
from .results_files import write_results
from .retries import DiskFull, RetryPolicy, SweepStopped, tell_unless_finished
from .validation import SweeperConfigError, check_budget, check_settings, invalid_setting, quote

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TELL_BEHIND_ABOVE = 4  # trials in flight (n_jobs) above which results are recorded by bookkeeping threads
TELLERS = 4  # those threads: each result is a few round trips to the study's database


@dataclass
class _Slot:
    """A trial in flight: the Optuna trial, its job's overrides, and its user attributes when asked."""

    trial: optuna.Trial
    overrides: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


class AsyncOptunaSweeperImpl:
    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
        custom_search_space: str | None,
        max_retries: int,
        pruner: Any,
        enqueue: Sequence[dict[str, Any]],
        stale_after_s: float,
        progress: bool,
        metric_names: Sequence[str] | None = None,
    ) -> None:
        check_settings(study_name=study_name, direction=direction, storage=storage, pruner=pruner, sampler=sampler)
        n_directions = len(direction) if OmegaConf.is_list(direction) or isinstance(direction, (list, tuple)) else 1
        check_budget(n_trials=n_trials, n_jobs=n_jobs, max_failure_rate=max_failure_rate, max_retries=max_retries,
                     stale_after_s=stale_after_s, n_directions=n_directions,
                     metric_names=None if metric_names is None else [str(n) for n in metric_names])
        whitelist = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*", "optuna.pruners.*")
        sampler_conf = sampler
        try:
            sampler = instantiate(sampler, _execution_whitelist_=whitelist)
        except Exception as err:
            raise invalid_setting("sampler", OmegaConf.select(sampler, "_target_") if sampler else sampler,
                        f"one of hydra/sweeper/sampler: tpe, random, cmaes, gp, qmc, nsgaii, nsgaiii, grid ({err})")
        self._sampler_conf, self._whitelist = sampler_conf, whitelist
        self.pruner = make_pruner(pruner, whitelist)
        # hydra-optuna-sweeper's own implementation does the parameter parsing and grid handling
        impl, _ = optuna_sweeper_impl()
        self._base = impl(
            sampler, direction, storage, study_name, n_trials, n_jobs, float(max_failure_rate),
            custom_search_space, params,
        )
        self.storage_setting = storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate = float(max_failure_rate)
        self.max_retries = max_retries
        self.enqueue = [dict(e) for e in (enqueue or [])]
        self.stale_after_s = float(stale_after_s)
        self.progress = progress
        self.metric_names = None if metric_names is None else [str(n) for n in metric_names]
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._cooperation = Cooperation(self.owner, self.stale_after_s)  # claims, heartbeats, stale trials
        self._retries = RetryPolicy(max_retries, self.max_failure_rate)  # enqueue again, fail for good

    # ------------------------------------------------------------------------------------ setup
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        # what hydra-optuna-sweeper's own setup() sets, without its second launcher: one launcher per sweep
        # (the kfp launcher's set-up checks, compiles and creates the KFP experiment)
        base = self._base
        base.job_idx, base.config, base.hydra_context = 0, config, hydra_context
        base.launcher, base.sweep_dir = self.launcher, config.hydra.sweep.dir

    # ------------------------------------------------------------------------------- the sweep
    def sweep(self, arguments: list[str]) -> None:
        base = self._base
        base._process_searchspace_config()
        params_conf = base._parse_sweeper_params_config() + list(arguments)
        try:
            space, fixed, fixed_overrides = optuna_sweeper_impl()[1](params_conf)
        except Exception as err:
            raise SweeperConfigError(f"optuna_async: invalid search space: {_explain(params_conf, err)}") from None
        for name in fixed:
            space.pop(name, None)
        sampler = base.sampler
        if isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler:
            grid = {n: base._to_grid_sampler_choices(d) for n, d in space.items()}
            sampler = sampler(grid)
            size = 1
            for choices in grid.values():
                size *= len(choices)
            self.n_trials = min(self.n_trials, size)
        directions = base._get_directions()
        if isinstance(self.launcher, CompilingLauncher) and self.launcher.compile_only is True:
            # e.g. hydra/launcher=kfp with compile_only=true: its jobs would "finish" without a value, and every
            # trial would fail and be retried; the search space is checked, the study is left untouched
            log.info("optuna_async: the launcher only compiles (hydra.launcher.compile_only=true): no trial is "
                     "created and the study is not opened")
            self._shutdown_launcher()
            return
        self._reserve = DiskReserve.for_storage(self.storage_setting, self.owner)
        quiet_full_disk_logging()
        try:
            self._open_and_run(sampler, space, fixed, fixed_overrides, directions)
        except OSError as err:  # the study's storage itself could not be written
            if not disk_full(err):
                raise
            raise DiskFull(f"optuna_async: the disk is full: cannot write the study "
                           f"({describe(self.storage_setting)}): {error_line(err)}") from None
        finally:
            self._reserve.release()

    def _open_and_run(self, sampler: Any, space: dict, fixed: dict, fixed_overrides: list, directions: list
                      ) -> None:
        base = self._base
        storage = sweeper_storage(self.storage_setting)
        # Optuna's INFO "Using an existing study" would also greet a brand-new sweep: the registry's start record
        # (experiment.registry.study_start) creates the study first. The line below says new or resumed instead.
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
        try:
            study = optuna.create_study(
                study_name=base.study_name, storage=storage, sampler=sampler, pruner=self.pruner,
                directions=directions, load_if_exists=True,
            )
        finally:
            optuna.logging.set_verbosity(verbosity)
        check_same_space(study, space, custom=bool(self._base.custom_search_space_extender), fixed=fixed)
        self.study, self.space, self.fixed, self.fixed_overrides = study, space, fixed, fixed_overrides
        self.directions = directions
        if self.metric_names is not None and study.metric_names != self.metric_names:
            with warnings.catch_warnings():
                # set_metric_names has been "experimental" since Optuna 3.2 and warns at every sweep; the names
                # are only labels (dashboard, plots), so a change of its interface cannot change a result
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(self.metric_names)
        ordinal = self._cooperation.claim_ordinal(study)
        study.sampler = own_stream(study.sampler, self._sampler_conf, self._whitelist, ordinal,
                                   lambda: {n: base._to_grid_sampler_choices(d) for n, d in space.items()})
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED)))
        log.info(f"{'Resuming study' if done else 'Study'} {study.study_name!r} "
                 f"{f'({done} finished trials) ' if done else ''}({describe(self.storage_setting)}), sampler "
                 f"{type(sampler).__name__}, {self.n_trials} finished trials wanted, {self.n_jobs} at a time"
                 f"{f', sweeper #{ordinal} on it' if ordinal else ''}")
        self._cooperation.enqueue_baselines(study, self.enqueue)
        self._in_flight: dict[Future, _Slot] = {}
        self._telling: dict[Future, _Slot] = {}  # results being recorded (their jobs have ended)
        self._tellers = ThreadPoolExecutor(TELLERS, thread_name_prefix="optuna-tell") \
            if self.n_jobs > TELL_BEHIND_ABOVE else None
        display = Progress(self.n_trials, self.progress, (self.metric_names or [None])[0])
        try:
            self._run(study, display)
        except BaseException as err:
            full = isinstance(err, DiskFull) or (isinstance(err, OSError) and disk_full(err))
            if full:
                self._reserve.release()  # room for the bookkeeping below
            self._stop_in_flight(study, requeue=full or isinstance(err, KeyboardInterrupt))
            raise
        finally:
            if self._tellers is not None:
                self._tellers.shutdown(wait=True)
            self._last_progress(study, display)
        self._shutdown_launcher()
        write_results(study, self.config, self.directions, self._count(study.get_trials(deepcopy=False)))

    def _last_progress(self, study: optuna.Study, display: Progress) -> None:
        """The display's last word is the study's state once the sweep has ended or stopped (its trials in
        flight told), not the state before the last results came in."""
        try:
            trials = study.get_trials(deepcopy=False)
            display.update(self._count(trials), best_value(trials, self.directions), display.elapsed())
        except Exception:  # noqa: BLE001 - a storage that fails here already said so; the display just ends
            pass
        finally:
            display.close()

    # ----------------------------------------------------------------------------- bookkeeping
    def _live(self, t: FrozenTrial) -> bool:
        return not t.user_attrs.get(OVER_BUDGET)

    def _count(self, trials: Sequence[FrozenTrial]) -> dict[str, int]:
        by = {s: 0 for s in TrialState}
        for t in trials:
            if self._live(t):
                by[t.state] += 1
        return {
            "finished": by[TrialState.COMPLETE] + by[TrialState.PRUNED],
            "complete": by[TrialState.COMPLETE],
            "pruned": by[TrialState.PRUNED],
            "running": by[TrialState.RUNNING],
            "failed": by[TrialState.FAIL],
        }

    def _in_budget(self, study: optuna.Study, number: int) -> bool:
        """Is trial ``number`` among the first n_trials live trials? (Trial numbers are global and dense,
        so a number below n_trials always is; only later numbers need a look at the study.)"""
        if number < self.n_trials:
            return True
        ahead = sum(
            1 for t in study.get_trials(deepcopy=False, states=FINISHED + (TrialState.RUNNING,))
            if t.number < number and self._live(t)
        )
        return ahead < self.n_trials

    # --------------------------------------------------------------------------------- the loop
    def _next_trial(self, study: optuna.Study) -> _Slot | None:
        trial = study.ask()
        try:
            return self._prepare(study, trial)
        except OSError as err:  # e.g. a full disk under the journal: not left RUNNING, never in flight
            if disk_full(err):
                self._reserve.release()
            self._stop_slot(study, _Slot(trial, [], dict(trial.user_attrs)), requeue=False)
            raise

    def _prepare(self, study: optuna.Study, trial: optuna.Trial) -> _Slot | None:
        """A trial just asked for, with its owner recorded and its job's overrides; None if over budget."""
        if not self._in_budget(study, trial.number):
            set_trial_user_attr(study, trial, OVER_BUDGET, True)
            tell_unless_finished(study, trial, state=TrialState.FAIL)
            return None
        set_trial_user_attr(study, trial, OWNER, self.owner)
        attrs = dict(trial.user_attrs)
        attempt, origin = int(attrs.get(ATTEMPT, 0)), int(attrs.get(RETRY_OF, trial.number))
        overrides = list(self._base._configure_trials([trial], self.space, self.fixed, self.fixed_overrides)[0])
        overrides += [f"++hydra.job.env_set.{ENV_TRIAL}={trial.number}",
                      f"++hydra.job.env_set.{ENV_STUDY}={quote(study.study_name)}",
                      f"++hydra.job.env_set.{ENV_ATTEMPT}={attempt}",
                      f"++hydra.job.env_set.{ENV_ORIGIN}={origin}"]
        return _Slot(trial, overrides, attrs)

    def _run(self, study: optuna.Study, display: Progress) -> None:
        submit = self.launcher.submit if isinstance(self.launcher, AsyncLauncher) else None
        ahead = self._ahead() if submit is not None else 0
        in_flight = self._in_flight
        final_failures = 0
        allowed_failures = self._retries.allowed_failures(self.n_trials)
        job_idx = 0
        cooperation = self._cooperation
        next_heartbeat = time.monotonic() + cooperation.heartbeat_every
        hold = HeldInterrupt()
        while True:
            # bookkeeping with Ctrl-C held back: an interrupt between asking a trial and recording it in
            # flight (or between taking a result and telling it) would leave that trial RUNNING
            with hold:
                trials = study.get_trials(deepcopy=False)
                if cooperation.recover_stale(study, trials, self._live, self._retries.enqueue_again):
                    trials = study.get_trials(deepcopy=False)
                counts = self._count(trials)
                waiting = self.launcher.prepared if isinstance(self.launcher, PreparingLauncher) else 0  # set up ahead
                shown_running = max(0, counts["running"] - waiting)
                display.update(dict(counts, running=shown_running), best_value(trials, self.directions),
                               display.elapsed())
                room = self.n_trials - counts["finished"] - counts["running"] - self._retry_pending(trials)
                batch: list[_Slot] = []
                while room > 0 and len(in_flight) + len(batch) < self.n_jobs + ahead:
                    slot = self._next_trial(study)
                    if slot is None:
                        break
                    batch.append(slot)
                    room -= 1
                pending: list[Future] = []
                if batch and submit is not None:
                    for k, slot in enumerate(batch):
                        try:
                            in_flight[submit(slot.overrides, job_idx)] = slot
                        except BaseException:  # this and the rest of the batch never ran: they are stopped
                            for unsent in batch[k:]:  # with the trials in flight, not left RUNNING
                                never = Future()
                                never.cancel()
                                in_flight[never] = unsent
                            raise
                        job_idx += 1
                elif batch:  # a launcher without submit(): one batch at a time (launched below)
                    pending = [Future() for _ in batch]
                    in_flight.update(zip(pending, batch))
                # what the table says before the first result (jobs composed ahead wait for a slot: not running)
                display.launched(max(0, min(len(batch), self.n_jobs - shown_running)))
            if pending:  # interruptible: the batch is in flight, so a stop fails its trials
                rets = self.launcher.launch([s.overrides for s in batch], initial_job_idx=job_idx)
                job_idx += len(rets)
                for done, ret in zip(pending, rets):
                    done.set_result(ret)
            telling = self._telling
            if not in_flight and not telling:
                if counts["running"] == 0 and not batch:
                    break
                time.sleep(min(1.0, self.stale_after_s / 4))  # other sweepers' trials: wait for them
                continue
            timeout = max(0.0, min(next_heartbeat - time.monotonic(), self.stale_after_s / 4, 10.0))
            finished, _ = wait([*in_flight, *telling], timeout=timeout, return_when=FIRST_COMPLETED)
            with hold:
                if time.monotonic() >= next_heartbeat:
                    cooperation.heartbeat(study)
                    next_heartbeat = time.monotonic() + cooperation.heartbeat_every
                for fut in finished:
                    if fut in in_flight:  # a job ended: its slot is free once its result is being recorded
                        slot = in_flight.pop(fut)
                        telling[self._record(study, slot, fut.result())] = slot
                for told in [f for f in telling if f.done()]:
                    slot = telling.pop(told)
                    try:
                        outcome = told.result()
                    except BaseException:
                        in_flight[told] = slot  # stopped with the trials in flight (a full disk: run again)
                        raise
                    if outcome is Outcome.FAILED:
                        final_failures += 1
                        if final_failures > allowed_failures:
                            raise SweepStopped(self._too_many_failures(study, final_failures, allowed_failures))

    def _retry_pending(self, trials: Sequence[FrozenTrial]) -> int:
        """Results being told whose trial is already FAIL: its retry may not be enqueued yet, so each holds
        its place in the budget (else the freed place goes to a new trial, and the retry is left WAITING)."""
        if not self._telling:
            return 0
        failed = {t.number for t in trials if t.state == TrialState.FAIL}
        return sum(1 for slot in self._telling.values() if slot.trial.number in failed)

    def _record(self, study: optuna.Study, slot: _Slot, ret: JobReturn) -> "Future[Outcome]":
        """Tell a job's result (:meth:`_outcome`, ``RetryPolicy.outcome``): here and now with a few trials in
        flight (the sampler sees each result before the next ask, as in a sequential sweep), by the bookkeeping
        threads with more than TELL_BEHIND_ABOVE, so the sweeper's thread refills slots meanwhile (each tell is
        a few round trips to the study's database; one after the other they were the sweeper's limit at 100 in
        flight)."""
        if self._tellers is not None:
            return self._tellers.submit(self._outcome, study, slot, ret)
        told: Future[Outcome] = Future()
        try:
            told.set_result(self._outcome(study, slot, ret))
        except Exception as err:  # DiskFull, a storage error: raised by the loop, as before
            told.set_exception(err)
        return told

    def _ahead(self) -> int:
        """Trials to ask for ahead of a free slot: as many as the launcher sets up ahead while its slots are
        busy (process_pool's ``prepare_ahead``), so it can refill a slot the moment a job ends; none when
        the launcher would run them at once (it runs more jobs at a time than this sweeper's ``n_jobs``)."""
        if not isinstance(self.launcher, PreparingLauncher):
            return 0
        ahead, n_jobs = self.launcher.prepare_ahead, self.launcher.n_jobs
        if not isinstance(ahead, int) or ahead <= 0 or not isinstance(n_jobs, int) or n_jobs > self.n_jobs:
            return 0
        return ahead

    def _too_many_failures(self, study: optuna.Study, failures: int, allowed: int) -> str:
        """The one line a sweep stopped by failures ends with (``RetryPolicy.too_many_failures``)."""
        complete = self._count(study.get_trials(deepcopy=False))["complete"]
        return self._retries.too_many_failures(failures, allowed, complete, self.n_trials)

    def _stop_in_flight(self, study: optuna.Study, requeue: bool) -> None:
        """After the sweep stopped early: shut the launcher down (its jobs are killed) and fail the trials
        still in flight, so none is left RUNNING. After an interrupt (Ctrl-C) or a full disk they are
        enqueued again, as the same attempt, for the next run of the same command."""
        for told, slot in list(self._telling.items()):  # results being recorded: let them land
            try:
                told.result(timeout=120)
            except Exception:  # noqa: BLE001 - not recorded: failed as stopped below
                self._in_flight[told] = slot
        self._telling.clear()
        slots = list(self._in_flight.values())
        for fut in self._in_flight:
            fut.cancel()
        self._in_flight.clear()
        self._shutdown_launcher()
        for slot in slots:
            self._stop_slot(study, slot, requeue)

    def _stop_slot(self, study: optuna.Study, slot: _Slot, requeue: bool) -> None:
        """Fail a trial as stopped (and enqueue it again as the same attempt); a storage that cannot be
        written (a full disk) leaves it RUNNING for the next sweep to recover, said in one line."""
        try:
            try:
                set_trial_user_attr(study, slot.trial, STOPPED, True)
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # finished meanwhile (told by a sweeper that judged it stale)
            if tell_unless_finished(study, slot.trial, state=TrialState.FAIL) and requeue:
                self._retries.enqueue_again(study, slot.trial.number, slot.trial.params, slot.attrs,
                                            same_attempt=True)
        except OSError as err:
            log.error(f"Trial {slot.trial.number}: cannot record that it stopped ({error_line(err)}); the next "
                      f"sweep on this study fails it and runs it again")

    def _shutdown_launcher(self) -> None:
        if isinstance(self.launcher, AsyncLauncher):
            self.launcher.shutdown()

    def _outcome(self, study: optuna.Study, slot: _Slot, ret: JobReturn) -> Outcome:
        """Record a job's result and say what that did (``RetryPolicy.outcome``; raises DiskFull for a job
        that ran out of disk space)."""
        return self._retries.outcome(study, slot.trial, slot.attrs, ret, len(self.directions))


# --------------------------------------------------------------------------------------- helpers
def _explain(overrides: list[str], err: BaseException) -> str:
    """One line naming the bad override and why."""
    from .overrides import first_bad_override

    bad = first_bad_override(overrides)
    if bad is not None:
        return f"{bad[0]!r}: {bad[1]}"
    return f"{overrides}: {message_line(err) or type(err).__name__}"


def check_same_space(study: optuna.Study, space: dict, custom: bool = False, fixed: dict | None = None) -> None:
    """A resumed study must have been searched over this sweep's space. Optuna would mix the two silently: the
    earlier trials would stay in the sampler's model and could stay the best (a candidate outside today's ranges),
    and a study already at its budget would end at once on results of another space. One line, before any trial,
    naming the parameter, both ranges and the way out; nothing recorded is touched. With a
    ``custom_search_space`` its own parameters (suggested by the user's function, ranges that may depend on other
    values) are not compared: only the declared ones. ``fixed``: this sweep's parameters given one value, named
    with it."""
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in study.get_trials(deepcopy=False):
        # what it was suggested; a finished trial was suggested every parameter of its space (one stopped while
        # its parameters were being suggested, or enqueued and not started, has only some or none)
        names = set(t.distributions) | (set(space) if t.state in finished else set())
        if custom:
            names &= set(space)
        names = sorted(names)
        for name in names:
            before, now = t.distributions.get(name), space.get(name)
            if before != now:
                raise SweeperConfigError(
                    f"optuna_async: study {study.study_name!r} was searched over another space (trial {t.number}: "
                    f"{name} {_range(before)}, this sweep: "
                    f"{f'fixed at {fixed[name]}' if now is None and name in (fixed or {}) else _range(now)}); "
                    "allowed: the same search space, or a new "
                    f"study for the new space (hydra.sweeper.study_name=..., or another paths.outputs)")


def _range(d: Any) -> str:
    if d is None:
        return "not searched"
    if isinstance(d, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution)):
        step = d.step if isinstance(d, optuna.distributions.FloatDistribution) else (d.step if d.step != 1 else None)
        return f"{d.low!r}..{d.high!r}{' (log)' if d.log else ''}{f' step {step!r}' if step else ''}"
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return f"choice{tuple(d.choices)}"
    return repr(d)

