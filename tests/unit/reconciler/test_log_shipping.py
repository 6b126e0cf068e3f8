"""Log shipping from components' raw output to the stored logs: stamped lines, secrets cut
out, raw files kept small, no line lost or repeated across a control-plane restart, links in
an environment's folder never followed, and the control plane's own lines filed per environment."""
from __future__ import annotations

import logging

import pytest

from hangar.domain import environments
from hangar.logstore.handler import EnvironmentLogHandler, about
from hangar.logstore.store import LogQuery
from hangar.reconciler.loops import log_shipping
from hangar.reconciler.loops.log_shipping import Shipper
from hangar.schemas.spec import EnvironmentCreate
from hangar.store import repository


@pytest.fixture
def env(ctx, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    environments.create_environment(ctx, request=EnvironmentCreate(name="sales", dags=str(dags)))
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "sales").id
    (ctx.settings.environments_dir / env_id / "logs" / "components").mkdir(parents=True)
    return env_id


def raw(ctx, env_id, component="scheduler"):
    return ctx.settings.environments_dir / env_id / "logs" / "components" / f"{component}.log"


def stored(ctx, env_id, **query):
    return [(line.component, line.level, line.message) for line in ctx.logs.query(env_id, LogQuery(**query))[0]]


def test_whole_lines_are_shipped_with_their_time_and_level(ctx, env):
    with raw(ctx, env).open("a") as out:
        out.write("2026-12-07T10:00:00.000001Z [info     ] Starting the scheduler [x] loc=a.py:1\n"
                  "[2026-12-07T10:00:01.000+0000] {job.py:3} ERROR - it broke\nTraceback (most rec")
    shipper = Shipper(ctx)
    shipper.ship_all()
    assert stored(ctx, env) == [("scheduler", "INFO", "Starting the scheduler [x] loc=a.py:1"),
                                ("scheduler", "ERROR", "{job.py:3} it broke")]
    with raw(ctx, env).open("a") as out:
        out.write("ent call last):\n")
    shipper.ship_all()
    assert stored(ctx, env)[-1] == ("scheduler", "ERROR", "Traceback (most recent call last):")


def test_the_environments_secrets_never_reach_the_stored_logs(ctx, env):
    with ctx.store.session() as session:
        secrets = repository.get_secrets(session, ctx.envelope, env_id=env)
    assert secrets
    with raw(ctx, env, "api-server").open("a") as out:
        for value in secrets.values():
            out.write(f"2026-12-07T10:00:00.000001Z [warning  ] printed {value} by mistake\n")
    Shipper(ctx).ship_all()
    lines = stored(ctx, env)
    assert len(lines) == len(secrets)
    text = "\n".join(message for *_, message in lines)
    assert "[redacted]" in text and not any(value in text for value in secrets.values())


def test_raw_files_are_cut_back_and_a_restart_neither_loses_nor_repeats(ctx, env, monkeypatch):
    monkeypatch.setattr(log_shipping, "RAW_KEEP_BYTES", 100)
    with raw(ctx, env).open("a") as out:
        out.writelines(f"2026-12-07T10:00:{i:02d}.000000Z [info     ] line {i}\n" for i in range(5))
    Shipper(ctx).ship_all()
    assert raw(ctx, env).stat().st_size == 0  # all of it shipped, so the raw file starts again
    with raw(ctx, env).open("a") as out:
        out.write("2026-12-07T10:00:10.000000Z [info     ] after the cut\n")
    Shipper(ctx).ship_all()  # a new control plane: goes on from the offset kept in the state folder
    Shipper(ctx).ship_all()
    assert [m for *_, m in stored(ctx, env)] == [f"line {i}" for i in range(5)] + ["after the cut"]


def test_a_link_in_place_of_a_log_is_not_followed(ctx, env, tmp_path):
    private = tmp_path / "control-plane-secret.txt"
    private.write_text("2026-12-07T10:00:00.000000Z [info     ] the control plane's private file\n")
    raw(ctx, env).symlink_to(private)
    Shipper(ctx).ship_all()
    assert stored(ctx, env) == []
    assert private.read_text().startswith("2026")  # neither read nor cut


def test_control_plane_lines_about_an_environment_are_filed_under_it(ctx, env):
    handler = EnvironmentLogHandler(ctx.logs, knows=lambda env_id: env_id == env)
    logger = logging.getLogger("hangar.test_log_shipping")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.warning("scheduler is BACKOFF: exited with code -9", **about(env))
        logger.info("not about any environment")
        logger.info("about an environment of another control plane", **about("elsewhere"))
    finally:
        logger.removeHandler(handler)
    assert stored(ctx, env) == [("hangar", "WARNING", "scheduler is BACKOFF: exited with code -9")]
    assert ctx.logs.components("elsewhere") == []
