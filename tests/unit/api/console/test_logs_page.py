"""The logs page over HTTP with a real store: the form's filters, each bad filter named next to
its field (400), a missing environment's 404, and the live tail's fragment, which gives only the
lines added after its cursor and a poller that goes on from the new one."""
from __future__ import annotations

import re
from html import unescape

import pytest

from hangar.domain import logs
from hangar.domain.access import Role
from hangar.store import repository
from tests.unit.domain.test_workers import make_env

T = "2026-12-07T10:00:0{}.000000Z"
URL = "/console/environments/sales/logs"
LINE = re.compile(r'<span class="line lvl-(\w+)">.*?<span class="component">([^<]*)</span> '
                  r'<span class="level">\w+</span> (.*?)</span>', re.S)
AFTER = re.compile(r'hx-get="(/console/environments/sales/logs/lines\?[^"]*)"')


@pytest.fixture
def env_id(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales", executor="celery")
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "sales").id
    ctx.logs.append(env_id, "scheduler", [(T.format(1), "INFO", "scheduler started"), (T.format(3), "ERROR", "boom <b>")])
    ctx.logs.append(env_id, "worker-1", [(T.format(2), "WARNING", "slow")])
    ctx.logs.append(env_id, "worker-2", [(T.format(4), "DEBUG", "idle")])
    return env_id


def shown(html: str) -> list[tuple[str, str, str]]:
    return [(level, component, unescape(message)) for level, component, message in LINE.findall(html)]


def test_the_page_shows_every_line_with_its_time_component_and_level(signed_in, env_id):
    answer = signed_in(Role.Viewer).get(URL)
    assert answer.status_code == 200
    assert shown(answer.text) == [("INFO", "scheduler", "scheduler started"), ("WARNING", "worker-1", "slow"),
                                  ("ERROR", "scheduler", "boom <b>"), ("DEBUG", "worker-2", "idle")]
    assert "boom &lt;b&gt;" in answer.text  # a line's text is text, never markup
    assert '<time datetime="2026-12-07T10:00:01Z"' in answer.text
    assert '<pre class="logs" id="log-lines"' in answer.text
    assert '<a href="/console/environments/sales/logs" aria-current="page">Logs</a>' in answer.text
    for field in ("component", "level", "since", "until", "grep", "tail", "live"):
        assert f'<label for="{field}">' in answer.text and f'id="{field}"' in answer.text
    # the components present, and a role with numbered ones
    for value in ("scheduler", "worker-1", "worker-2", "worker"):
        assert f'<option value="{value}">' in answer.text
    assert "hx-trigger" not in answer.text  # no live tail unless asked for


@pytest.mark.parametrize("params, expected", [
    ({"component": "worker"}, ["slow", "idle"]),
    ({"component": ["scheduler", "worker-2"]}, ["scheduler started", "boom <b>", "idle"]),
    ({"level": "warning"}, ["slow", "boom <b>"]),
    ({"grep": "boo"}, ["boom <b>"]),
    ({"since": "2026-12-07T10:00:02Z", "until": "2026-12-07T10:00:03Z"}, ["slow", "boom <b>"]),
    ({"tail": "2"}, ["boom <b>", "idle"]),
    ({"since": "10m"}, []),  # the lines are from long ago
])
def test_the_filters_are_the_apis(signed_in, env_id, params, expected):
    answer = signed_in(Role.Viewer).get(URL, params=params)
    assert answer.status_code == 200
    assert [message for _, _, message in shown(answer.text)] == expected
    if not expected:
        assert "No line matches." in answer.text


def test_the_form_keeps_what_was_asked(signed_in, env_id):
    text = signed_in(Role.Viewer).get(URL, params={"component": "worker", "level": "ERROR", "since": "1h",
                                                   "grep": "a b", "tail": "7"}).text
    assert '<option value="worker" selected>' in text and '<option value="ERROR" selected>' in text
    assert 'id="since" name="since" type="text" value="1h"' in text
    assert 'value="a b"' in text and 'value="7"' in text


