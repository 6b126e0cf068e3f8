from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.e2e.harness import EXAMPLES, ControlPlane, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def plane() -> ControlPlane:
    # not under pytest's basetemp: pytest makes that 0700, and the embedded PostgreSQL runs as
    # its own user when the tests run as root, so it must be able to reach HANGAR_HOME
    home = Path(tempfile.mkdtemp(prefix="hangar-e2e-"))
    home.chmod(0o755)
    # a range of its own per test session, so that test sessions run side by side never hand out
    # a port another session's environment holds while it restarts
    control = ControlPlane(home=home, port=free_port(), env_port_start=29000 + (os.getpid() % 30) * 1000)
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
