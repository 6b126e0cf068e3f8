"""Following a change until the environment settles, and how it ended.

`--wait` polls the environment every 0.5 s while its status is in progress (IN_PROGRESS), with
a spinner on stderr unless the answer is JSON. It exits 1 when the environment ends in a
*_FAILED status or its update failed and rolled back, and when it has not settled in time.
"""
from __future__ import annotations

import time
from contextlib import nullcontext

from rich.console import Console

from hangar.cli.client import Client, ClientError, fail
from hangar.cli.output import print_env

err = Console(stderr=True)
SETTLED_FAIL = {"CREATE_FAILED", "UPDATE_FAILED"}
IN_PROGRESS = {"CREATING", "UPDATING", "DELETING", "ROLLING_BACK", "PENDING", "CREATING_SNAPSHOT", "MAINTENANCE"}


def wait_settled(client: Client, name: str, *, timeout: float, deleting: bool = False,
                 quiet: bool = False) -> dict | None:
    """The environment once it is no longer in progress; None once deleted (with `deleting`)."""
    deadline = time.monotonic() + timeout
    env: dict | None = None
    with err.status("waiting", spinner="dots") if not quiet else nullcontext() as status:
        while time.monotonic() < deadline:
            try:
                env = client.request("GET", f"/api/v1/environments/{name}")
            except ClientError as exc:
                if deleting and "does not exist" in str(exc):
                    return None
                raise
            assert isinstance(env, dict)
            if status is not None:
                status.update(f"{env['status']}: {(env.get('status_reason') or '')[:100]}")
            if env["status"] not in IN_PROGRESS:
                return env
            time.sleep(0.5)
    fail(f"timed out after {timeout:.0f} s waiting for {name}; it is {env['status'] if env else 'unknown'}")
    return None


def check_outcome(env: dict) -> None:
    """Exit 1 when the environment ended failed, or its last update did."""
    last = env.get("last_update") or {}
    if env["status"] in SETTLED_FAIL or last.get("status") == "FAILED":
        error = last.get("error") or {}
        fail(f"{env['name']} is {env['status']}: {error.get('code', '')}: {error.get('message', env.get('status_reason'))}")


def send_and_report(method: str, path: str, body: dict, *, name: str, wait: bool, timeout: float, as_json: bool,
                    request_timeout: float = 30, with_code: bool = False) -> None:
    """Send a change of environment `name`; with --wait, follow it and exit 1 if it ends failed.

    `with_code` puts the error's code before its message (a refused restore says why in a word)."""
    try:
        client = Client.from_environment()
        result = client.request(method, path, json=body, timeout=request_timeout, with_code=with_code)
        if wait:
            result = wait_settled(client, name, timeout=timeout, quiet=as_json)
    except ClientError as exc:
        fail(str(exc))
    print_env(result, as_json)
    if wait:
        check_outcome(result)
