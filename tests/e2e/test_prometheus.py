"""A real Prometheus (Debian's, which scripts/ensure-prometheus installs) scrapes the control
plane with a scrape token, and PromQL through its HTTP API returns the environment's scheduler
heartbeat (Airflow's StatsD counter) and queued-task gauge, and Hangar's own series.

Without /usr/bin/prometheus the test skips with the reason, unless CI is set: then it fails."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ControlPlane, free_port, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")


@pytest.fixture
def prometheus(plane: ControlPlane):
    if not PROMETHEUS.exists():
        message = f"{PROMETHEUS} is not installed (run scripts/ensure-prometheus as root, or apt-get install -y prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {message}")
        pytest.skip(message)
    answer = plane.api("POST", "/api/v1/access-keys", json={"role": "Scrape", "description": "prometheus"})
    assert answer.status_code == 201, answer.text
    folder = Path(tempfile.mkdtemp(prefix="hangar-e2e-prometheus-"))
    (folder / "token").write_text(answer.json()["api_key"])
    (folder / "token").chmod(0o600)
    (folder / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: hangar
    authorization: {{type: Bearer, credentials_file: {folder / 'token'}}}
    static_configs: [{{targets: ["127.0.0.1:{plane.port}"]}}]
""")
    port = free_port()
    process = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=open(folder / "log", "wb"))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get(f"{url}/-/ready") == 200, timeout=60, what="Prometheus to be ready")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def _get(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


def _query(url: str, promql: str) -> list[dict]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_airflow_and_hangar_series(plane: ControlPlane, shared_env: str, prometheus: str) -> None:
    up = wait_for(lambda: _query(prometheus, 'up{job="hangar"}'), timeout=60, what="a first scrape")
    assert up[0]["value"][1] == "1", up
    heartbeat = wait_for(lambda: _query(prometheus, f'airflow_scheduler_heartbeat_total{{environment="{shared_env}"}}'),
                         timeout=120, what="the scheduler heartbeat in Prometheus")
    assert float(heartbeat[0]["value"][1]) > 0 and heartbeat[0]["metric"]["type"] == "counter"
    queued = wait_for(lambda: _query(prometheus, f'airflow_executor_queued_tasks{{environment="{shared_env}"}}'),
                      timeout=120, what="the queued-task gauge in Prometheus")
    assert float(queued[0]["value"][1]) >= 0
    status = _query(prometheus, f'hangar_environment_status{{environment="{shared_env}"}}')
    assert status and status[0]["metric"]["status"] == "AVAILABLE"
    assert _query(prometheus, f'hangar_component_memory_bytes{{environment="{shared_env}",component="scheduler"}}')
    # Hangar's own queued-task gauge, read from the metadata database (a LocalExecutor environment)
    own = _query(prometheus, f'hangar_tasks_queued{{environment="{shared_env}"}}')
    assert own and float(own[0]["value"][1]) >= 0, own
    rate = wait_for(lambda: _query(prometheus, f'rate(airflow_scheduler_heartbeat_total{{environment="{shared_env}"}}[10s]) > 0'),
                    timeout=60, what="the heartbeat to go up between scrapes")
    assert rate
