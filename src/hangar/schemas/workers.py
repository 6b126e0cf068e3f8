"""What joined hosts and the people who manage them send and get back (hangar.domain.workers).

A heartbeat ignores fields it does not know, so a host running a newer Hangar keeps its
heartbeats going while the control plane is upgraded.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class HostState(StrEnum):
    """What a host says it is doing."""

    RUNNING = "RUNNING"
    DRAINING = "DRAINING"  # finishing its tasks, taking no new ones
    STOPPED = "STOPPED"


class HostStatus(StrEnum):
    """What the control plane makes of a host."""

    ACTIVE = "ACTIVE"
    LOST = "LOST"
    REVOKED = "REVOKED"
    STOPPED = "STOPPED"



class WorkerTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)


class WorkerTokenCreated(BaseModel):
    id: str
    token: str  # shown this once
    label: str | None
    created_at: datetime


class WorkerTokenPublic(BaseModel):
    id: str
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked: bool
    hosts: int  # hosts whose last heartbeat came with this token


WorkerName = Annotated[str, Field(min_length=1, max_length=255)]


class Heartbeat(BaseModel):
    """What a joined host reports about itself.

    Fields this control plane does not know are ignored rather than refused, so a host
    running a newer Hangar keeps its heartbeats going during an upgrade of the control plane."""

    model_config = ConfigDict(extra="ignore")

    hostname: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    concurrency: int = Field(ge=0, le=10_000)  # task slots of all its workers
    state: HostState = HostState.RUNNING
    running_tasks: int = Field(default=0, ge=0)
    workers: list[WorkerName] = Field(default_factory=list, max_length=256)
    airflow_version: str | None = Field(default=None, max_length=32)
    runtime_key: str | None = Field(default=None, max_length=128)


class HeartbeatAccepted(BaseModel):
    accepted: bool = True
    revoked: bool = False
    lost_after_seconds: float  # heartbeat well within this, or the host shows as LOST


class WorkerHostPublic(BaseModel):
    hostname: str
    address: str
    status: HostStatus
    state: HostState
    heartbeat_age_seconds: float
    last_heartbeat_at: datetime
    joined_at: datetime
    concurrency: int
    running_tasks: int
    workers: list[str]
    airflow_version: str | None
    runtime_key: str | None
    token_id: str
