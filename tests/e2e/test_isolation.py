"""Environments run as their own system users (the tests run as root, as CI does).

- An Op's startup script that tries to read the admin key, the master key, another
  environment's folder and database, and the control plane's environment, is refused each
  time; nothing secret reaches a response.
- Every process of an environment runs under its own uid, none as root.
- A deleted environment leaves no process, folder, database, role or system user, across two
  control-plane restarts.
"""
from __future__ import annotations

import os
import pwd
import shlex
from pathlib import Path

import psutil
import pytest

from tests.e2e.harness import ControlPlane, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="environments have users of their own only under root")


def database(identifier: str) -> str:
    return f"hangar_env_{identifier.replace('-', '')}"


def environment_processes(plane: ControlPlane, identifier: str) -> list[psutil.Process]:
    """Every live process started for the environment: its fork server and components and their children."""
    root = str(plane.home / "environments" / identifier)
    found = []
    for process in psutil.process_iter(["cwd"]):
        try:
            if (process.info["cwd"] or "").startswith(root):
                found.append(process)
        except psutil.Error:
            continue
    return found


PROBE = """\
try() {{ if eval "$2" >/dev/null 2>&1; then echo "READ-OK $1"; else echo "DENIED $1"; fi; }}
try own-folder 'ls "$AIRFLOW_HOME"'
try own-db {own_db}
try admin.key {admin}
try master.key {master}
try state-db {state}
try other-folder {other_folder}
try control-plane-env {control_env}
try other-db-as-postgres {other_db_postgres}
try other-db-over-socket {other_db_socket}
echo "UID=$(id -u)"
echo "NPROC=$(ulimit -u)"
echo "CGROUPS=$(grep -c '/hangar-' /proc/self/cgroup)"
exit 7
"""


def test_an_op_startup_script_reaches_no_secret_and_no_other_environment(plane: ControlPlane, shared_env: str,
                                                                         dags, tmp_path: Path) -> None:
    plane.wait(shared_env)
    plane.create("probe", dags)
    try:
        check_a_build_script_runs_as_the_build_user(plane, "probe", tmp_path)
        other = plane.env_id(shared_env)
        port = (plane.home / "pgdata" / "hangar.port").read_text().strip()
        connect = ("python3 -c " + shlex.quote(
            "import sys, psycopg2; psycopg2.connect(host=sys.argv[1], port=int(sys.argv[2]), user='postgres', "
            "dbname=sys.argv[3], connect_timeout=5)") + " {host} {port} {db}")
        own = "python3 -c " + shlex.quote(
            "import os, re, psycopg2; psycopg2.connect(re.sub(r'^postgresql[+]psycopg2', 'postgresql', "
            "os.environ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']), connect_timeout=5)")
        script = PROBE.format(
            own_db=shlex.quote(own),
            admin=shlex.quote(f"cat {plane.home / 'admin.key'}"),
            master=shlex.quote(f"cat {plane.home / 'master.key'}"),
            state=shlex.quote(f"cat {plane.home / 'state' / 'hangar.db'}"),
            other_folder=shlex.quote(f"ls {plane.home / 'environments' / other}"),
            control_env=shlex.quote(f"cat /proc/{plane.process.pid}/environ"),
            other_db_postgres=shlex.quote(connect.format(host="127.0.0.1", port=port, db=database(other))),
            other_db_socket=shlex.quote(connect.format(host=plane.home / "pgdata", port=port, db=database(other))),
        )
        op = plane.api("POST", "/api/v1/access-keys", json={"role": "Op"}).json()["api_key"]
        response = plane.api("PATCH", "/api/v1/environments/probe", json={"startup_script": script},
                             headers={"Authorization": f"Bearer {op}"})
        assert response.status_code == 200, response.text
        env = wait_for(lambda: (e := plane.get("probe"))["last_update"]["status"] == "FAILED"
                       and "startup script" in e["last_update"]["error"]["message"] and e, timeout=600,
                       what="the probe's pre-flight to fail")
        output = env["last_update"]["error"]["message"]
        assert "startup script exited with code 7" in output
        for what in ("admin.key", "master.key", "state-db", "other-folder", "control-plane-env",
                     "other-db-as-postgres", "other-db-over-socket"):
            assert f"DENIED {what}" in output, output
        # what it may reach, it reaches: the refusals are permissions, not a broken probe
        assert "READ-OK own-folder" in output and "READ-OK own-db" in output, output
        assert output.count("READ-OK") == 2, output
        uid = int(output.split("UID=")[1].split()[0])
        assert uid != 0 and pwd.getpwuid(uid).pw_name.startswith("hangar-")
        # inside its limits: RLIMIT_NPROC on its user, and its pids and memory cgroups
        assert output.split("NPROC=")[1].split()[0] == str(256 + 8 * 16), output  # class small, parallelism 16
        assert "CGROUPS=2" in output, output
        # the old revision serves on; no response carries a secret
        assert env["status"] == "AVAILABLE"
        secrets = [plane.key, *plane.secrets("probe").values(), *plane.secrets(shared_env).values()]
        texts = [plane.api("GET", path, headers={"Authorization": f"Bearer {op}"}).text
                 for path in ("/api/v1/environments/probe", "/api/v1/environments/probe/events",
                              "/api/v1/environments/probe/history", "/api/v1/environments")]
        assert not [s for s in secrets if any(s in text for text in texts)]
    finally:
        plane.discard("probe")


