"""Fixtures every end-to-end test may share.

`plane` is the session's control plane. `shared_env` is one AVAILABLE Airflow 3.3.2
environment (LocalExecutor, the example DAGs) for tests that only need an environment
that runs a DAG; `mwaa_env` is one created through the real boto3 `mwaa` client from a
bucket. Both are asked for before the first end-to-end test and waited for where used. Tests that break, update or delete an environment create their own, and every
environment a test creates is deleted: these two at the end of the session.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import EXAMPLES, ControlPlane, free_port, wait_for
from tests.e2e.mwaa_client import mwaa

pytestmark = pytest.mark.e2e

MWAA_ENV = "mwaa1"
MWAA_BUCKET = "mwaa-test"
MWAA_ROLE = "arn:aws:iam::123456789012:role/hangar-test"
MWAA_NETWORK = {"SubnetIds": ["subnet-a", "subnet-b"], "SecurityGroupIds": ["sg-1"]}


def private_folder(prefix: str) -> Path:
    """A folder outside pytest's basetemp, which pytest makes 0700: the embedded PostgreSQL runs as
    its own user when the tests run as root, so it must be able to traverse HANGAR_HOME."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def _readable(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder == Path(tempfile.gettempdir()):
            break
        folder.chmod(folder.stat().st_mode | 0o055)
    return path


@pytest.fixture(scope="session", autouse=True)
def readable_temporary_folders() -> Iterator[None]:
    """Tests run as root, so environments run as users of their own: a test's folders (DAGs,
    plugins) must be readable by them, and pytest makes its temporary folders 0700. Every
    folder pytest makes (tmp_path, tmp_path_factory.mktemp) is opened to others for reading."""
    original = pytest.TempPathFactory.mktemp

    def mktemp(self, basename: str, numbered: bool = True) -> Path:
        return _readable(original(self, basename, numbered))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pytest.TempPathFactory, "mktemp", mktemp)
        yield


@pytest.fixture(scope="session")
def plane() -> ControlPlane:
    home = private_folder("hangar-e2e-")
    # a range of its own per test session, so that test sessions run side by side never hand out
    # a port another session's environment holds while it restarts; below Linux's ephemeral range
    # (32768-60999), where the kernel hands out the ports of outgoing connections and free_port()
    # maintenance windows and snapshot schedules are checked every second, so a test waits for a
    # check it can see, not for a loop interval
    control = ControlPlane(home=home, port=free_port(), env_port_start=10000 + (os.getpid() % 15) * 1000,
                           extra_env={"HANGAR_MAINTENANCE_WINDOW_CHECK_SECONDS": "1",
                                      "HANGAR_SNAPSHOT_SCHEDULE_CHECK_SECONDS": "1",
                                      # a held-down scheduler makes its environment UNAVAILABLE soon
                                      # (Airflow beats every 2 s in Hangar's environments)
                                      "HANGAR_HEARTBEAT_STALE_SECONDS": "12"})
    control.start()
    yield control
    control.cleanup()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    """A private copy of the example DAGs, so a test may change it."""
    folder = tmp_path / "dags"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture(scope="session", autouse=True)
def requested(request: pytest.FixtureRequest) -> set[str]:
    """The session's shared environments, asked for before the first end-to-end test when any
    collected test uses them, so they are created while the first tests run."""
    wanted = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    asked: set[str] = set()
    if "shared_env" in wanted:
        plane, dags = request.getfixturevalue("plane"), request.getfixturevalue("shared_dags")
        response = plane.api("POST", "/api/v1/environments", json={"name": "shared", "dags": str(dags)})
        assert response.status_code == 201, response.text
        asked.add("shared")
    if "mwaa_env" in wanted:
        request.getfixturevalue("mwaa_env_requested")
        asked.add(MWAA_ENV)
    return asked


@pytest.fixture(scope="session")
def shared_dags() -> Path:
    folder = private_folder("hangar-e2e-shared-dags-")
    shutil.copytree(EXAMPLES, folder / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    yield folder / "dags"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_env(plane: ControlPlane, shared_dags: Path) -> str:
    """The name of an AVAILABLE environment on `plane` that tests may run DAGs in, restart the
    control plane under or kill a component of (it must come back), but not update or delete."""
    env = plane.wait("shared")
    assert env["status"] == "AVAILABLE", env
    yield "shared"
    plane.delete("shared")


@pytest.fixture(scope="session")
def mwaa_keys(plane: ControlPlane) -> dict[str, dict]:
    """An access key per role; boto3's host prefixes (env., api.) are turned off, as for any local endpoint."""
    os.environ["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    return {role: json.loads(plane.cli("access-key", "create", "--role", role, "--json").stdout)
            for role in ("Admin", "Op", "User", "Viewer")}


@pytest.fixture(scope="session")
def mwaa_bucket(plane: ControlPlane) -> str:
    plane.cli("bucket", "create", MWAA_BUCKET)
    plane.cli("bucket", "sync", str(EXAMPLES), f"s3://{MWAA_BUCKET}/dags")
    return MWAA_BUCKET


@pytest.fixture(scope="session")
def mwaa_env_requested(plane: ControlPlane, mwaa_keys, mwaa_bucket) -> None:
    """mwaa1 asked for through boto3's CreateEnvironment with MWAA's fields (not waited for)."""
    client = mwaa(plane.url, mwaa_keys["Admin"])
    arn = client.create_environment(
        Name=MWAA_ENV, ExecutionRoleArn=MWAA_ROLE, SourceBucketArn=f"arn:aws:s3:::{mwaa_bucket}", DagS3Path="dags",
        NetworkConfiguration=MWAA_NETWORK, EnvironmentClass="mw1.small", MaxWorkers=2, AirflowVersion="3.3.2",
        WeeklyMaintenanceWindowStart="TUE:03:30", Tags={"team": "data"},
        AirflowConfigurationOptions={"core.default_task_retries": "1"},
        LoggingConfiguration={"TaskLogs": {"Enabled": True, "LogLevel": "WARNING"}},
    )["Arn"]
    assert arn.endswith(f":environment/{MWAA_ENV}")
    yield
    plane.delete(MWAA_ENV)


@pytest.fixture(scope="session")
def mwaa_env(plane: ControlPlane, mwaa_keys, mwaa_env_requested) -> str:
    """mwaa1, settled: AVAILABLE."""
    client = mwaa(plane.url, mwaa_keys["Admin"])
    env = wait_for(lambda: (e := client.get_environment(Name=MWAA_ENV)["Environment"])["Status"] != "CREATING" and e,
                   timeout=600, interval=1, what=f"{MWAA_ENV} to settle")
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
    return MWAA_ENV
