"""Alerts end to end with real Airflow: a DAG run that fails reaches a real local HTTP receiver
with a valid HMAC signature and a real SMTP server (aiosmtpd) as an email; a task that waits
for a pool with no slots raises the queued-too-long alert; a task that runs too long alerts and
resolves when it ends; a DAG file that does not import raises the import-errors alert. (A
scheduler held down raises the heartbeat alert and its resolved notice in test_resilience, on
the shared environment.)"""
from __future__ import annotations

import hashlib
import hmac
import json
import queue
import shutil
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.conftest import private_folder
from tests.e2e.harness import ControlPlane
from tests.e2e.receivers import Receiver, free_port

DAGS = Path(__file__).parent / "alert_dags"
SECRET = "e2e-hmac-secret-1"


@pytest.fixture(scope="module")
def watched(plane: ControlPlane):
    folder = private_folder("hangar-e2e-alerts-")
    shutil.copytree(DAGS, folder / "dags")
    plane.create("alerted", folder / "dags")
    yield "alerted", folder
    plane.discard("alerted")
    shutil.rmtree(folder, ignore_errors=True)


def test_failed_run_and_queued_task_alerts(plane: ControlPlane, watched) -> None:
    watched, folder = watched
    receiver, mails = Receiver(), queue.Queue()

    class Mailbox:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            mails.put(envelope)
            return "250 OK"

    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        answer = plane.api("PUT", "/api/v1/alerts/smtp", json={"host": "127.0.0.1", "port": smtp.port,
                                                               "starttls": False, "sender": "hangar@e2e.test"})
        assert answer.status_code == 200, answer.text
        for rule in ({"name": "run-failed", "webhook": receiver.url, "secret": SECRET},
                     {"name": "queued", "event": "task_queued_too_long", "threshold": 0.05, "webhook": receiver.url},
                     {"name": "long", "event": "task_running_too_long", "threshold": 0.05, "webhook": receiver.url},
                     {"name": "imports", "event": "dag_import_errors", "webhook": receiver.url}):
            answer = plane.api("POST", "/api/v1/alerts", json={"environment": watched, "event": "dag_run_failed", **rule})
            assert answer.status_code == 201, answer.text
        # the CLI itself: the same event by email
        result = plane.cli("alert", "create", "run-failed-mail", "--environment", watched, "--on", "dag_run_failed",
                           "--dag", "fails", "--email", "oncall@e2e.test", "--json")
        assert json.loads(result.stdout)["target"] == "oncall@e2e.test"

        airflow = plane.airflow(watched)
        assert airflow.request("POST", "/pools", json={"name": "closed", "slots": 0}).status_code in (200, 201)
        run_id = airflow.trigger("fails")
        airflow.trigger("stuck")
        release = folder / "release"
        airflow.wait_for_dag("held")
        assert airflow.request("PATCH", "/dags/held", json={"is_paused": False}).status_code == 200
        held_run = airflow.request("POST", "/dags/held/dagRuns", json={"logical_date": None, "conf": {"release": str(release)}})
        assert held_run.status_code == 200, held_run.text
        (folder / "dags" / "broken.py").write_text("from airflow.sdk import dag\n\ndef oops(:\n    pass\n")

        headers, body, notice = receiver.next(alert="run-failed", state="firing")
        assert headers["X-Hangar-Signature-256"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert notice["environment"] == watched and run_id in notice["summary"] and "fails" in notice["summary"]
        mail = mails.get(timeout=120)
        assert mail.rcpt_tos == ["oncall@e2e.test"] and run_id.encode() in mail.content
        _, _, queued = receiver.next(alert="queued", state="firing")
        assert "stuck.waits" in queued["summary"], queued
        _, _, long_running = receiver.next(alert="long", state="firing")
        assert "held.waits" in long_running["summary"], long_running
        release.write_text("go")
        receiver.next(alert="long", state="resolved")
        _, _, imports = receiver.next(alert="imports", state="firing")
        assert "broken.py" in imports["summary"], imports
        history = json.loads(plane.cli("alert", "history", "--json").stdout)
        delivered = {(d["alert"], d["kind"]) for d in history if d["state"] == "delivered"}
        assert {("run-failed", "alert"), ("run-failed-mail", "alert"), ("queued", "alert")} <= delivered
    finally:
        smtp.stop()
        receiver.close()
        for name in ("run-failed", "queued", "run-failed-mail", "long", "imports"):
            plane.api("DELETE", f"/api/v1/alerts/{name}")
