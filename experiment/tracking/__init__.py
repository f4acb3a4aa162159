"""MLflow tracking (config group ``tracking``: ``local``, ``server``, ``off``).

* One MLflow **experiment per Optuna study** (standalone runs: ``navitune_<region>_<window>_<demand>``, the
  name a sweep of the same settings gives its study), tagged ``mlflow.experimentKind=custom_model_development``
  so MLflow 3 opens its runs table.
* One **parent run per sweep**, made by the Hydra callback in :mod:`experiment.tracking.callback` and found
  again (by the study and its storage) when the sweep resumes.
* One **child run per trial attempt**, made by the task (:func:`experiment.tracking.job.track_job`); a run
  without ``-m`` is a standalone run.
* Tracking never breaks a run: if MLflow is down, trials run and finish, one warning says what was not tracked,
  and the Optuna study is untouched. When a sweep ends with MLflow reachable, its child runs are made whole
  from the study (:mod:`experiment.tracking.backfill`): runs for trials that ran untracked, and runs a job left
  RUNNING (MLflow went away mid-job) ended with the trial's outcome.
* A fresh local store (``tracking=local``) is created and migrated under a lock
  (:mod:`experiment.tracking.store`), so sweepers started together on it all track.

``mlflow`` is imported only when something is tracked: Hydra imports the callback module at every start, and
``import mlflow`` takes seconds.
"""

from __future__ import annotations
