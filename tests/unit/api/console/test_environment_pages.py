"""The environments, create, overview, update-with-plan and history pages over HTTP with a real
store (the reconciler is not running, so an environment stays as the domain leaves it): what each
role may do, errors next to their fields, and nothing changed by a refused request."""
from __future__ import annotations

from pathlib import Path

import pytest

from hangar.context import Context
from hangar.domain import environments, queries
from hangar.domain.access import Role
from hangar.domain.status import Status
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate
from hangar.store import repository
from tests.unit.api.console.conftest import csrf


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


def make_env(ctx: Context, dags: Path, name: str = "alpha", *, available: bool = True) -> str:
    environments.create_environment(ctx, request=EnvironmentCreate(name=name, dags=str(dags)))
    if available:
        with ctx.store.session() as session:
            env = repository.get_live(session, name)
            env.status, env.running_revision, env.last_good_revision = Status.AVAILABLE, env.revision, env.revision
            repository.close_operations(session, env.id, step="done")
    return name


def test_the_environments_page_lists_each_with_status_and_version(signed_in, ctx, dags):
    make_env(ctx, dags, "alpha")
    make_env(ctx, dags, "beta", available=False)
    viewer = signed_in(Role.Viewer)
    page = viewer.get("/console")
    assert page.status_code == 200
    assert 'data-environment="alpha"' in page.text and 'data-environment="beta"' in page.text
    assert '<span class="badge ok">AVAILABLE</span>' in page.text and "CREATING" in page.text
    assert "3.3.2" in page.text
    assert "Create environment" not in page.text  # a Viewer has no create button ...
    assert viewer.get("/console/new").status_code == 403  # ... and no create form
    rows = viewer.get("/console/environments/rows")
    assert rows.status_code == 200 and "<html" not in rows.text and "alpha" in rows.text


def test_create_shows_each_error_next_to_its_field_and_creates_nothing(signed_in, ctx, tmp_path):
    admin = signed_in(Role.Admin)
    form = {"csrf": csrf(admin, "/console/new"), "name": "9bad name", "airflow_version": "3.3",
            "dags_kind": "folder", "dags": str(tmp_path / "missing"), "environment_class": "small",
            "executor": "local", "airflow_configuration_options": "no equals sign", "min_workers": "two"}
    answer = admin.post("/console/new", data=form)
    assert answer.status_code == 400
    assert 'id="e-airflow_configuration_options"' in answer.text and "is not key=value" in answer.text
    assert 'id="e-min_workers"' in answer.text and "is not a whole number" in answer.text
    form.update(airflow_configuration_options="core.default_task_retries=1", min_workers="1")
    answer = admin.post("/console/new", data=form)
    assert answer.status_code == 400
    assert 'id="f-name"' in answer.text and 'id="e-name"' in answer.text
    assert 'id="e-airflow_version"' in answer.text and 'id="e-dags"' in answer.text and "does not exist" in answer.text
    assert 'value="3.3"' in answer.text  # what was typed stays
    assert queries.list_environments(ctx) == []


