"""Errors named after what went wrong.

The domain raises these; the API edge translates each one exactly once
(see hangar.api.errors). Messages are written for the person who caused them and
never contain secrets.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class HangarError(Exception):
    """Base class. `code` is the machine-readable name shown in last_update.error."""

    code = "HANGAR_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(HangarError):
    code = "VALIDATION_ERROR"


class EnvironmentNotFound(HangarError):
    code = "ENVIRONMENT_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"environment {name!r} does not exist")
        self.name = name


class EnvironmentAlreadyExists(HangarError):
    code = "ENVIRONMENT_EXISTS"

    def __init__(self, name: str) -> None:
        super().__init__(f"environment {name!r} already exists")
        self.name = name


class IllegalTransition(HangarError):
    code = "ILLEGAL_TRANSITION"

    def __init__(self, name: str, current: str, target: str) -> None:
        super().__init__(f"environment {name!r} cannot go from {current} to {target}")


class EnvironmentBusy(HangarError):
    code = "ENVIRONMENT_BUSY"

    def __init__(self, name: str, status: str) -> None:
        super().__init__(f"environment {name!r} is {status}; wait until it settles and try again")


class OperationInProgress(EnvironmentBusy):
    """Another operation of the environment is still open (at most one is, see
    hangar.store.repository.open_operation)."""

    def __init__(self, kind: str) -> None:
        HangarError.__init__(self, f"the environment's {kind} operation is still in progress; wait until it "
                                   "settles and try again")


class OperationSuperseded(HangarError):
    """The operation being carried out was closed by another (a delete): it stops here."""

    code = "OPERATION_SUPERSEDED"


class Unauthorized(HangarError):
    """No or bad credentials."""

    code = "UNAUTHORIZED"


class PayloadTooLarge(HangarError):
    """A request body over the limit for its route (HANGAR_MAX_REQUEST_BYTES or HANGAR_MAX_UPLOAD_BYTES)."""

    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, size: int | None, limit: int) -> None:
        told = f"of {size} bytes " if size is not None else ""
        super().__init__(f"the request body {told}is over the limit of {limit} bytes for this route")
        self.size, self.limit = size, limit


class AccessDenied(HangarError):
    """Good credentials, but the role does not allow the call."""

    code = "ACCESS_DENIED"


class RestApiClientError(HangarError):
    """Airflow's REST API answered an InvokeRestApi call with a 4xx."""

    code = "REST_API_CLIENT_ERROR"

    def __init__(self, status: int, payload: object) -> None:
        super().__init__(f"Airflow answered {status}")
        self.status, self.payload = status, payload


class RestApiServerError(RestApiClientError):
    """Airflow's REST API answered with a 5xx, or not at all."""

    code = "REST_API_SERVER_ERROR"


class PortInUse(HangarError):
    code = "PORT_IN_USE"


# --- errors raised while reconciling; they end up in last_update.error ---


