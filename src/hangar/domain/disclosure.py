"""What a caller's role may see of an environment's failure texts.

A failed pre-flight, startup script or component reports the output of the environment's
own code after Hangar's one-line summary ("startup script exited with code 7; its last
output:" and the output on the lines after it). That output is for the roles that may change
those inputs (Op and Admin, NEEDS["update"]); Viewer and User see each failure text's first
line, Hangar's summary, and are told where the rest is. Stored texts are already redacted of
known secret values (hangar.domain.redaction) for every role.
"""
from __future__ import annotations

from hangar.domain.access import NEEDS, Role
from hangar.schemas.public import EnvironmentPublic, EventPublic, RevisionPublic

WITHHELD = " [the output that follows is shown to Op and Admin]"


def sees_output(role: Role) -> bool:
    return role >= NEEDS["update"]


def summary(text: str | None) -> str | None:
    """The text's first line, marked when lines were held back."""
    if text is None or "\n" not in text:
        return text
    return text.split("\n", 1)[0] + WITHHELD


def environment_for(env: EnvironmentPublic, role: Role) -> EnvironmentPublic:
    if sees_output(role):
        return env
    last_update = env.last_update
    if last_update is not None and last_update.error is not None:
        error = last_update.error.model_copy(update={"message": summary(last_update.error.message)})
        last_update = last_update.model_copy(update={"error": error})
    return env.model_copy(update={"status_reason": summary(env.status_reason), "last_update": last_update})


def events_for(events: list[EventPublic], role: Role) -> list[EventPublic]:
    if sees_output(role):
        return events
    return [event.model_copy(update={"reason": summary(event.reason)}) for event in events]


def history_for(revisions: list[RevisionPublic], role: Role) -> list[RevisionPublic]:
    if sees_output(role):
        return revisions
    return [revision.model_copy(update={"error": summary(revision.error)}) for revision in revisions]
