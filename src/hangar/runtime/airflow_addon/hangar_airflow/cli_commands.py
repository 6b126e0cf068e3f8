"""MWAA-compatible ``POST /aws_mwaa/cli``: how a request is parsed, checked and run.

Which commands run for whom is hangar_airflow.cli_allowlist. Both are pure standard
library, importing nothing from Airflow, so the allow-list, the role mapping and the
runner are unit-tested without an Airflow installation; ``plugin.py`` only adds the HTTP
glue (token check, request/response) for Flask or FastAPI.

Request/response (as MWAA): the body is one Airflow CLI command line without the
leading ``airflow`` (``dags list``, ``dags trigger my_dag -c '{"k": "v"}'``; a leading
``airflow`` is tolerated). It is split with ``shlex`` (no shell) and run as
``sys.executable -m airflow <args>``, i.e. with the web server's own Python and inherited
environment (same AIRFLOW_HOME, config, metadata DB), stdin closed, in its own process
group, killed after ``TIMEOUT_SECONDS``. The answer is 200
``{"stdout": base64, "stderr": base64, "exit_code": int}`` whatever the exit code
(``exit_code`` is a Hangar addition; MWAA clients read only stdout/stderr). A timeout
is 504 with the same fields plus ``error``. Refusals are JSON ``{"error", "command"}``:
400 for a command/option not on the allow-list (or an unparsable body), 403 when the
token's role is too low, 413 for an oversized body, 429 when all CLI slots are busy.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .cli_allowlist import CliRejected, check_command

TIMEOUT_SECONDS = 60
MAX_COMMAND_BYTES = 8 * 1024
MAX_OUTPUT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class CliResult:
    stdout: bytes
    stderr: bytes
    exit_code: int | None
    timed_out: bool = False


def parse_command(body: bytes | str) -> list[str]:
    """Split the request body into CLI arguments (no shell); drop a leading ``airflow``."""
    if isinstance(body, bytes):
        if len(body) > MAX_COMMAND_BYTES:
            raise CliRejected(413, f"command longer than {MAX_COMMAND_BYTES} bytes")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise CliRejected(400, "command must be UTF-8 text") from None
    if len(body.encode("utf-8")) > MAX_COMMAND_BYTES:
        raise CliRejected(413, f"command longer than {MAX_COMMAND_BYTES} bytes")
    if "\x00" in body:
        raise CliRejected(400, "command contains a NUL character")
    try:
        args = shlex.split(body)
    except ValueError as exc:  # unbalanced quotes...
        raise CliRejected(400, f"cannot parse command: {exc}") from None
    if args and args[0] == "airflow":
        args = args[1:]
    if not args:
        raise CliRejected(400, "empty command; send e.g. 'dags list' as the request body")
    return args


def airflow_argv(args: Sequence[str], python: str | None = None) -> list[str]:
    """``<python> -m airflow <args>``: the server's own interpreter and Airflow."""
    return [python or sys.executable, "-m", "airflow", *args]


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _cap(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    return data[:limit] + f"\n[hangar: output truncated at {limit} bytes]\n".encode()


def run(
    argv: Sequence[str],
    *,
    timeout: float = TIMEOUT_SECONDS,
    env: dict[str, str] | None = None,
    max_output: int = MAX_OUTPUT_BYTES,
) -> CliResult:
    """Run ``argv`` (no shell, stdin closed, own process group); kill the group on timeout.

    ``env=None`` inherits the caller's environment. Whatever the command started is killed
    when it ends or times out, so nothing outlives the request.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a descendant escaped the group and holds the pipes
            proc.kill()
            out, err = b"", b""
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            proc.wait()
    finally:
        _kill_group(proc)  # leftovers of a finished command (the group survives its leader)
    if timed_out:
        err = (err or b"") + f"\n[hangar: command timed out after {timeout:g} s and was killed]\n".encode()
    return CliResult(_cap(out or b"", max_output), _cap(err or b"", max_output), proc.returncode, timed_out)


def lock_dir() -> str:
    """Where CLI slot lock files live: the environment's AIRFLOW_HOME (per environment)."""
    home = os.environ.get("AIRFLOW_HOME", "")
    return home if home and os.path.isdir(home) else tempfile.gettempdir()


@contextlib.contextmanager
def cli_slot(directory: str, slots: int) -> Iterator[bool]:
    """Hold one of ``slots`` CLI slots shared by all processes/threads of the web server.

    Yields False (without waiting) when all are taken. Uses ``flock`` on per-slot files, so
    a slot is released even if the holder dies.
    """
    for index in range(max(1, slots)):
        path = os.path.join(directory, f".hangar-cli-slot-{index}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    yield False


def result_payload(result: CliResult) -> tuple[int, dict[str, object]]:
    """The HTTP status and JSON body for a finished (or timed-out) command."""
    body: dict[str, object] = {
        "stdout": base64.b64encode(result.stdout).decode("ascii"),
        "stderr": base64.b64encode(result.stderr).decode("ascii"),
        "exit_code": result.exit_code,
    }
    if result.timed_out:
        body["error"] = "command timed out and was killed"
        return 504, body
    return 200, body


def execute(
    body: bytes | str,
    *,
    role: str,
    airflow_major: int,
    slots: int,
    timeout: float = TIMEOUT_SECONDS,
    directory: str | None = None,
    argv_prefix: Sequence[str] | None = None,
) -> tuple[int, dict[str, object]]:
    """Parse, authorise and run one CLI request; return (HTTP status, JSON body).

    ``argv_prefix`` replaces ``[sys.executable, "-m", "airflow"]`` (tests).
    Blocking: call it from a worker thread in an async server.
    """
    try:
        args = parse_command(body)
        name = check_command(args, role=role, airflow_major=airflow_major)
    except CliRejected as exc:
        return exc.status, exc.payload()
    argv = [*argv_prefix, *args] if argv_prefix is not None else airflow_argv(args)
    with cli_slot(directory or lock_dir(), slots) as acquired:
        if not acquired:
            return 429, {"error": f"all {slots} CLI slot(s) of this environment are busy; retry shortly", "command": name}
        return result_payload(run(argv, timeout=timeout))
