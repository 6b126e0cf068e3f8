"""Secrets are encrypted at rest and appear in no response, config file or log."""
from __future__ import annotations

import json
import os

from tests.e2e.harness import ControlPlane
from tests.e2e.mwaa_client import mwaa


def test_no_secret_in_responses_files_or_logs(plane: ControlPlane, shared_env: str) -> None:
    name = shared_env
    airflow = plane.airflow(name)
    assert airflow.run_dag("hello_taskflow") == "success"
    key = json.loads(plane.cli("access-key", "create", "--role", "Op", "--json").stdout)
    os.environ["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    client = mwaa(plane.url, key)
    mwaa_texts = {
        "mwaa get": json.dumps(client.get_environment(Name=name)["Environment"], default=str),
    }
    client.tag_resource(ResourceArn=client.get_environment(Name=name)["Environment"]["Arn"], Tags={"a": "b"})
    secrets = {**plane.secrets(name), "access_key_secret": key["secret_access_key"]}
    assert set(secrets) >= {"fernet_key", "jwt_secret", "secret_key"}
    assert oct((plane.home / "master.key").stat().st_mode & 0o777) == "0o600"

    texts = {
        "env get": plane.cli("env", "get", name, "--json").stdout,
        "env list": plane.cli("env", "list", "--json").stdout,
        "events": plane.cli("env", "events", name, "--json").stdout,
        "api": plane.api("GET", f"/api/v1/environments/{name}").text,
        "openapi": plane.api("GET", "/api/v1/openapi.json").text,
        "audit": plane.cli("audit", "--json").stdout,
        "access keys": plane.cli("access-key", "list", "--json").stdout,
        **mwaa_texts,
    }
    for path in [*plane.home.glob("environments/*/**/*"), plane.log, *plane.home.glob("*.log")]:
        if path.is_file() and path.suffix in (".log", ".cfg", ".json", ".py", ""):
            texts[str(path)] = path.read_text(errors="replace")
    # the SQLite state holds only ciphertext
    texts["state"] = (plane.home / "state" / "hangar.db").read_bytes().decode("latin-1")
    for where, text in texts.items():
        for name, value in secrets.items():
            assert value not in text, f"secret {name} found in {where}"
        assert "Password for user" not in text, f"a generated Airflow password was printed in {where}"
