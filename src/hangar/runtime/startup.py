"""The control plane's side of startup scripts: which variables a script may not
change, and the command line that runs a component behind the script.

The script itself runs inside the runtime (``hangar_airflow.launch``), which cannot
import ``hangar``; the reserved names travel to it in ``HANGAR_STARTUP_RESERVED``.

Invariants:
- Reserved are the variables that would override what Hangar renders: every
  owned config key as ``AIRFLOW__SECTION__KEY`` and its ``_CMD``/``_SECRET``
  variants, the owned env vars, the executor and ``load_examples``.
- PATH and PYTHONPATH are not reserved: MWAA lets a startup script change them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from hangar.schemas.spec import OWNED_CONFIG_KEYS, OWNED_ENV_VARS
from hangar.runtime.airflow_addon.hangar_airflow.launch import RESERVED_ENV

# MWAA's default limit for a startup script
DEFAULT_TIMEOUT = 300.0


def _config_variables(key: str) -> set[str]:
    section, option = key.upper().split(".", 1)
    name = f"AIRFLOW__{section}__{option}"
    return {name, f"{name}_CMD", f"{name}_SECRET"}


RESERVED_VARIABLES: frozenset[str] = frozenset(
    {name for key in OWNED_CONFIG_KEYS | {"core.executor", "core.load_examples"} for name in _config_variables(key)}
    | (OWNED_ENV_VARS - {"PATH", "PYTHONPATH"})
)


def launch_argv(*, python: Path, script: Path, timeout: float, argv: list[str]) -> list[str]:
    """`argv` run by the runtime's `python` after the startup script at `script`.

    The process needs ``launch_env()`` and the add-on folder on its PYTHONPATH."""
    return [str(python), "-m", "hangar_airflow.launch", "--script", str(script), "--timeout", f"{timeout:g}", "--", *argv]


def install_script(folder: Path, text: str) -> Path:
    """The startup script written into `folder` under its digest: a changed script is a new
    file, so the command of every component it wraps changes with it."""
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def wrap(env: dict[str, str], *, python: Path, script: Path, timeout: float) -> list[str]:
    """The argv prefix that runs `script` before a component starts; adds what it needs to `env`."""
    env.update(launch_env())
    return launch_argv(python=python, script=script, timeout=timeout, argv=[])


def launch_env() -> dict[str, str]:
    return {RESERVED_ENV: ",".join(sorted(RESERVED_VARIABLES))}
