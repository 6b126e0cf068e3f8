"""Run an environment's startup script (MWAA's startup script) and capture what it exports.

Used in two places: by ``hangar_airflow.launch`` before each component starts, and
by the control plane's pre-flight check, which runs the same function in a sandbox
folder. So it imports the standard library only: inside Airflow's processes
``hangar`` is not importable.

Invariants:
- The script is sourced by bash, so ``export NAME=value`` reaches the caller:
  ``exports`` holds the variables whose value differs from, or is absent in, the
  given env (bash's own PWD, OLDPWD, SHLVL and ``_`` excepted). Variables the
  script unsets are not reported.
- The script runs in its own session. Nothing it starts outlives it: when it
  ends, or when the timeout passes, its whole process group gets SIGTERM, then
  SIGKILL after a grace period.
- Output (stdout and stderr, interleaved) goes to a file, not a pipe, so a
  background child that keeps the descriptors open cannot make us wait.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Sourced, so exports land in this shell; the env is dumped after the script and
# again on exit, so a script that ends with `exit 0` still reports its exports.
_SOURCE = (
    '__hangar_dump=$2; __hangar_script=$1; shift 2; '
    'trap \'env -0 > "$__hangar_dump"\' EXIT; '
    'source "$__hangar_script"; __hangar_rc=$?; env -0 > "$__hangar_dump"; exit $__hangar_rc'
)
_BASH_OWNED = frozenset({"_", "PWD", "OLDPWD", "SHLVL"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KILL_GRACE = 5.0


@dataclass(frozen=True, kw_only=True)
class ScriptResult:
    returncode: int
    exports: dict[str, str]
    output: str
    timed_out: bool
    # filled by callers that judge the exports (reserved variables the script tried to set)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run_script(path: str | os.PathLike[str], *, env: dict[str, str], timeout: float, cwd: str | os.PathLike[str],
               owner: tuple[int, int] | None = None, spawn: dict | None = None) -> ScriptResult:
    """`owner` (uid, gid): the user it runs as, who gets the scratch folder; `spawn`: the
    subprocess.Popen arguments that make the process that user."""
    with tempfile.TemporaryDirectory(prefix="hangar-startup-") as scratch:
        if owner is not None:
            os.chown(scratch, *owner)
        dump = Path(scratch) / "env"
        returncode, output, timed_out = run_group(
            ["bash", "-c", _SOURCE, "hangar-startup", str(path), str(dump)], env=env, timeout=timeout, cwd=cwd,
            spawn=spawn,
        )
        exports = {} if timed_out else _exports(dump, env)
    return ScriptResult(returncode=returncode, exports=exports, output=output, timed_out=timed_out)


def run_group(
    argv: list[str], *, env: dict[str, str], timeout: float, cwd: str | os.PathLike[str],
    spawn: dict | None = None,
) -> tuple[int, str, bool]:
    """Run `argv` in its own session: (returncode, stdout+stderr, timed_out); `spawn`: more
    subprocess.Popen arguments (the user it runs as).

    When it ends or times out, whatever is left of its process group is killed."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **(spawn or {}),
        )
        timed_out = not _wait_unreaped(process.pid, timeout)
        # the leader's pid is the group id; it stays unreaped (a zombie) until the group
        # is gone, so no other group can take the id meanwhile
        kill_group(process.pid)
        returncode = process.wait()
        out.seek(0)
        output = out.read().decode(errors="replace")
    return returncode, output, timed_out


def kill_group(pgid: int, *, grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
    if not _live_members(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _live_members(pgid):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for `pid` to exit without reaping it; False if it still runs after `timeout`."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _live_members(pgid: int) -> list[int]:
    """Members of the group that are not zombies (a zombie cannot be killed, only reaped)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields start after the last ")"
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone, or only members we may not signal


def _exports(dump: Path, before: dict[str, str]) -> dict[str, str]:
    if not dump.exists():
        return {}
    exports = {}
    for entry in dump.read_bytes().decode(errors="replace").split("\0"):
        name, sep, value = entry.partition("=")
        if not sep or not _NAME.fullmatch(name) or name in _BASH_OWNED:
            continue  # exported bash functions (BASH_FUNC_f%%) are not variables
        if before.get(name) != value:
            exports[name] = value
    return exports
