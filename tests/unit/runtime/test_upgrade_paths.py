"""plan_upgrade: which airflow_version changes Hangar applies in place, and how it refuses the rest."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import errors as api_errors
from hangar.errors import UnsupportedUpgradePath, ValidationFailed
from hangar.runtime.upgrade import UpgradePath, plan_upgrade


def plan(current: str, target: str, *, allow_downgrade: bool = False) -> UpgradePath:
    return plan_upgrade(current=current, target=target, allow_downgrade=allow_downgrade)


@pytest.mark.parametrize(
    ("current", "target", "kind"),
    [
        ("3.3.0", "3.3.2", "patch"),
        ("2.11.0", "2.11.2", "patch"),
        ("3.2.2", "3.3.2", "minor"),
        ("3.0.0", "3.3.2", "minor"),
        ("2.11.2", "3.3.2", "major"),
        ("2.11.0", "3.0.0", "major"),
    ],
)
def test_upgrades_migrate_after_a_snapshot(current, target, kind):
    path = plan(current, target)
    assert path.kind == kind
    assert path.needs_migration and path.needs_snapshot
    assert current in path.description and target in path.description


@pytest.mark.parametrize("allow_downgrade", [False, True])
def test_same_version_is_nothing_to_do(allow_downgrade):
    path = plan("3.3.2", "3.3.2", allow_downgrade=allow_downgrade)
    assert path == UpgradePath(kind="none", needs_migration=False, needs_snapshot=False,
                               description="Airflow stays at 3.3.2")


@pytest.mark.parametrize(("current", "target"), [("3.3.2", "3.2.2"), ("3.3.2", "3.3.0"), ("3.3.2", "2.11.2"),
                                                 ("2.11.2", "2.11.0")])
def test_downgrade_is_refused_unless_allowed(current, target):
    with pytest.raises(UnsupportedUpgradePath) as caught:
        plan(current, target)
    message = caught.value.message
    assert current in message and target in message
    assert "older" in message and "allow_downgrade" in message


@pytest.mark.parametrize(("current", "target"), [("3.3.2", "3.2.2"), ("3.3.2", "3.3.0"), ("2.11.2", "2.11.0")])
def test_downgrade_within_a_major_version_is_allowed_with_allow_downgrade(current, target):
    path = plan(current, target, allow_downgrade=True)
    assert path.kind == "downgrade"
    assert path.needs_migration and path.needs_snapshot
    assert f"--to-version {target}" in path.description
    assert "upgraded from Airflow 2" not in path.description


def test_airflow_3_to_2_is_allowed_with_allow_downgrade_and_says_what_it_needs():
    path = plan("3.3.2", "2.11.2", allow_downgrade=True)
    assert path.kind == "downgrade" and path.needs_migration and path.needs_snapshot
    assert "upgraded from Airflow 2" in path.description


@pytest.mark.parametrize(
    ("current", "target", "unsupported"),
    [
        ("2.10.5", "3.3.2", "2.10.5"),
        ("2.7.0", "2.11.2", "2.7.0"),
        ("3.3.2", "2.10.3", "2.10.3"),
        ("2.11.2", "2.10.5", "2.10.5"),
        ("3.3.2", "4.0.0", "4.0.0"),
        ("1.10.15", "2.11.2", "1.10.15"),
    ],
)
@pytest.mark.parametrize("allow_downgrade", [False, True])
def test_versions_hangar_does_not_run_are_refused(current, target, unsupported, allow_downgrade):
    with pytest.raises(UnsupportedUpgradePath) as caught:
        plan(current, target, allow_downgrade=allow_downgrade)
    message = caught.value.message
    assert current in message and target in message
    assert f"not {unsupported}" in message and "2.11.x or 3.x" in message


def test_a_version_that_does_not_parse_is_refused():
    with pytest.raises(UnsupportedUpgradePath, match="3.3.2 to latest.*like 3.3.2"):
        plan("3.3.2", "latest")


def test_refusal_is_a_validation_error_with_its_own_code():
    error = UnsupportedUpgradePath(current="3.3.2", target="3.2.2", reason="why", instead="what instead")
    assert isinstance(error, ValidationFailed)
    assert error.code == "UNSUPPORTED_UPGRADE_PATH"
    assert error.message == "cannot change airflow_version from 3.3.2 to 3.2.2: why; what instead"


def test_the_api_answers_400_with_the_code_natively_and_validationexception_on_mwaa():
    app = FastAPI()
    api_errors.install(app)

    def refuse() -> None:
        plan("3.3.2", "3.2.2")

    app.add_api_route("/api/v1/environments/x", refuse, methods=["PATCH"])
    app.add_api_route("/environments/x", refuse, methods=["PATCH"])
    client = TestClient(app)

    native = client.patch("/api/v1/environments/x")
    assert native.status_code == 400
    assert native.json()["error"]["code"] == "UNSUPPORTED_UPGRADE_PATH"
    assert "allow_downgrade" in native.json()["error"]["message"]

    mwaa = client.patch("/environments/x")
    assert mwaa.status_code == 400
    assert mwaa.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "3.3.2" in mwaa.json()["message"]