class TemporaryError(HangarError):
    """Retried with backoff by the reconciler."""

    code = "TEMPORARY"

    def __init__(self, message: str, *, delay: float = 2.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(HangarError):
    """Fails the step at once; the message is shown to the user."""

    code = "PERMANENT"


class RuntimeBuildFailed(PermanentError):
    code = "REQUIREMENTS_FAILED"


class AirflowVersionNotFound(PermanentError):
    code = "AIRFLOW_VERSION_NOT_FOUND"


class MetadataDatabaseFailed(PermanentError):
    code = "METADATA_DB_FAILED"


class ComponentFailed(PermanentError):
    code = "COMPONENT_FAILED"


# --- refused at request time, before anything changes ---


class UnsupportedUpgradePath(ValidationFailed):
    """An airflow_version change that Hangar cannot apply in place; the API answers 400."""

    code = "UNSUPPORTED_UPGRADE_PATH"

    def __init__(self, *, current: str, target: str, reason: str, instead: str) -> None:
        super().__init__(f"cannot change airflow_version from {current} to {target}: {reason}; {instead}")
        self.current, self.target = current, target


# --- snapshots (hangar.domain.snapshots) ---


class SnapshotNotFound(HangarError):
    code = "SNAPSHOT_NOT_FOUND"

    def __init__(self, name: str | None, snapshot_id: str) -> None:
        where = f"environment {name!r} has no snapshot" if name else "there is no snapshot"
        super().__init__(f"{where} {snapshot_id!r}")
        self.name, self.snapshot_id = name, snapshot_id


class SnapshotCorrupted(PermanentError):
    """An archive whose checksum, manifest or members do not match what was recorded; never restored."""

    code = "SNAPSHOT_CORRUPTED"


# --- pre-flight checks on a new runtime, before anything switches to it (hangar.runtime.preflight) ---


class RequirementImportFailed(PermanentError):
    """A requirement installed, but one of its modules raises when imported."""

    code = "REQUIREMENT_IMPORT_FAILED"


class PluginImportFailed(PermanentError):
    code = "PLUGIN_IMPORT_FAILED"


class StartupScriptFailed(PermanentError):
    code = "STARTUP_SCRIPT_FAILED"


class StartupScriptTimedOut(PermanentError):
    code = "STARTUP_SCRIPT_TIMED_OUT"


class PreflightTimedOut(PermanentError):
    """A check did not finish in time (an import that hangs, a DAG that blocks at parse time)."""

    code = "PREFLIGHT_TIMED_OUT"


class _LocatedError(Protocol):
    file: str
    line: int | None
    message: str


class DagImportErrors(PermanentError):
    """DAG files that fail to import with the new runtime; each is listed as file:line: message."""

    code = "DAG_IMPORT_ERRORS"

    def __init__(self, errors: Sequence[_LocatedError]) -> None:
        listed = "\n".join(
            f"{error.file}:{error.line}: {error.message}" if error.line is not None else f"{error.file}: {error.message}"
            for error in errors
        )
        super().__init__(f"{len(errors)} DAG file(s) fail to import with the new runtime:\n{listed}")
        self.errors = list(errors)


class CeleryBrokerNotConfigured(ValidationFailed):
    code = "CELERY_BROKER_NOT_CONFIGURED"

    def __init__(self) -> None:
        super().__init__("executor 'celery' needs a broker: start the control plane with "
                         "`hangar server --celery-broker-url redis://...|amqp://...` or HANGAR_CELERY_BROKER_URL")


class BrokerUnreachable(ValidationFailed):
    """The Celery broker did not answer; the message carries the broker client's own error."""

    code = "BROKER_UNREACHABLE"


class FolderUnreadable(PermanentError):
    """A folder an environment reads is closed to the system user it runs as."""

    code = "FOLDER_UNREADABLE"

    def __init__(self, what: str, path: str, user: str, uid: int) -> None:
        super().__init__(
            f"the {what} {path} cannot be read by {user} (uid {uid}), the system user this environment runs "
            f"as: make the folder and every folder above it readable and traversable by others (chmod o+rx), "
            f"or take the DAGs from a bucket")


# --- alerts (hangar.domain.alerts) ---


class GitCredentialNotFound(HangarError):
    code = "GIT_CREDENTIAL_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"git credential {name!r} does not exist (hangar git-credential list)")
        self.name = name


class GitCredentialExists(HangarError):
    code = "GIT_CREDENTIAL_EXISTS"

    def __init__(self, name: str) -> None:
        super().__init__(f"git credential {name!r} already exists")
        self.name = name


class AlertNotFound(HangarError):
    code = "ALERT_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"alert {name!r} does not exist")
        self.name = name


class AlertAlreadyExists(HangarError):
    code = "ALERT_EXISTS"

    def __init__(self, name: str) -> None:
        super().__init__(f"alert {name!r} already exists")
        self.name = name


# --- DAGs from git (hangar.runtime.gitsync); messages name the cause, never the token or key ---


class GitSyncFailed(HangarError):
    """A sync from git did not switch the DAG folder; the last good commit keeps serving."""

    code = "GIT_SYNC_FAILED"


class GitUnreachable(GitSyncFailed):
    """The git host cannot be reached: DNS, a refused or timed-out connection, TLS."""

    code = "GIT_UNREACHABLE"


class GitTimedOut(GitUnreachable):
    code = "GIT_TIMED_OUT"


class GitAuthFailed(GitSyncFailed):
    """The host refused the token or the SSH key, or asked for a credential none was given for."""

    code = "GIT_AUTH_FAILED"


class GitHostKeyMismatch(GitSyncFailed):
    """The SSH host key is not the one pinned in the credential's known_hosts."""

    code = "GIT_HOST_KEY_MISMATCH"


class GitRepositoryNotFound(GitSyncFailed):
    code = "GIT_REPOSITORY_NOT_FOUND"


class GitRefNotFound(GitSyncFailed):
    code = "GIT_REF_NOT_FOUND"


class GitHistoryRewritten(GitSyncFailed):
    """The ref's new commit does not descend from the last good one (a force-push)."""

    code = "GIT_HISTORY_REWRITTEN"

    def __init__(self, *, ref: str, good: str, new: str) -> None:
        super().__init__(
            f"the history of {ref!r} was rewritten: its commit {new[:12]} does not descend from "
            f"{good[:12]}, the last commit synced; {good[:12]} keeps serving until a sync is told to "
            "accept the rewritten history (hangar env sync NAME --accept-rewritten-history)")
        self.ref, self.good, self.new = ref, good, new


class GitSubdirMissing(GitSyncFailed):
    code = "GIT_SUBDIR_MISSING"

    def __init__(self, *, subdir: str, commit: str) -> None:
        super().__init__(f"the folder {subdir!r} does not exist in commit {commit[:12]}")
        self.subdir, self.commit = subdir, commit
