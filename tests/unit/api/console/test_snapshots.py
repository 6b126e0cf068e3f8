"""The console's snapshots page over a real store: the list, taking one, restoring into the
environment and cloning into a new one, each answered with the overview where its progress shows;
roles as the API's, refusals and a missing CSRF token change nothing, a clone's name is checked at
its field, and an environment that does not exist is the 404 page.

Archives are written with the real archive writer (a stand-in database dump, as no PostgreSQL runs
here), so a restore verifies them exactly as it would any other."""
from __future__ import annotations

from pathlib import Path

import pytest

from hangar.domain import environments, queries, snapshots
from hangar.domain.access import Role
from hangar.domain.status import Status
from hangar.runtime import snapshot_archive
from hangar.schemas.spec import EnvironmentCreate
from hangar.store import repository
from hangar.store import snapshots as snapshot_store
from hangar.store.models import OperationRow, SnapshotRow, utcnow
from tests.unit.api.console.conftest import csrf
from tests.unit.api.console.pagecheck import assert_labelled, field_error, post_forms

PAGE = "/console/environments/sales/snapshots"


def make_env(ctx, tmp_path: Path, name: str = "sales", *, available: bool = True) -> None:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "hello.py").write_text("# a DAG\n")
    environments.create_environment(ctx, request=EnvironmentCreate(name=name, dags=str(dags)))
    if available:
        with ctx.store.session() as session:
            env = repository.get_live(session, name)
            env.status, env.running_revision = Status.AVAILABLE, 1
            repository.close_operations(session, env.id, step="done")  # as the create's end does


def make_snapshot(ctx, tmp_path: Path, name: str = "sales") -> str:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        env_id, revision = env.id, env.revision
        spec = repository.get_spec(session, env_id, revision)
    snapshot_id = repository.new_id()
    dump = tmp_path / f"{snapshot_id}.dump"
    dump.write_bytes(b"a stand-in for pg_dump's output")
    created = utcnow()
    manifest = snapshot_archive.Manifest(snapshot_id=snapshot_id, environment=name, environment_id=env_id,
                                         revision=revision, kind=snapshots.MANUAL, airflow_version=spec.airflow_version,
                                         created_at=created, spec=spec.model_dump(mode="json"))
    written = snapshot_archive.write_archive(ctx.settings.snapshots_dir / env_id / f"{snapshot_id}.tar.gz",
                                             manifest=manifest, db_dump=dump, dags=Path(spec.dags), plugins=None)
    with ctx.store.session() as session:
        snapshot_store.add(session, ctx.envelope, fernet_key="fernet-1", row=SnapshotRow(
            id=snapshot_id, environment_id=env_id, environment_name=name, revision=revision, kind=snapshots.MANUAL,
            created_at=created, path=str(written.path), size=written.size, sha256=written.sha256,
            airflow_version=spec.airflow_version))
    return snapshot_id


