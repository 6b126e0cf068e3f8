"""`hangar up`: one command from a DAGs folder to a logged-in Airflow UI."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.e2e.harness import ControlPlane, free_port, shared_runtimes_dir


def test_up_starts_the_control_plane_and_prints_a_working_login(dags) -> None:
    home = Path(tempfile.mkdtemp(prefix="hangar-up-"))
    home.chmod(0o755)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HANGAR_")},
           "HANGAR_HOME": str(home), "HANGAR_PORT": str(port), "HANGAR_ENV_PORT_START": "30500",
           "HANGAR_ENV_PORT_END": "30999", "COLUMNS": "400",
           # the session's runtimes: what this test proves starts after Airflow is installed
           "HANGAR_RUNTIMES_DIR": str(shared_runtimes_dir())}
    plane = ControlPlane(home=home, port=port, env_port_start=30500)
    try:
        result = subprocess.run([sys.executable, "-m", "hangar.cli.main", "up", str(dags)], env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr + result.stdout
        assert "dags is AVAILABLE" in result.stdout
        url = re.search(r"Airflow UI:\s+(\S+)", result.stdout).group(1)
        login = re.search(r"Log in:\s+(\S+)", result.stdout).group(1)
        assert login.startswith(f"{url}/hangar/login?token=")
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            assert browser.get(f"{url}/api/v2/dags").status_code in (401, 403)
            assert browser.get(login).status_code == 200
            assert browser.get(f"{url}/api/v2/dags").status_code == 200
        # a second `up` on the same folder finds the environment and changes nothing
        again = subprocess.run([sys.executable, "-m", "hangar.cli.main", "up", str(dags)], env=env,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        status = subprocess.run([sys.executable, "-m", "hangar.cli.main", "server", "--home", str(home),
                                 "--port", str(port), "status"], env=env, capture_output=True, text=True, timeout=60)
        assert "running" in status.stdout
        stop = subprocess.run([sys.executable, "-m", "hangar.cli.main", "server", "--home", str(home), "stop"],
                              env=env, capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr + stop.stdout
        assert not (home / "server.pid").exists()
    finally:
        subprocess.run([sys.executable, "-m", "hangar.cli.main", "server", "--home", str(home), "stop"], env=env,
                       capture_output=True, timeout=60)
        plane.cleanup()
