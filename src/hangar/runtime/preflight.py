"""Pre-flight checks: run with a NEW runtime before an environment switches to it.

An update that changes requirements, plugins, the startup script or the Airflow
version builds a new runtime next to the running one. These checks judge it while
the old one keeps running, so a bad update fails with a message that names its
cause (the requirement and module, the plugin file, the script's last lines, the
DAG file and line) instead of a crash-looping environment.

Invariants:
- Nothing here changes the running environment or installs anything: the probes
  run in the new runtime's Python (``-P``, in a scratch folder, so the working
  directory cannot shadow a module), and ``package_diff`` only freezes and resolves.
- Airflow judges plugins and DAGs itself (its plugins manager, its DagBag), so a
  check passes exactly when the components would load them.
- Every probe runs in its own process group, killed when it ends or times out.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hangar.backend.identity import RunAs, give, give_tree
from hangar.schemas.requirements import canonical, requirement_name
from hangar.errors import (  # DagImportErrors: callers raise it with new_dag_errors' list
    DagImportErrors,  # noqa: F401
    PermanentError,
    PluginImportFailed,
    PreflightTimedOut,
    RequirementImportFailed,
    RuntimeBuildFailed,
    StartupScriptFailed,
    StartupScriptTimedOut,
)
from hangar.runtime.airflow_addon.hangar_airflow.launch import apply_exports
from hangar.runtime.airflow_addon.hangar_airflow.startup import ScriptResult, run_group, run_script
from hangar.runtime.startup import RESERVED_VARIABLES
from hangar.runtime.venvs import Runtime, base_packages, clean_env, install_failure, run_uv

TRACEBACK_LINES = 15
SCRIPT_OUTPUT_LINES = 20

# --- probes: small programs run by the runtime's Python, answering in a JSON file ---

# argv: result file, JSON list of distribution names
_IMPORTS_PROBE = r'''
import importlib, importlib.metadata as md, json, sys, traceback

def modules(dist):
    top = dist.read_text("top_level.txt")
    if top:
        return sorted({line.strip() for line in top.splitlines() if line.strip()})
    found = set()
    for file in dist.files or ():
        parts = file.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith((".dist-info", ".data", ".egg-info")):
            continue
        if len(parts) == 1 and parts[0].endswith((".py", ".so")):
            found.add(parts[0].split(".")[0])
        elif len(parts) > 1 and parts[-1].endswith((".py", ".so")):
            found.add(parts[0])
    return sorted(found)

failures = []
for name in json.loads(sys.argv[2]):
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    for module in modules(dist):
        if not module.isidentifier():
            continue
        try:
            importlib.import_module(module)
        except BaseException:
            failures.append({"requirement": name, "module": module, "traceback": traceback.format_exc()})
with open(sys.argv[1], "w") as out:
    json.dump(failures, out)
'''

# argv: result file. Airflow's import_errors keep only str(e); the traceback comes from the
# log record Airflow writes for the same file.
_PLUGINS_PROBE = r'''
import json, logging, sys, traceback
from airflow import plugins_manager

tracebacks = {}

class Capture(logging.Handler):
    def emit(self, record):
        if record.exc_info and record.args:
            tracebacks.setdefault(str(record.args[0]), "".join(traceback.format_exception(*record.exc_info)))

logging.getLogger().addHandler(Capture(logging.ERROR))
plugins_manager.ensure_plugins_loaded()
if hasattr(plugins_manager, "get_import_errors"):  # Airflow 3
    errors = plugins_manager.get_import_errors()
else:  # Airflow 2
    errors = plugins_manager.import_errors
with open(sys.argv[1], "w") as out:
    json.dump([{"source": k, "message": v, "traceback": tracebacks.get(k)} for k, v in errors.items()], out)
'''

# argv: result file, DAGs folder
_DAGS_PROBE = r'''
import inspect, json, sys
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
except ImportError:
    from airflow.models.dagbag import DagBag
options = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
bag = DagBag(dag_folder=sys.argv[2], **options)
with open(sys.argv[1], "w") as out:
    json.dump(bag.import_errors, out)
'''


def _probe(
    *, runtime: Runtime, code: str, args: list[str], env: dict[str, str], timeout: float, what: str,
    failed: type[PermanentError], run_as: RunAs | None = None,
) -> Any:
    """Run `code` with the runtime's Python; its JSON answer, or PreflightTimedOut.

    A probe that dies before answering (a module that exits the interpreter, Airflow
    that cannot start) raises `failed` with its last lines."""
    with tempfile.TemporaryDirectory(prefix="hangar-preflight-") as scratch:
        answer = Path(scratch) / "answer.json"
        give(Path(scratch), run_as)  # the probe writes its answer here, as the environment's user
        returncode, output, timed_out = run_group(
            [str(runtime.python), "-P", "-c", code, str(answer), *args], env=env, timeout=timeout, cwd=scratch,
            spawn=run_as.popen() if run_as is not None else None,
        )
        if timed_out:
            raise PreflightTimedOut(f"{what} did not finish within {timeout:g} s")
        if not answer.exists():
            raise failed(
                f"{what} could not run with runtime {runtime.key} (exit code {returncode}):\n{_tail(output, TRACEBACK_LINES)}"
            )
        return json.loads(answer.read_text())


def _as(run_as: RunAs | None) -> dict:
    return {"owner": (run_as.uid, run_as.gid), "spawn": run_as.popen()} if run_as is not None else {}


def _tail(text: str, lines: int) -> str:
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


# --- requirements ---


def check_imports(*, runtime: Runtime, requirements: str | None, env: dict[str, str] | None = None, timeout: float = 300,
                  run_as: RunAs | None = None) -> None:
    """Import every top-level module of every requirement; RequirementImportFailed lists each failure."""
    names = list(dict.fromkeys(
        name for line in (requirements or "").splitlines() if (name := requirement_name(line)) is not None
    ))
    if not names:
        return
    failures = _probe(runtime=runtime, code=_IMPORTS_PROBE, args=[json.dumps(names)], env=env or clean_env(),
                      timeout=timeout, what="importing the requirements' modules", failed=RequirementImportFailed,
                      run_as=run_as)
    if failures:
        raise RequirementImportFailed("\n\n".join(
            f"requirement {failure['requirement']!r} installed, but `import {failure['module']}` fails:\n"
            f"{_tail(failure['traceback'], TRACEBACK_LINES)}"
            for failure in failures
        ))


# --- plugins ---


def check_plugins(*, runtime: Runtime, plugins_dir: Path, env: dict[str, str], timeout: float = 300,
                  run_as: RunAs | None = None) -> None:
    """Load the plugins with Airflow's plugins manager; PluginImportFailed names each file that fails."""
    errors = _probe(runtime=runtime, code=_PLUGINS_PROBE, args=[],
                    env={**env, "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_dir)},
                    timeout=timeout, what="loading the plugins", failed=PluginImportFailed, run_as=run_as)
    if errors:
        raise PluginImportFailed("\n\n".join(
            f"plugin {_relative(error['source'], plugins_dir)} fails to load:\n"
            f"{_tail(error['traceback'] or error['message'], TRACEBACK_LINES)}"
            for error in errors
        ))


def _relative(path: str, folder: Path) -> str:
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return path


# --- startup script ---


def check_startup_script(*, script: str, env: dict[str, str], timeout: float, run_as: RunAs | None = None) -> ScriptResult:
    """Run the script in a scratch folder as launch would (as the environment's user, if it
    has one); warnings name reserved variables it set."""
    with tempfile.TemporaryDirectory(prefix="hangar-startup-check-") as sandbox:
        path = Path(sandbox) / "startup.sh"
        path.write_text(script)
        give(Path(sandbox), run_as)
        give(path, run_as)
        result = run_script(path, env=env, timeout=timeout, cwd=sandbox, **_as(run_as))
    if result.timed_out:
        raise StartupScriptTimedOut(
            f"startup script did not finish within {timeout:g} s; its last output:\n{_tail(result.output, SCRIPT_OUTPUT_LINES)}"
        )
    if result.returncode != 0:
        raise StartupScriptFailed(
            f"startup script exited with code {result.returncode}; its last output:\n{_tail(result.output, SCRIPT_OUTPUT_LINES)}"
        )
    _, warnings = apply_exports(env, result.exports, reserved=RESERVED_VARIABLES)
    return dataclasses.replace(result, warnings=warnings)


# --- DAGs ---


@dataclass(frozen=True, kw_only=True)
class DagImportError:
    file: str  # relative to the DAGs folder
    line: int | None
    message: str  # the exception's last line, e.g. "SyntaxError: '(' was never closed"


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
_SYNTAX_LINE = re.compile(r"\(\S+, line (?P<line>\d+)\)\s*$")


def parse_dags(*, runtime: Runtime, dags_dir: Path, env: dict[str, str], timeout: float = 300,
               run_as: RunAs | None = None) -> list[DagImportError]:
    """Airflow's DagBag over `dags_dir` with the runtime; one entry per file that fails to import."""
    errors = _probe(
        runtime=runtime, code=_DAGS_PROBE, args=[str(dags_dir)], timeout=timeout, what="parsing the DAGs",
        failed=RuntimeBuildFailed, run_as=run_as,
        # whole tracebacks, so the frame in the DAG file is never cut off
        env={**env, "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "True",
             "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH": "100", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
    )
    return sorted((_dag_error(file, text, dags_dir) for file, text in errors.items()), key=lambda e: e.file)


def _dag_error(file: str, text: str, dags_dir: Path) -> DagImportError:
    absolute = Path(file) if os.path.isabs(file) else dags_dir / file
    same = {os.path.normpath(absolute), os.path.realpath(absolute)}
    lines = [int(m["line"]) for m in _FRAME.finditer(text) if {os.path.normpath(m["file"]), os.path.realpath(m["file"])} & same]
    message = next((line for line in reversed(text.splitlines()) if line.strip() and not line[0].isspace()), text.strip())
    if not lines and (syntax := _SYNTAX_LINE.search(message)):
        lines = [int(syntax["line"])]
    return DagImportError(file=_relative(str(absolute), dags_dir), line=lines[-1] if lines else None, message=message)


def new_dag_errors(old: list[DagImportError], new: list[DagImportError]) -> list[DagImportError]:
    """Errors in files that imported cleanly with the old runtime (old failures are not the update's fault)."""
    failing_before = {error.file for error in old}
    return [error for error in new if error.file not in failing_before]


# --- what an update would install ---


class PackageVersion(BaseModel):
    name: str
    version: str


class PackageChange(BaseModel):
    name: str
    old: str
    new: str


class PackageDiff(BaseModel):
    """Names are PEP 503 normalized; a version is a direct URL for `name @ url` requirements."""

    added: list[PackageVersion] = Field(default_factory=list)
    removed: list[PackageVersion] = Field(default_factory=list)
    changed: list[PackageChange] = Field(default_factory=list)


_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*(?P<version>\S+)|@\s*(?P<url>\S+))")


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if match := _PIN.match(line.strip()):
            pins[canonical(match["name"])] = match["version"] or match["url"]
    return pins


def package_diff(*, old: Runtime, airflow_version: str, requirements: str | None, python: str = "3.11",
                 celery: bool = False, builder: RunAs | None = None) -> PackageDiff:
    """What moving from runtime `old` to (airflow_version, requirements) would add, remove and change.

    Resolves with uv as ensure_runtime would install, without installing; a resolution
    failure raises what ensure_runtime would (RuntimeBuildFailed / AirflowVersionNotFound)."""
    with tempfile.TemporaryDirectory(prefix="hangar-diff-") as scratch:
        log = Path(scratch) / "uv.log"
        # as the build user, if there is one: uv runs the runtime's Python (its .pth files) and
        # may build an sdist to read its metadata
        home = Path(scratch) / "home"
        home.mkdir()
        if builder is not None:
            Path(scratch).chmod(0o711)  # it passes through to its own folder; the log stays root's
            give_tree(home, builder.uid, builder.gid)
        uv = {"as_user": builder, "scratch": home}
        code, output = run_uv(["pip", "freeze", "--python", str(old.python)], progress=_quiet, log=log, **uv)
        if code != 0:
            raise RuntimeBuildFailed(f"could not list the packages of runtime {old.key}; uv said:\n{_tail(output, 20)}")
        installed = _pins(output)
        wanted = home / "requirements.in"
        wanted.write_text("\n".join([*base_packages(airflow_version, celery=celery), requirements or ""]) + "\n")
        resolved_file = home / "resolved.txt"
        if builder is not None:
            give_tree(home, builder.uid, builder.gid)
        code, output = run_uv(
            ["pip", "compile", "--quiet", "--python-version", python, "--no-header", "--no-annotate",
             "--output-file", str(resolved_file), str(wanted)],
            progress=_quiet, log=log, **(uv if requirements and requirements.strip() else {}),
        )  # Airflow's own packages alone resolve as the control plane, with uv's shared cache
        if code != 0:
            raise install_failure(output, airflow_version)
        resolved = _pins(resolved_file.read_text())
    return PackageDiff(
        added=[PackageVersion(name=n, version=resolved[n]) for n in sorted(resolved.keys() - installed.keys())],
        removed=[PackageVersion(name=n, version=installed[n]) for n in sorted(installed.keys() - resolved.keys())],
        changed=[PackageChange(name=n, old=installed[n], new=resolved[n])
                 for n in sorted(installed.keys() & resolved.keys()) if installed[n] != resolved[n]],
    )


def _quiet(_: str) -> None:
    pass