def state(ctx, name: str = "sales") -> tuple[str, int, int]:
    """(status, revision, operations): what any snapshot action changes."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        return env.status, env.revision, session.query(OperationRow).filter_by(environment_id=env.id).count()


@pytest.fixture
def snap(ctx, tmp_path) -> str:
    make_env(ctx, tmp_path)
    return make_snapshot(ctx, tmp_path)


def test_a_viewer_sees_the_snapshots_without_controls(signed_in, snap):
    client = signed_in(Role.Viewer)
    answer = client.get(PAGE)
    assert answer.status_code == 200
    assert f'data-snapshot="{snap}"' in answer.text and "manual" in answer.text and "<time datetime=" in answer.text
    assert 'href="/console/environments/sales/snapshots" aria-current="page"' in answer.text  # the tab
    assert [action for action in post_forms(answer.text) if action != "/console/sign-out"] == []


def test_an_op_may_take_and_restore_but_only_an_admin_clones(signed_in, snap):
    op = signed_in(Role.Op).get(PAGE).text
    assert "Take snapshot" in op and f"/snapshots/{snap}/restore" in op and f"/snapshots/{snap}/clone" not in op
    admin = signed_in(Role.Admin).get(PAGE).text
    assert f"/snapshots/{snap}/clone" in admin
    assert_labelled(admin)


def test_take_a_snapshot_then_see_the_overview(signed_in, ctx, snap):
    client = signed_in(Role.Op)
    taken = client.post(PAGE, data={"csrf": csrf(client)}, follow_redirects=False)
    assert taken.status_code == 303 and taken.headers["location"] == "/console/environments/sales"
    assert queries.get_environment(ctx, name="sales").status == Status.CREATING_SNAPSHOT
    busy = client.post(PAGE, data={"csrf": csrf(client)})  # not AVAILABLE now: said on the error page
    assert busy.status_code == 409 and "CREATING_SNAPSHOT" in busy.text


def test_restore_into_the_environment(signed_in, ctx, snap):
    client = signed_in(Role.Op)
    done = client.post(f"{PAGE}/{snap}/restore", data={"csrf": csrf(client)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/environments/sales"
    status, revision, _ = state(ctx)
    assert (status, revision) == (Status.UPDATING, 2)
    htmx = client.post(f"{PAGE}/{snap}/restore", data={"csrf": csrf(client)}, headers={"HX-Request": "true"})
    assert htmx.status_code == 409 and "<html" not in htmx.text  # UPDATING now: the fragment says so


def test_clone_into_a_new_environment(signed_in, ctx, snap):
    client = signed_in(Role.Admin)
    done = client.post(f"{PAGE}/{snap}/clone", data={"csrf": csrf(client), "into": "sales-copy"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/environments/sales-copy"
    assert queries.get_environment(ctx, name="sales-copy").status == Status.CREATING
    again = client.post(f"{PAGE}/{snap}/clone", data={"csrf": csrf(client), "into": "sales-copy"})
    assert again.status_code == 409 and "already exists" in field_error(again.text, "clone-1")


@pytest.mark.parametrize("into, words", [("", "enter the new environment's name"), ("2fast", "starting with a letter"),
                                         ("x" * 81, "too long")])
def test_a_bad_clone_name_is_said_at_its_field_and_nothing_is_made(signed_in, ctx, snap, into, words):
    client = signed_in(Role.Admin)
    answer = client.post(f"{PAGE}/{snap}/clone", data={"csrf": csrf(client), "into": into})
    assert answer.status_code == 400
    assert words in field_error(answer.text, "clone-1")
    if into:
        assert f'value="{into}"' in answer.text
    assert [env.name for env in queries.list_environments(ctx)] == ["sales"]
    assert_labelled(answer.text)


@pytest.mark.parametrize("role", [Role.Viewer, Role.User])
def test_below_op_every_action_is_refused_and_nothing_changes(signed_in, ctx, snap, role):
    client = signed_in(role)
    token = csrf(client)
    before = state(ctx)
    assert client.post(PAGE, data={"csrf": token}).status_code == 403
    assert client.post(f"{PAGE}/{snap}/restore", data={"csrf": token}).status_code == 403
    assert client.post(f"{PAGE}/{snap}/clone", data={"csrf": token, "into": "copy"}).status_code == 403
    assert state(ctx) == before and [env.name for env in queries.list_environments(ctx)] == ["sales"]


def test_an_op_may_not_clone(signed_in, ctx, snap):
    client = signed_in(Role.Op)
    refused = client.post(f"{PAGE}/{snap}/clone", data={"csrf": csrf(client), "into": "copy"})
    assert refused.status_code == 403 and "needs Admin" in refused.text
    assert [env.name for env in queries.list_environments(ctx)] == ["sales"]


def test_without_the_csrf_token_nothing_changes(signed_in, ctx, snap):
    client = signed_in(Role.Admin)
    before = state(ctx)
    assert client.post(PAGE, data={}).status_code == 403
    assert client.post(f"{PAGE}/{snap}/restore", data={"csrf": "forged"}).status_code == 403
    assert client.post(f"{PAGE}/{snap}/clone", data={"into": "copy"}).status_code == 403
    assert state(ctx) == before and [env.name for env in queries.list_environments(ctx)] == ["sales"]


def test_a_missing_environment_or_snapshot_is_the_404_page(signed_in, ctx, snap):
    client = signed_in(Role.Admin)
    missing = client.get("/console/environments/nowhere/snapshots")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    token = csrf(client)
    assert client.post("/console/environments/nowhere/snapshots", data={"csrf": token}).status_code == 404
    assert client.post(f"/console/environments/nowhere/snapshots/{snap}/restore", data={"csrf": token}).status_code == 404
    assert client.post("/console/environments/nowhere/snapshots/x/clone",
                       data={"csrf": token, "into": "bad name"}).status_code == 404
    assert client.post(f"{PAGE}/no-such-snapshot/restore", data={"csrf": token}).status_code == 404
    for into in ("copy", "bad name"):
        assert client.post(f"{PAGE}/no-such-snapshot/clone", data={"csrf": token, "into": into}).status_code == 404
    assert state(ctx)[0] == Status.AVAILABLE


def test_an_environment_not_available_says_when_a_snapshot_can_be_taken(signed_in, ctx, tmp_path):
    make_env(ctx, tmp_path, available=False)
    answer = signed_in(Role.Op).get(PAGE)
    assert answer.status_code == 200 and "can be taken while the environment is AVAILABLE" in answer.text
    assert "No snapshots of sales yet." in answer.text
