"""The audit log stays bounded against callers with no key, and keeps entries for the
retention the settings give."""
from __future__ import annotations

from datetime import timedelta

import pytest

from hangar.domain import audit
from hangar.domain.access import Principal, Role
from hangar.store.models import AuditRow, utcnow


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(audit, "_clock", fake)
    return fake


def refused(ctx, path: str, source: str = "10.0.0.9") -> None:
    audit.record(ctx, principal=None, action=f"POST {path}", target=None, outcome="error", status_code=401,
                 source=source)


def test_refusals_from_one_source_in_a_minute_make_one_entry(ctx, clock):
    long_path = "/nonexistent/" + "x" * 4000
    for _ in range(500):
        refused(ctx, long_path)
    entries = audit.read_audit(ctx, limit=1000)
    assert len(entries) == 1
    (entry,) = entries
    assert entry.principal == "anonymous" and len(entry.action) <= audit.ACTION_CHARS
    assert len(entry.target) <= audit.TARGET_CHARS and "499 more refused calls from 10.0.0.9" in entry.target

    refused(ctx, "/other", source="10.0.0.10")  # another source: an entry of its own
    clock.now += 60  # the next minute: a new entry for the first source
    refused(ctx, "/again")
    assert len(audit.read_audit(ctx, limit=1000)) == 3


def test_calls_with_a_key_are_each_recorded(ctx, clock):
    caller = Principal(id="HKIAEXAMPLE", role=Role.Op)
    for _ in range(3):
        audit.record(ctx, principal=caller, action="environments.update", target="e1", outcome="success",
                     status_code=202, source="10.0.0.9")
    assert [e.principal for e in audit.read_audit(ctx)] == ["HKIAEXAMPLE"] * 3


def test_entries_older_than_the_retention_go(ctx, clock):
    with ctx.store.session() as session:
        session.add(AuditRow(at=utcnow() - timedelta(days=ctx.settings.audit_retention_days + 1), principal="old",
                             role="Admin", action="keys.create", target=None, outcome="success", status_code=201))
        session.add(AuditRow(at=utcnow() - timedelta(days=ctx.settings.audit_retention_days - 1), principal="kept",
                             role="Admin", action="keys.create", target=None, outcome="success", status_code=201))
    refused(ctx, "/x")
    assert {e.principal for e in audit.read_audit(ctx)} == {"kept", "anonymous"}
