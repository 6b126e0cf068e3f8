"""The audit log: who did what, when, with what outcome; never a request body or a secret.

Calls with no valid key are recorded in a bounded way, since anyone can make them: paths and
targets are cut to a fixed length, and the refusals from one source within a minute make one
entry whose target counts them. Entries older than the retention (a setting) are removed as
new ones are written, at most once a minute.
"""
from __future__ import annotations

import threading
import time
import weakref
from datetime import timedelta

from sqlalchemy import delete, select

from hangar.context import Context
from hangar.domain.access import Principal
from hangar.schemas.audit import AuditEntry
from hangar.store.models import AuditRow, utcnow

ACTION_CHARS = 64
TARGET_CHARS = 200
_SUMMARY_SECONDS = 60
_PRUNE_SECONDS = 60


class _Anonymous:
    """Per source and minute: the id of the entry that summarizes its refusals, and their count."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.entries: dict[tuple[str, int], tuple[int, int, str | None]] = {}
        self.pruned_at = 0.0

    def minute(self) -> int:
        return int(self.clock() // _SUMMARY_SECONDS)


_summaries: "weakref.WeakKeyDictionary[object, _Anonymous]" = weakref.WeakKeyDictionary()
_summaries_lock = threading.Lock()


def _state(ctx: Context) -> _Anonymous:
    """The summaries of one store (entry ids belong to its database)."""
    with _summaries_lock:
        state = _summaries.get(ctx.store)
        if state is None:
            state = _summaries[ctx.store] = _Anonymous(clock=_clock)
        return state


def _clock() -> float:
    return time.time()


def _clip(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def record(ctx: Context, *, principal: Principal | None, action: str, target: str | None, outcome: str,
           status_code: int, source: str | None = None) -> None:
    action, target = _clip(action, ACTION_CHARS), _clip(target, TARGET_CHARS)
    _anonymous = _state(ctx)
    with ctx.store.session() as session, _anonymous.lock:
        if principal is None:
            key = (source or "unknown", _anonymous.minute())
            seen = _anonymous.entries.get(key)
            if seen is not None:
                row_id, count, first = seen
                _anonymous.entries[key] = (row_id, count + 1, first)
                row = session.get(AuditRow, row_id)
                if row is not None:
                    row.target = _clip(f"{first or '-'} (and {count} more refused calls from {key[0]} this minute)",
                                       TARGET_CHARS)
                    return
        row = AuditRow(at=utcnow(), principal=principal.id if principal else "anonymous",
                       role=principal.role.name if principal else "-", action=action, target=target, outcome=outcome,
                       status_code=status_code)
        session.add(row)
        session.flush()
        if principal is None:
            minute = _anonymous.minute()
            _anonymous.entries = {k: v for k, v in _anonymous.entries.items() if k[1] >= minute - 1}
            _anonymous.entries[(source or "unknown", minute)] = (row.id, 1, target or action)
        if _anonymous.clock() - _anonymous.pruned_at >= _PRUNE_SECONDS:
            _anonymous.pruned_at = _anonymous.clock()
            cutoff = utcnow() - timedelta(days=ctx.settings.audit_retention_days)
            session.execute(delete(AuditRow).where(AuditRow.at < cutoff))


def read_audit(ctx: Context, *, limit: int = 200) -> list[AuditEntry]:
    with ctx.store.session() as session:
        rows = session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit))
        return [AuditEntry(at=r.at, principal=r.principal, role=r.role, action=r.action, target=r.target,
                           outcome=r.outcome, status_code=r.status_code) for r in rows]
