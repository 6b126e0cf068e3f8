"""Start an Airflow component after the environment's startup script.

    python -m hangar_airflow.launch --script PATH --timeout SECONDS [--reserved A,B] -- ARGV...

The supervisor starts every component through this wrapper. It sources the
startup script (when the file exists and is not empty), copies the script's
output into stderr (the component's log), applies the variables the script
exported, and replaces itself with ARGV (``execvpe``), so the component keeps the
pid the supervisor knows.

Invariants:
- A reserved variable (``--reserved`` or ``HANGAR_STARTUP_RESERVED``, comma
  separated) keeps the value it had before the script, or stays absent; each
  attempt to set one is written to stderr. PATH and PYTHONPATH are not reserved
  by Hangar, so a script may extend them, as MWAA allows.
- A script that fails or outlives its timeout stops the launch with a non-zero
  exit, so the supervisor backs off and retries as it does for any crash.
- ``HANGAR_SPAWN_ID``, by which a restarted control plane finds a component whose
  pid file was never written, reaches the component unchanged and never the
  script: only the component may be taken for the spawned process.

Standard library only: this runs under the runtime's Python, where ``hangar`` is
not importable.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .startup import run_script  # relative: the control plane imports this module too

RESERVED_ENV = "HANGAR_STARTUP_RESERVED"
SPAWN_ENV = "HANGAR_SPAWN_ID"  # set by the supervisor (hangar.backend.pidfiles)
TIMED_OUT_EXIT = 124  # what coreutils' timeout(1) uses


def _names(text: str | None) -> set[str]:
    return {name.strip() for name in (text or "").split(",") if name.strip()}


def apply_exports(
    env: dict[str, str], exports: dict[str, str], *, reserved: set[str] | frozenset[str]
) -> tuple[dict[str, str], list[str]]:
    """The env the component gets, and one warning per reserved variable the script set."""
    result = dict(env)
    warnings = []
    for name, value in exports.items():
        if name in reserved:
            warnings.append(f"hangar: startup script set reserved variable {name}; reset to the managed value")
            continue
        result[name] = value
    return result, warnings


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    if "--" not in args:
        print("hangar: usage: python -m hangar_airflow.launch --script PATH --timeout SECONDS "
              "[--reserved NAME,...] -- ARGV...", file=sys.stderr)
        return 2
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="hangar_airflow.launch")
    parser.add_argument("--script", required=True, type=Path)
    parser.add_argument("--timeout", required=True, type=float)
    parser.add_argument("--reserved", default="")
    options = parser.parse_args(args[:split])
    argv = args[split + 1:]
    if not argv:
        print("hangar: no command to launch after --", file=sys.stderr)
        return 2

    env = dict(os.environ)
    script = options.script
    if script.is_file() and script.read_text(errors="replace").strip():
        script_env = {name: value for name, value in env.items() if name != SPAWN_ENV}
        result = run_script(script, env=script_env, timeout=options.timeout, cwd=os.getcwd())
        if result.output:
            sys.stderr.write(result.output if result.output.endswith("\n") else result.output + "\n")
        if result.timed_out:
            print(f"hangar: startup script did not finish within {options.timeout:g} s", file=sys.stderr)
            return TIMED_OUT_EXIT
        if result.returncode != 0:
            print(f"hangar: startup script exited with code {result.returncode}", file=sys.stderr)
            return result.returncode if 0 < result.returncode < 256 else 1
        reserved = _names(options.reserved) | _names(env.get(RESERVED_ENV)) | {SPAWN_ENV}
        env, warnings = apply_exports(env, result.exports, reserved=reserved)
        for warning in warnings:
            print(warning, file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"hangar: cannot start {argv[0]}: {exc.strerror}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main())
