"""`hangar` starts as a small HTTP client: importing the CLI pulls in no server code.

Every command pays for what `hangar.cli.main` imports. The control plane's modules (the API
app, the store, SQLAlchemy, Alembic) and the join agent's (runtime builder, worker bundle,
bucket store) once made `hangar --help` take 2.6 s instead of about 0.5 s; only `hangar server`
and `hangar worker join` may import them, when they run. Checked in a fresh interpreter,
since this test process has long imported all of them.
"""
from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from hangar.cli.main import app

SERVER_SIDE = (
    "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "pydantic_settings",
    "hangar.store", "hangar.buckets.store", "hangar.context", "hangar.api", "hangar.domain.worker_bundle",
    "hangar.runtime.venvs", "hangar.agent.join", "hangar.agent.host",
)


def modules_after(code: str) -> set[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def server_side(modules: set[str]) -> list[str]:
    """Which of SERVER_SIDE were imported, themselves or any module under them."""
    return [root for root in SERVER_SIDE if any(m == root or m.startswith(f"{root}.") for m in modules)]


def test_importing_the_cli_pulls_in_no_server_code() -> None:
    found = server_side(modules_after("import hangar.cli.main"))
    assert not found, f"import hangar.cli.main pulled in {', '.join(found)}"


def test_help_of_every_group_pulls_in_no_server_code() -> None:
    code = ("from hangar.cli.main import app\n"
            "for argv in (['--help'], ['worker', 'join', '--help'], ['server', '--help'], ['env', 'list', '--help']):\n"
            "    try:\n"
            "        app(argv, prog_name='hangar')\n"
            "    except SystemExit:\n"
            "        pass")
    found = server_side(modules_after(code))
    assert not found, f"--help pulled in {', '.join(found)}"


def test_worker_join_reaches_the_join_agent_with_its_flags(monkeypatch) -> None:
    monkeypatch.delenv("HANGAR_WORKER_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["worker", "join", "--url", "http://127.0.0.1:9", "-e", "sales"])
    assert result.exit_code == 1
    assert "a worker token is required: HANGAR_WORKER_TOKEN" in result.output
