"""Why a KFP job failed when the job itself could not say (each type names one cause, for logs and retries)."""

from __future__ import annotations

from hydra.errors import CompactHydraException


class KFPJobError(RuntimeError):
    """Base of the launcher's own job failures."""


class RunFailed(KFPJobError):
    """The run ended FAILED without a result of the job (the pod crashed, the image could not be pulled...)."""


class RunCanceled(KFPJobError):
    """The run was canceled (in the KFP UI or by someone's API call)."""


class RunSkipped(KFPJobError):
    """KFP skipped the run."""


class RunTimedOut(KFPJobError):
    """The run exceeded ``hydra.launcher.timeout_s`` and was terminated."""


class RunResultMissing(KFPJobError):
    """The run succeeded but its result never reached the study storage."""


class LocalJobDied(KFPJobError):
    """A ``backend=local`` job process ended without a result."""


class LauncherShutdown(KFPJobError):
    """The launcher was shut down while the job was queued or in flight."""


class KFPApiError(KFPJobError):
    """The KFP API refused a request (after retries, for a transient error). ``status``: the HTTP status of
    the last answer (None when there was none: no connection), so callers branch on it, not on the text."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple:  # a job's error crosses process boundaries pickled
        return (type(self), (str(self), self.status))


class KFPUnavailable(CompactHydraException):
    """The KFP API cannot be reached at setup (one line, before anything is submitted)."""