SETUP_PY = """\
import os
from pathlib import Path
Path({record!r}).write_text(str(os.getuid()))
raise SystemExit("hangar-probe refuses to build")
"""


def check_a_build_script_runs_as_the_build_user(plane: ControlPlane, name: str, tmp_path: Path) -> None:
    """A requirement given as a local source tree: its setup.py runs while the runtime is built,
    as hangar-build, not root; it fails the build and the environment serves on."""
    package = tmp_path / "hangar_probe_pkg"
    package.mkdir()
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    outbox.chmod(0o777)
    (package / "setup.py").write_text(SETUP_PY.format(record=str(outbox / "uid")))
    response = plane.api("PATCH", f"/api/v1/environments/{name}",
                         json={"requirements": f"hangar-probe-pkg @ file://{package}"})
    assert response.status_code == 200, response.text
    env = wait_for(lambda: (e := plane.get(name))["last_update"]["status"] == "FAILED" and e, timeout=600,
                   what="the build of the probe requirement to fail")
    assert env["last_update"]["error"]["code"] == "REQUIREMENTS_FAILED", env["last_update"]
    assert env["status"] == "AVAILABLE"
    assert int((outbox / "uid").read_text()) == pwd.getpwnam("hangar-build").pw_uid


def test_every_environment_process_runs_as_its_own_user(plane: ControlPlane, shared_env: str) -> None:
    plane.wait(shared_env)
    identifier = plane.env_id(shared_env)
    owner = pwd.getpwnam(f"hangar-{identifier.replace('-', '')[:16]}")
    processes = environment_processes(plane, identifier)
    names = {" ".join(p.cmdline()[:2]) for p in processes}
    assert len(processes) >= 5 and any("scheduler" in n for n in names), names
    assert {p.uids().real for p in processes} == {owner.pw_uid}
    assert {p.uids().effective for p in processes} == {owner.pw_uid}
    # all in its own cgroups, which hold its limits
    group = f"/hangar-{identifier.replace('-', '')[:16]}"
    assert all(Path(f"/proc/{p.pid}/cgroup").read_text().count(group) == 2 for p in processes)
    assert int((Path("/sys/fs/cgroup/pids") / group.lstrip("/") / "pids.max").read_text()) == 256 + 8 * 16
    folder = plane.home / "environments" / identifier
    assert folder.stat().st_uid == owner.pw_uid and folder.stat().st_mode & 0o777 == 0o700
    for private in (plane.home / "admin.key", plane.home / "master.key", plane.home / "state"):
        assert private.stat().st_uid == 0 and private.stat().st_mode & 0o077 == 0
    # its database role owns its database and is no superuser
    with plane.postgres() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT r.rolsuper, pg_get_userbyid(d.datdba) FROM pg_roles r, pg_database d "
                       "WHERE r.rolname = %s AND d.datname = %s", (database(identifier), database(identifier)))
        assert cursor.fetchone() == (False, database(identifier))


def test_a_deleted_environment_leaves_nothing_across_two_restarts(plane: ControlPlane, dags) -> None:
    plane.create("ephemeral", dags)
    identifier = plane.env_id("ephemeral")
    user = f"hangar-{identifier.replace('-', '')[:16]}"
    uid = pwd.getpwnam(user).pw_uid
    plane.delete("ephemeral")
    plane.restart()
    plane.restart()
    assert [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid] == []
    assert not (plane.home / "environments" / identifier).exists()
    assert not (Path("/sys/fs/cgroup/pids") / user).exists()
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    with plane.postgres() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (database(identifier),))
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (database(identifier),))
        assert cursor.fetchone() == (0,)
