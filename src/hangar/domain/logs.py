"""Reading an environment's logs: which lines, from which components, since when.

Filters are checked here, so that a bad one gets an error naming it whichever edge it came
through: an unknown component or level, a `since`/`until` that is neither a duration back from
now (30s, 10m, 2h, 7d) nor an ISO 8601 time. A component is named either exactly (worker-2)
or by its role, which takes every component of it (worker: worker-1, worker-2, ...).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hangar.context import Context
from hangar.errors import ValidationFailed
from hangar.logstore.handler import COMPONENT as CONTROL_PLANE
from hangar.logstore.lines import LEVELS, level_name, parse_time, utc_stamp
from hangar.logstore.store import LogLine, LogQuery
from hangar.store import repository

ROLES = ("api-server", "webserver", "scheduler", "dag-processor", "triggerer", "worker", "forkserver", CONTROL_PLANE)
_NUMBERED = re.compile(r"^(scheduler|worker)-\d+$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    cursor: int  # where a follower goes on from


def parse_moment(text: str, *, field: str, now: datetime | None = None) -> str:
    """A duration back from now or an ISO 8601 time, as a stored time stamp."""
    now = now or datetime.now(timezone.utc)
    match = _DURATION.match(text.strip())
    if match:
        return utc_stamp(now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))}))
    moment = parse_time(text.strip()) if re.match(r"^\d{4}-\d\d-\d\d", text.strip()) else None
    if moment is None:
        raise ValidationFailed(f"{field} {text!r} is neither a duration back from now (30s, 10m, 2h, 7d) "
                               f"nor an ISO 8601 time (2026-12-07T10:00:00Z)")
    return utc_stamp(moment)


def _component_filter(components: list[str], present: list[str]):
    if not components:
        return None
    for name in components:
        if name not in ROLES and name not in present and not _NUMBERED.match(name):
            raise ValidationFailed(f"unknown component {name!r}: components are {', '.join(ROLES)}, "
                                   f"or one by name ({', '.join(present) or 'none has logged yet'})")
    wanted = set(components)
    return lambda name: name in wanted or name.rsplit("-", 1)[0] in wanted and _NUMBERED.match(name) is not None


def build_query(present: list[str], *, components: list[str], level: str | None, since: str | None,
                until: str | None, grep: str | None, limit: int) -> LogQuery:
    wanted_level = None
    if level:
        wanted_level = level_name(level)
        if wanted_level is None:
            raise ValidationFailed(f"unknown level {level!r}: levels are {', '.join(LEVELS)}")
    return LogQuery(components=_component_filter(components, present), level=wanted_level,
                    since=parse_moment(since, field="since") if since else None,
                    until=parse_moment(until, field="until") if until else None,
                    grep=grep or None, limit=limit)


def _env_id(ctx: Context, name: str) -> str:
    with ctx.store.session() as session:
        return repository.get_live(session, name).id


def read_logs(ctx: Context, *, name: str, components: list[str], level: str | None = None,
              since: str | None = None, until: str | None = None, grep: str | None = None,
              limit: int = 1000) -> tuple[LogPage, LogQuery]:
    """The newest `limit` matching lines (oldest first), and the query, for follow_logs."""
    env_id = _env_id(ctx, name)
    query = build_query(ctx.logs.components(env_id), components=components, level=level, since=since,
                        until=until, grep=grep, limit=limit)
    lines, cursor = ctx.logs.query(env_id, query)
    return LogPage(lines=lines, cursor=cursor), query


def numbered_roles(present: list[str]) -> list[str]:
    """The roles whose components are numbered among `present` (worker for worker-1, worker-2):
    a filter by role takes every one of them."""
    return sorted({name.rsplit("-", 1)[0] for name in present if _NUMBERED.match(name)})


def log_components(ctx: Context, *, name: str) -> list[str]:
    """The components that have logged, by name (scheduler, worker-1, ...)."""
    return ctx.logs.components(_env_id(ctx, name))


def read_logs_after(ctx: Context, *, name: str, cursor: int, components: list[str], level: str | None = None,
                    since: str | None = None, until: str | None = None, grep: str | None = None) -> LogPage:
    """The matching lines added after `cursor` (a LogPage's), without waiting, and the cursor to go
    on from: what a page that polls every few seconds asks for. Nothing is missed or repeated, as
    with follow_logs. A cursor past the store's newest (the control plane has restarted since it
    was given) takes every line the store still holds in memory: they are all newer than it."""
    env_id = _env_id(ctx, name)
    query = build_query(ctx.logs.components(env_id), components=components, level=level, since=since,
                        until=until, grep=grep, limit=0)
    lines, newest = ctx.logs.follow(env_id, query, cursor, timeout=0)
    if cursor > newest:
        lines, newest = ctx.logs.follow(env_id, query, 0, timeout=0)
    return LogPage(lines=lines, cursor=newest)


def follow_logs(ctx: Context, *, name: str, query: LogQuery, cursor: int, wait: float = 1.0) -> Iterator[list[LogLine]]:
    """Matching lines as they are added after `cursor`: a (possibly empty) batch every `wait`
    seconds at most, until the environment is deleted or the caller stops iterating."""
    env_id = _env_id(ctx, name)
    while True:
        lines, cursor = ctx.logs.follow(env_id, query, cursor, timeout=wait)
        if not lines and not (ctx.settings.environments_dir / env_id).is_dir():
            return
        yield lines
