"""What the API answers when an environment is exported for another engine (hangar.domain.export)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class KubernetesSecret(BaseModel):
    """A secret the user creates before `helm install`; the values only name it."""

    name: str
    keys: list[str]
    purpose: str


class ExportPublic(BaseModel):
    format: str
    revision: int | None = None  # the revision exported: the running one, else the latest
    values: dict[str, Any]
    requirements: str | None = None  # the requirements.txt the image is built with
    dockerfile: str | None = None  # present when the environment has requirements
    secrets: list[KubernetesSecret]
    notes: list[str]  # what the values cannot carry and the user supplies
