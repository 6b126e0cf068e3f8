"""The weekly maintenance window with a fake clock: inside and outside, :30 starts, the week's end."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hangar.context import Context
from hangar.domain import maintenance
from hangar.domain.maintenance import DEFAULT_WINDOW, WINDOW, next_window, window_contains, window_opened
from hangar.schemas.spec import Spec
from hangar.domain.status import Status
from hangar.errors import EnvironmentBusy
from hangar.store import repository
from hangar.store.models import EnvironmentRow


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A time in the week of Monday 2026-03-09 (day 0) to Sunday 2026-03-15 (day 6), UTC."""
    return datetime(2026, 3, 9 + day, hour, minute, second, tzinfo=timezone.utc)


def test_the_window_lasts_two_hours_from_its_start() -> None:
    assert WINDOW == timedelta(hours=2)
    assert not window_contains("TUE:03:00", at(1, 2, 59, 59))
    assert window_contains("TUE:03:00", at(1, 3))
    assert window_contains("TUE:03:00", at(1, 4, 59, 59))
    assert not window_contains("TUE:03:00", at(1, 5))
    # the same hour on another day is outside
    assert not window_contains("TUE:03:00", at(2, 3, 30))
    assert not window_contains("TUE:03:00", at(0, 3, 30))


def test_half_hour_starts() -> None:
    assert not window_contains("WED:14:30", at(2, 14, 29))
    assert window_contains("WED:14:30", at(2, 14, 30))
    assert window_contains("WED:14:30", at(2, 16, 29))
    assert not window_contains("WED:14:30", at(2, 16, 30))
    assert window_opened("WED:14:30", at(2, 15, 10)) == at(2, 14, 30)


def test_a_window_late_on_sunday_runs_into_monday() -> None:
    assert window_contains("SUN:23:30", at(6, 23, 45))
    monday_next_week = at(7, 1, 15)
    assert window_contains("SUN:23:30", monday_next_week)
    assert window_opened("SUN:23:30", monday_next_week) == at(6, 23, 30)
    assert window_contains("SUN:23:30", at(0, 0, 10))  # this week's Monday: last week's window
    assert window_opened("SUN:23:30", at(0, 0, 10)) == at(-1, 23, 30)
    assert not window_contains("SUN:23:30", at(0, 1, 30))
    assert not window_contains("SUN:23:30", at(6, 23, 29))


def test_an_unset_window_is_sunday_three_utc() -> None:
    assert DEFAULT_WINDOW == "SUN:03:00"
    assert window_contains(None, at(6, 3))
    assert window_contains(None, at(6, 4, 59))
    assert not window_contains(None, at(6, 5))
    assert not window_contains(None, at(5, 3, 30))
    assert next_window(None, at(2, 12)) == at(6, 3)


def test_other_time_zones_are_compared_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    assert window_contains("TUE:03:00", datetime(2026, 3, 10, 4, 30, tzinfo=berlin))
    assert not window_contains("TUE:03:00", datetime(2026, 3, 10, 3, 30, tzinfo=berlin))
    assert window_contains("TUE:03:00", datetime(2026, 3, 10, 3, 30))  # naive times are UTC


def test_next_window_is_the_one_under_way_or_the_next_to_open() -> None:
    assert next_window("TUE:03:00", at(1, 2)) == at(1, 3)
    assert next_window("TUE:03:00", at(1, 4)) == at(1, 3)  # under way
    assert next_window("TUE:03:00", at(1, 5)) == at(8, 3)  # just ended: next week
    assert next_window("MON:00:00", at(6, 23, 59)) == at(7, 0)
    assert next_window("SUN:23:30", at(7, 1, 0)) == at(6, 23, 30)  # the window into Monday is still open
    assert next_window("SUN:23:30", at(7, 1, 30)) == at(13, 23, 30)


@pytest.mark.parametrize("day", range(7))
def test_every_day_of_the_week(day: int) -> None:
    start = f"{maintenance.DAYS[day]}:10:30"
    assert window_contains(start, at(day, 11))
    assert sum(window_contains(start, at(d, 11)) for d in range(7)) == 1
    assert next_window(start, at(day, 9)) == at(day, 10, 30)


# --- the use cases over the store ---


def _environment(ctx: Context, *, window: str | None, status: Status = Status.AVAILABLE) -> str:
    env_id = repository.new_id()
    with ctx.store.session() as session:
        env = EnvironmentRow(id=env_id, name=f"e{env_id[:8]}", status=status, revision=1, running_revision=1,
                             last_good_revision=1, ports={}, database_name="x")
        session.add(env)
        session.flush()
        spec = Spec(airflow_version="3.3.2", dags="/dags", weekly_maintenance_window_start=window)
        repository.add_revision(session, env, spec, 1)
    return f"e{env_id[:8]}"


def test_a_request_is_recorded_and_shown_with_the_next_window(ctx: Context) -> None:
    name = _environment(ctx, window="TUE:03:00")
    state = maintenance.maintenance_status(ctx, name=name, now=at(0, 12))
    assert not state.pending and state.reason is None and state.last_maintenance is None
    assert state.window_start == "TUE:03:00" and not state.default_window and not state.in_window
    assert state.next_window == at(1, 3) and state.next_window_ends == at(1, 5)

    state = maintenance.request_maintenance(ctx, name=name, reason="urllib3 2.2.0 -> 2.2.3", now=at(0, 12))
    assert state.pending and state.reason == "urllib3 2.2.0 -> 2.2.3" and state.requested_at == at(0, 12)
    assert state.status == Status.AVAILABLE and state.runtime_epoch == 0
    # asking again replaces the reason and keeps when it was first asked
    state = maintenance.request_maintenance(ctx, name=name, reason="again", now=at(0, 13))
    assert state.reason == "again" and state.requested_at == at(0, 12)


def test_an_unset_window_is_shown_as_the_default(ctx: Context) -> None:
    name = _environment(ctx, window=None)
    state = maintenance.maintenance_status(ctx, name=name, now=at(6, 4))
    assert state.window_start == DEFAULT_WINDOW and state.default_window and state.in_window
    assert state.next_window == at(6, 3)


def test_an_environment_being_created_or_deleted_cannot_ask(ctx: Context) -> None:
    name = _environment(ctx, window=None, status=Status.DELETING)
    with pytest.raises(EnvironmentBusy):
        maintenance.request_maintenance(ctx, name=name, reason="x")
