"""Runtimes: venvs built with uv and keyed by hash(python, airflow version, requirements).

Every environment with the same key shares a runtime, and so may several HANGAR_HOMEs and
control planes pointed at one runtimes folder (HANGAR_RUNTIMES_DIR): building Airflow takes
tens of seconds, reusing it nothing. Airflow is pinned in the same resolve as the user's
requirements, so a requirement that needs another Airflow fails to resolve with uv's own
message.

Invariants, for any number of processes sharing `root`:
- `root/<key>` exists only complete: a runtime is built in a folder of its own
  (`.<key>.<host>.<pid>.building`), its scripts are rewritten for the final path, the ready
  marker is written last inside it, and one rename(2) publishes it. A build killed mid-way
  leaves only its building folder, never anything under the key.
- One build per key at a time: builders hold an flock on `root/.<key>.lock` (released by the
  kernel when a builder dies; lock files are never deleted), and check for the runtime again
  once they hold it, so concurrent requests for one key build it once.
- A building folder is removed only by its own builder, or by the next holder of the key's
  lock when its builder is gone (a folder named for a live process of this host is left).
- Nothing in Hangar deletes a published runtime: another home may run environments on it.
- A runtime holds what uv installed and nothing of any environment: no secret, no
  requirements file, no configuration.

An epoch above 0 (an environment's runtime_epoch, raised by maintenance) is mixed
into the key and builds with uv's --refresh, so a runtime that resolves the same
requirements again picks up patched releases instead of the cached ones. Epoch 0
gives the keys runtimes always had, so existing runtimes stay valid.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from uv import find_uv_bin

from hangar.backend.identity import RunAs, builder, give_tree
from hangar.files import file_lock
from hangar.schemas.versions import parse_version
from hangar.errors import AirflowVersionNotFound, RuntimeBuildFailed

Progress = Callable[[str], None]
READY_MARKER = ".hangar-ready"


@dataclass(frozen=True, kw_only=True)
class Runtime:
    key: str
    path: Path
    airflow_version: str
    built: bool = False  # built by this call, rather than found ready

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def airflow(self) -> Path:
        return self.path / "bin" / "airflow"

    @property
    def major(self) -> int:
        return parse_version(self.airflow_version)[0]


def base_packages(airflow_version: str, *, celery: bool = False) -> list[str]:
    """What every runtime installs; Celery environments add Airflow's celery extra (the Celery
    provider, celery, kombu and the Redis client; the AMQP client comes with kombu)."""
    extras = "postgres,statsd,celery" if celery else "postgres,statsd"  # statsd: the metrics (telemetry)
    packages = [f"apache-airflow[{extras}]=={airflow_version}", "psycopg2-binary"]
    major, minor, _ = parse_version(airflow_version)
    if major == 3 and minor <= 2:
        # measured on 3.2.2: with the fastapi the index resolves to (0.165) the execution API cannot be
        # built ("Model 'TITerminalStatePayload' needs a discriminator field") and every component
        # fails; 3.3.2 resolves fastapi 0.136.3, with which 3.2.2 works too
        packages.append("fastapi<0.137")
    return packages


def runtime_key(*, python: str, airflow_version: str, requirements: str | None, epoch: int = 0,
                celery: bool = False) -> str:
    normalized = "\n".join(sorted(line.strip() for line in (requirements or "").splitlines() if line.strip()))
    parts = [python, airflow_version, *base_packages(airflow_version, celery=celery), normalized]
    if epoch:
        parts.append(f"epoch={epoch}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _building_path(root: Path, key: str) -> Path:
    return root / f".{key}.{_host()}.{os.getpid()}.building"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear_leftovers(root: Path, key: str) -> None:
    """Called with the key's lock held: what dead builds of `key` left behind.

    A folder named for a live process of this host is kept, in case it still builds."""
    pattern = re.compile(rf"^\.{re.escape(key)}\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.building$")
    own = _building_path(root, key).name
    for child in root.glob(f".{key}.*building"):
        match = pattern.match(child.name)
        if child.name == own or child.name == f".{key}.building":
            pass  # this process's earlier attempt, or the name builds had before they were per process
        elif match is None or (match["host"] == _host() and _alive(int(match["pid"]))):
            continue
        shutil.rmtree(child, ignore_errors=True)
    final = root / key
    if final.exists() and not (final / READY_MARKER).exists():
        # published without its marker by a Hangar that wrote the marker after the rename and
        # died in between; nothing runs on it (only ready runtimes are handed out)
        stale = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".stale", dir=root))
        final.rename(stale / key)
        shutil.rmtree(stale, ignore_errors=True)


def run_uv(args: list[str], *, progress: Progress, log: Path, as_user: RunAs | None = None,
           scratch: Path | None = None) -> tuple[int, str]:
    """uv ARGS; `as_user` (with a `scratch` folder of that user's for HOME and uv's cache): as
    that user, since what uv installs or inspects may run code (a build script, a .pth file)."""
    lines: list[str] = []
    env = {**clean_env(), "NO_COLOR": "1"}
    if as_user is not None:
        assert scratch is not None
        # nothing of the caller's uv (`uv run` names its own interpreter, which may be in root's home)
        env = {k: v for k, v in env.items() if k != "UV" and not k.startswith("UV_")}
        env.update({"HOME": str(scratch), "UV_CACHE_DIR": str(scratch / "uv-cache"), "TMPDIR": str(scratch),
                    "USER": as_user.name, "LOGNAME": as_user.name})
    with open(log, "a") as log_handle:
        process = subprocess.Popen(
            [find_uv_bin(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env, cwd=scratch if as_user is not None else None,
            **(as_user.popen() if as_user is not None else {}),
        )
        assert process.stdout is not None
        for line in process.stdout:
            log_handle.write(line)
            lines.append(line.rstrip())
            if line.strip():
                progress(line.strip())
        return process.wait(), "\n".join(lines)


def clean_env() -> dict[str, str]:
    """This process's environment without what would point uv or Python at Hangar's own venv."""
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")}


def install_failure(output: str, airflow_version: str) -> Exception:
    """The error to raise for a failed `uv pip install` of a runtime, from what uv printed."""
    summary = "\n".join(line for line in output.splitlines() if line.strip())[-2000:]
    missing = rf"no version of apache-airflow(\[[a-z,]+\])?=={re.escape(airflow_version)}\b"
    if re.search(missing, output, re.I):
        return AirflowVersionNotFound(f"apache-airflow {airflow_version} does not exist on the package index")
    return RuntimeBuildFailed(f"requirements could not be installed; uv said:\n{summary}")


def builder_for(isolated: bool) -> RunAs | None:
    """Who installs and inspects requirements: the build user when environments are isolated."""
    return builder() if isolated else None


def ensure_runtime(
    *, root: Path, python: str, airflow_version: str, requirements: str | None, progress: Progress, epoch: int = 0,
    celery: bool = False, builder: RunAs | None = None,
) -> Runtime:
    """The ready runtime for these inputs, built under `root` unless it is there already."""
    key = runtime_key(python=python, airflow_version=airflow_version, requirements=requirements, epoch=epoch,
                      celery=celery)
    root = root.absolute()  # uv writes absolute paths into the venv
    final = root / key
    runtime = Runtime(key=key, path=final, airflow_version=airflow_version)
    if (final / READY_MARKER).exists():
        progress(f"runtime {key} is cached")
        return runtime
    with file_lock(root / f".{key}.lock", waiting=lambda: progress(f"waiting for another build of runtime {key}")):
        if (final / READY_MARKER).exists():
            progress(f"runtime {key} is cached")
            return runtime
        _clear_leftovers(root, key)
        building = _building_path(root, key)
        log = root / f"{key}.build.log"
        log.write_text("")
        progress(f"building runtime {key}: python {python}, apache-airflow {airflow_version}")
        try:
            _build(building, python=python, airflow_version=airflow_version, requirements=requirements,
                   epoch=epoch, celery=celery, progress=progress, log=log, builder=builder)
            # uv venvs hold absolute paths: the interpreter symlinks stay valid after the rename,
            # but scripts' shebangs name the building folder, so they are rewritten first
            _fix_shebangs(building / "bin", old=str(building), new=str(final))
            (building / READY_MARKER).write_text(airflow_version)
            building.rename(final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        progress(f"runtime {key} built")
    return replace(runtime, built=True)


def _build(building: Path, *, python: str, airflow_version: str, requirements: str | None, epoch: int, celery: bool,
           progress: Progress, log: Path, builder: RunAs | None = None) -> None:
    """The venv with Airflow, then the requirements.

    With a `builder`, Airflow and its pinned packages are installed as the control plane (from
    the package index, with uv's shared cache), and the requirements as `builder`, with a cache of
    their own: their code (a build script, a .pth file) runs while they install, and must not run
    with root's rights or leave anything in a cache other builds read. The runtime is root's
    again afterwards, so no build can change another's runtime."""
    code, output = run_uv(["venv", "--quiet", "--python", python, str(building)], progress=progress, log=log)
    if code != 0:
        raise RuntimeBuildFailed(f"uv could not create a Python {python} venv: {output[-1000:]}")
    args = ["pip", "install", "--compile-bytecode", "--python", str(building / "bin" / "python"),
            *base_packages(airflow_version, celery=celery)]
    if epoch:  # a rebuild for patched releases: revalidate what uv has cached
        args.append("--refresh")
    wanted = bool(requirements and requirements.strip())
    if builder is not None and wanted:
        code, output = run_uv(args, progress=progress, log=log)
        if code != 0:
            raise install_failure(output, airflow_version)
    # the requirements file stays out of the runtime: a line may carry an index's credentials,
    # which uv itself neither prints nor records in what it installs
    with tempfile.TemporaryDirectory(prefix="hangar-requirements-") as scratch:
        if wanted:
            req_file = Path(scratch) / "requirements.txt"
            req_file.write_text(requirements or "")
            args += ["--requirement", str(req_file)]
        if builder is not None and wanted:
            give_tree(Path(scratch), builder.uid, builder.gid)
            give_tree(building, builder.uid, builder.gid)
            try:
                code, output = run_uv(args, progress=progress, log=log, as_user=builder, scratch=Path(scratch))
            finally:
                give_tree(building, 0, 0)
        else:
            code, output = run_uv(args, progress=progress, log=log)
    if code != 0:
        raise install_failure(output, airflow_version)


def _fix_shebangs(bin_dir: Path, *, old: str, new: str) -> None:
    """Scripts and activation files in `bin_dir` (text files only) name `new` instead of `old`."""
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        try:
            data = script.read_bytes()
            if b"\0" in data:
                continue
            text = data.decode()
        except (UnicodeDecodeError, OSError):
            continue
        if old in text:
            script.write_text(text.replace(old, new))
    cfg = bin_dir.parent / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_text(cfg.read_text().replace(old, new))


# an unprivileged uid that exists on every Linux system, to ask whether anyone may run an interpreter
_NOBODY = 65534


def python_for_everyone(python: str) -> str:
    """An interpreter for `python` (a version or a path) that an unprivileged user can run.

    A runtime's venv runs its base interpreter in place, so environments that run as their own
    users need one outside any private home (pyenv's under /root is 0700). `python` itself if
    it works for such a user, else the system's python{version}; RuntimeBuildFailed otherwise."""
    candidates = [python] if "/" in python else []
    if "/" not in python:
        found = subprocess.run([find_uv_bin(), "python", "find", python], capture_output=True, text=True,
                               env=clean_env())
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(found.stdout.strip())
        candidates += [f"/usr/bin/python{python}", f"/usr/local/bin/python{python}"]
    for candidate in candidates:
        try:
            runs = subprocess.run([candidate, "-I", "-c", "import encodings"], capture_output=True,
                                  timeout=30, user=_NOBODY, group=_NOBODY, extra_groups=[])
        except (OSError, subprocess.SubprocessError):
            continue
        if runs.returncode == 0:
            return candidate
    raise RuntimeBuildFailed(
        f"no Python {python} that an unprivileged user can run (tried {', '.join(candidates)}): environments "
        f"run as their own users when Hangar runs as root, so set HANGAR_RUNTIME_PYTHON to an interpreter "
        f"outside any private home folder")