def test_create_makes_the_environment_and_goes_to_its_progress(signed_in, ctx, dags):
    admin = signed_in(Role.Admin)
    form = {"csrf": csrf(admin, "/console/new"), "name": "fresh", "airflow_version": "3.3.2", "dags_kind": "folder",
            "dags": str(dags), "environment_class": "small", "executor": "local", "tags": "team=data",
            "environment_variables": "MY_VAR=1", "log_scheduler": "WARNING"}
    answer = admin.post("/console/new", data=form, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/environments/fresh"
    env = queries.get_environment(ctx, name="fresh")
    assert env.spec.tags == {"team": "data"} and env.spec.environment_variables == {"MY_VAR": "1"}
    assert env.spec.logging.scheduler.log_level == "WARNING"
    overview = admin.get("/console/environments/fresh")
    assert "CREATING" in overview.text and 'id="progress"' in overview.text
    again = admin.post("/console/new", data=form)
    assert again.status_code == 400 and 'id="e-name"' in again.text and "already exists" in again.text


def test_roles_not_allowed_are_refused_by_the_server_and_nothing_changes(signed_in, ctx, dags):
    make_env(ctx, dags)
    for role in (Role.Viewer, Role.User, Role.Op):
        client = signed_in(role)
        token = csrf(client)
        refused = client.post("/console/environments/alpha/delete", data={"csrf": token, "confirm": "alpha"})
        assert refused.status_code == 403 and "this call needs Admin" in refused.text
        assert client.post("/console/new", data={"csrf": token, "name": "x", "dags": str(dags)}).status_code == 403
    viewer = signed_in(Role.Viewer)
    token = csrf(viewer)
    assert viewer.post("/console/environments/alpha/update", data={"csrf": token, "action": "apply"}).status_code == 403
    assert viewer.post("/console/environments/alpha/rollback", data={"csrf": token, "to": "1"}).status_code == 403
    assert viewer.post("/console/environments/alpha/open", data={"csrf": token}).status_code == 403
    assert "Open Airflow UI" not in viewer.get("/console/environments/alpha").text
    env = queries.get_environment(ctx, name="alpha")
    assert (env.status, env.revision) == ("AVAILABLE", 1)


def test_a_form_without_its_csrf_token_changes_nothing(signed_in, ctx, dags):
    make_env(ctx, dags)
    admin = signed_in(Role.Admin)
    refused = admin.post("/console/environments/alpha/delete", data={"confirm": "alpha"})
    assert refused.status_code == 403 and "security token" in refused.text
    refused = admin.post("/console/environments/alpha/delete", data={"confirm": "alpha", "csrf": "0" * 64})
    assert refused.status_code == 403
    assert queries.get_environment(ctx, name="alpha").status == "AVAILABLE"


def test_delete_needs_the_name_typed(signed_in, ctx, dags):
    make_env(ctx, dags)
    admin = signed_in(Role.Admin)
    wrong = admin.post("/console/environments/alpha/delete", data={"csrf": csrf(admin), "confirm": "alph"})
    assert wrong.status_code == 400 and "to confirm the delete" in wrong.text
    assert queries.get_environment(ctx, name="alpha").status == "AVAILABLE"
    done = admin.post("/console/environments/alpha/delete", data={"csrf": csrf(admin), "confirm": "alpha"},
                      follow_redirects=False)
    assert done.status_code == 303
    assert queries.get_environment(ctx, name="alpha").status == "DELETING"


def test_an_environment_deleted_while_its_page_is_open_says_so_and_stops_polling(signed_in, ctx, dags):
    make_env(ctx, dags)
    viewer = signed_in(Role.Viewer)
    assert viewer.get("/console/environments/alpha").status_code == 200
    with ctx.store.session() as session:
        env = repository.get_live(session, "alpha")
        env.status = Status.DELETED
    live = viewer.get("/console/environments/alpha/status", headers={"HX-Request": "true"})
    assert live.status_code == 286 and "was deleted while this page was open" in live.text
    assert viewer.get("/console/environments/alpha/events", headers={"HX-Request": "true"}).status_code == 286
    page = viewer.get("/console/environments/alpha")
    assert page.status_code == 404 and "does not exist" in page.text


def test_update_plans_first_then_applies_the_plan(signed_in, ctx, dags):
    make_env(ctx, dags)
    op = signed_in(Role.Op)
    form_page = op.get("/console/environments/alpha/update")
    assert form_page.status_code == 200 and 'value="3.3.2"' in form_page.text and "Apply this plan" not in form_page.text
    form = {"csrf": csrf(op, "/console/environments/alpha/update"), "airflow_version": "3.3.2", "dags_kind": "folder",
            "dags": str(dags), "environment_class": "small", "executor": "local", "webserver_access_mode": "PRIVATE_ONLY",
            "airflow_configuration_options": "core.default_task_retries=2", "action": "plan"}
    unchanged = op.post("/console/environments/alpha/update", data={**form, "airflow_configuration_options": ""})
    assert unchanged.status_code == 400 and "nothing in the form differs" in unchanged.text
    planned = op.post("/console/environments/alpha/update", data=form)
    assert planned.status_code == 200 and 'id="plan"' in planned.text
    assert "airflow_configuration_options" in planned.text and "Apply this plan" in planned.text
    digest = planned.text.split('name="planned" value="', 1)[1].split('"', 1)[0]
    assert queries.get_environment(ctx, name="alpha").revision == 1  # a plan changes nothing
    edited = op.post("/console/environments/alpha/update",
                     data={**form, "action": "apply", "planned": digest, "airflow_configuration_options": "core.x=1"})
    assert edited.status_code == 200 and 'id="plan"' in edited.text  # changed after planning: planned again
    assert queries.get_environment(ctx, name="alpha").revision == 1
    applied = op.post("/console/environments/alpha/update", data={**form, "action": "apply", "planned": digest},
                      follow_redirects=False)
    assert applied.status_code == 303, applied.text
    env = queries.get_environment(ctx, name="alpha")
    assert env.revision == 2 and env.spec.airflow_configuration_options == {"core.default_task_retries": "2"}
    history = op.get("/console/environments/alpha/history")
    assert 'data-revision="2"' in history.text and 'data-revision="1"' in history.text


def test_history_rolls_back_to_a_revision(signed_in, ctx, dags):
    make_env(ctx, dags)
    environments.update_environment(ctx, name="alpha", request=EnvironmentUpdate(
        tags={"a": "b"}, airflow_configuration_options={"core.x": "1"}))
    with ctx.store.session() as session:
        env = repository.get_live(session, "alpha")
        env.status, env.running_revision, env.last_good_revision = Status.AVAILABLE, 2, 2
        repository.close_operations(session, env.id, step="done")
    op = signed_in(Role.Op)
    page = op.get("/console/environments/alpha/history")
    assert "Roll back to this revision" in page.text
    bad = op.post("/console/environments/alpha/rollback", data={"csrf": csrf(op), "to": "x"})
    assert bad.status_code == 400 and "not a revision number" in bad.text
    done = op.post("/console/environments/alpha/rollback", data={"csrf": csrf(op), "to": "1"}, follow_redirects=False)
    assert done.status_code == 303
    env = queries.get_environment(ctx, name="alpha")
    assert (env.status, env.revision, env.spec.airflow_configuration_options) == ("UPDATING", 3, {})


def test_a_failed_update_shows_its_cause_and_that_the_previous_revision_still_serves(signed_in, ctx, dags):
    make_env(ctx, dags)
    environments.update_environment(ctx, name="alpha", request=EnvironmentUpdate(requirements="nosuchpackage==1"))
    with ctx.store.session() as session:  # as a failed runtime build leaves it
        env = repository.get_live(session, "alpha")
        env.status, env.running_revision = Status.AVAILABLE, 1
        env.last_update_status, env.last_update_revision = "FAILED", 2
        env.last_update_error_code = "RUNTIME_BUILD_FAILED"
        env.last_update_error_message = "pip: No solution found when resolving dependencies: nosuchpackage==1"
        repository.close_operations(session, env.id, step="failed")
    viewer = signed_in(Role.Viewer)
    status = viewer.get("/console/environments/alpha/status", headers={"HX-Request": "true"})
    assert 'id="last-error"' in status.text and "Revision 2 failed" in status.text
    assert "nosuchpackage" in status.text and "Revision 1 still serves." in status.text
    assert "FAILED" in viewer.get("/console").text


def test_create_from_a_git_repository_with_its_errors_by_field(signed_in, ctx):
    admin = signed_in(Role.Admin)
    form = {"csrf": csrf(admin, "/console/new"), "name": "fromgit", "airflow_version": "3.3.2", "dags_kind": "git",
            "git_url": "file:///etc", "environment_class": "small", "executor": "local"}
    refused = admin.post("/console/new", data=form)
    assert refused.status_code == 400 and 'id="e-git_url"' in refused.text
    refused = admin.post("/console/new", data={**form, "git_url": "https://git.example/dags.git",
                                               "git_credential": "missing"})
    assert refused.status_code == 400 and 'id="e-git_credential"' in refused.text and "does not exist" in refused.text
    assert queries.list_environments(ctx) == []
    done = admin.post("/console/new", data={**form, "git_url": "https://git.example/dags.git", "git_ref": "prod",
                                            "git_subdir": "dags"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    git = queries.get_environment(ctx, name="fromgit").spec.git
    assert (git.url, git.ref, git.subdir) == ("https://git.example/dags.git", "prod", "dags")
    page = admin.get("/console/environments/fromgit/update")
    assert 'value="git" checked' in page.text and 'value="prod"' in page.text
