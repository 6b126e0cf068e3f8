"""What the API answers about environments: the public output models."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from hangar.schemas.spec import Spec


class ErrorInfo(BaseModel):
    code: str
    message: str


class LastUpdate(BaseModel):
    status: str  # SUCCESS, PENDING or FAILED, as MWAA reports it
    created_at: datetime
    error: ErrorInfo | None = None
    revision: int


class ComponentPublic(BaseModel):
    name: str
    state: str
    pid: int | None = None
    port: int | None = None
    restarts: int = 0
    reason: str | None = None


class GitStatusPublic(BaseModel):
    """What an environment whose DAGs come from git serves."""

    commit: str | None = None
    committed_at: str | None = None
    fetched_at: str | None = None
    last_error: str | None = None
    last_error_code: str | None = None
    last_error_at: str | None = None


class EnvironmentPublic(BaseModel):
    name: str
    status: str
    status_reason: str | None = None
    airflow_version: str
    webserver_url: str | None
    created_at: datetime
    last_update: LastUpdate | None
    revision: int
    running_revision: int | None
    last_good_revision: int | None
    spec: Spec
    components: list[ComponentPublic] = Field(default_factory=list)
    executor: str = "local"
    workers: "WorkersPublic | None" = None
    git: GitStatusPublic | None = None


class WorkersPublic(BaseModel):
    """A Celery environment's workers as the autoscaler last saw them."""

    current: int
    desired: int
    min: int
    max: int
    queued_tasks: int
    running_tasks: int
    concurrency: int
    at: datetime | None = None
    # the workers whose component is RUNNING: Celery reported them ready (under a user's own
    # celery_config_options: they stayed up start_seconds); one still connecting is STARTING
    ready: int = 0


class WorkerSamplePublic(BaseModel):
    at: datetime
    current: int
    desired: int
    queued_tasks: int
    running_tasks: int


class RevisionPublic(BaseModel):
    revision: int
    created_at: datetime
    status: str  # APPLIED, FAILED, ROLLED_BACK, IN_PROGRESS or RECORDED (tags only, never applied alone)
    error: str | None = None
    running: bool
    last_good: bool
    changes: list[str]  # what this revision changed against the one before, one line a field


class OperationProgressPublic(BaseModel):
    """The newest operation of an environment and the steps it has finished."""

    kind: str
    revision: int
    done: bool
    started_at: datetime
    steps: list[str]


class EventPublic(BaseModel):
    at: datetime
    status: str
    previous: str | None
    reason: str


class TokenPublic(BaseModel):
    token: str
    expires_at: datetime
    webserver_url: str | None
    role: str