@pytest.mark.parametrize("params, field, says", [
    ({"level": "LOUD"}, "level", "unknown level 'LOUD': levels are DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ({"component": "sheduler"}, "component", "unknown component 'sheduler'"),
    ({"since": "yesterday"}, "since", "since 'yesterday' is neither a duration back from now"),
    ({"until": "10 minutes"}, "until", "until '10 minutes' is neither a duration back from now"),
    ({"tail": "lots"}, "tail", "tail 'lots' is not a whole number of lines from 1 to 10,000"),
    ({"tail": "0"}, "tail", "is not a whole number of lines"),
])
def test_a_bad_filter_is_named_next_to_its_field(signed_in, env_id, params, field, says):
    answer = signed_in(Role.Viewer).get(URL, params=params)
    assert answer.status_code == 400
    error = re.search(rf'<div class="field-error" id="{field}-error">([^<]*)</div>', answer.text)
    assert error and says in unescape(error[1])
    assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error"[^>]*aria-invalid="true"', answer.text)
    assert shown(answer.text) == [] and 'id="log-lines"' not in answer.text


def test_every_bad_filter_is_named_at_once(signed_in, env_id):
    answer = signed_in(Role.Viewer).get(URL, params={"level": "LOUD", "since": "soon", "component": "nope"})
    assert answer.status_code == 400
    assert {"level-error", "since-error", "component-error"} <= set(re.findall(r'id="(\w+-error)"', answer.text))
    assert "until-error" not in answer.text


def test_a_missing_environment_is_the_404_page(signed_in, env_id):
    client = signed_in(Role.Viewer)
    answer = client.get("/console/environments/nope/logs")
    assert answer.status_code == 404 and "environment &#39;nope&#39; does not exist" in answer.text
    assert "<h1>Not found</h1>" in answer.text
    assert client.get("/console/environments/nope/logs/lines", params={"after": 0}).status_code == 404


def test_the_live_tail_appends_only_the_lines_after_its_cursor(ctx, signed_in, env_id):
    client = signed_in(Role.Viewer)
    page = client.get(URL, params={"component": "scheduler", "level": "INFO", "live": "1"})
    assert page.status_code == 200 and 'role="log"' in page.text
    poller = re.search(r'<div id="log-follow"[^>]*>', page.text)[0]
    assert 'hx-trigger="every 2s"' in poller and 'hx-target="#log-lines"' in poller
    assert 'hx-swap="beforeend scroll:bottom"' in poller
    first = unescape(AFTER.search(poller)[1])
    assert "after=4" in first and "component=scheduler" in first and "level=INFO" in first

    nothing = client.get(first, headers={"HX-Request": "true"})
    assert nothing.status_code == 200 and shown(nothing.text) == []
    assert unescape(AFTER.search(nothing.text)[1]) == first  # nothing new: the same cursor

    ctx.logs.append(env_id, "scheduler", [(T.format(5), "INFO", "next"), (T.format(6), "DEBUG", "quiet")])
    ctx.logs.append(env_id, "worker-1", [(T.format(7), "ERROR", "not the scheduler")])
    ctx.logs.append(env_id, "scheduler", [(T.format(8), "ERROR", "then this")])
    more = client.get(first, headers={"HX-Request": "true"})
    assert shown(more.text) == [("INFO", "scheduler", "next"), ("ERROR", "scheduler", "then this")]
    assert 'hx-swap-oob="true"' in more.text
    second = unescape(AFTER.search(more.text)[1])
    assert "after=8" in second and "component=scheduler" in second
    assert shown(client.get(second, headers={"HX-Request": "true"}).text) == []  # none repeated

    ctx.logs.append(env_id, "scheduler", [(T.format(9), "INFO", "last")])
    assert shown(client.get(second, headers={"HX-Request": "true"}).text) == [("INFO", "scheduler", "last")]


def test_the_lines_after_a_cursor_come_without_waiting(ctx, env_id):
    page, _ = logs.read_logs(ctx, name="sales", components=[], limit=10)
    assert page.cursor == 4
    ctx.logs.append(env_id, "worker-1", [(T.format(5), "INFO", "new")])
    after = logs.read_logs_after(ctx, name="sales", cursor=page.cursor, components=["worker"])
    assert [line.message for line in after.lines] == ["new"] and after.cursor == 5
    assert logs.read_logs_after(ctx, name="sales", cursor=5, components=[]).lines == []
    # a cursor from before the control plane restarted (past the newest) takes what the store holds
    restarted = logs.read_logs_after(ctx, name="sales", cursor=999, components=[], level="INFO")
    assert [line.message for line in restarted.lines] == ["scheduler started", "boom <b>", "slow", "new"]  # as added
    assert restarted.cursor == 5
    with pytest.raises(Exception, match="unknown level"):
        logs.read_logs_after(ctx, name="sales", cursor=0, components=[], level="LOUD")


def test_the_live_tail_stops_when_the_environment_is_gone(ctx, signed_in, env_id):
    client = signed_in(Role.Viewer)
    with ctx.store.session() as session:
        repository.get_live(session, "sales").name = "renamed"  # as good as gone under its name
    answer = client.get("/console/environments/sales/logs/lines", params={"after": 4},
                        headers={"HX-Request": "true"})
    assert answer.status_code == 286  # htmx stops polling
    assert "Live tail stopped" in answer.text and "log-follow" not in answer.text


def test_a_live_tail_can_be_stopped_and_started_from_the_page(signed_in, env_id):
    client = signed_in(Role.Viewer)
    on = client.get(URL, params={"component": "worker", "live": "1"}).text
    assert 'href="?component=worker&amp;tail=200">Stop the live tail' in on
    off = client.get(URL, params={"component": "worker"}).text
    assert 'href="?component=worker&amp;tail=200&amp;live=1">Start a live tail' in off
