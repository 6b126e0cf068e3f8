"""Files and processes of an environment's Celery worker on a joined host (`hangar worker join`).

Both ends use this module: the control plane packs the running revision's DAGs and plugins
and states their digests (hangar.domain.worker_bundle); the joined host unpacks them, makes
the control plane's airflow.cfg its own, and runs `airflow celery worker` with it.

On the joined host an environment lives in `<home>/environments/<name>/`
(hangar.runtime.airflow_config.EnvironmentLayout with joined_host=True):

    airflow.cfg          the control plane's, with its paths replaced by this host's (localize_cfg)
    dags/<digest>/       each version of the DAGs as fetched; `dags-current` links to the live one
    plugins/<digest>/    the same for plugins; `plugins-current`
    startup/<digest>.sh  the environment's startup script, when it has one
    logs/                task logs, and the worker's own under logs/components/
    run/                 pid files: a worker outlives a killed `hangar worker join`, the next one adopts it

Invariants:
- a digest covers what Airflow reads: every file's relative path and bytes, symbolic links
  followed, bytecode caches left out; the same function runs on both ends, so equal digests
  mean equal files;
- a new version of the DAGs or plugins is unpacked aside and made live by renaming a link
  (rename(2)), so Airflow sees the old or the new files, never a mix; the version before
  stays on disk for tasks that started with it;
- an archive member that is not a plain file or folder, or would land outside its folder,
  is refused before anything is written.
"""
from __future__ import annotations

import configparser
import hashlib
import io
import json
import os
import re
import shutil
import socket
import tarfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit
from secrets import token_urlsafe

import psutil

from hangar.crypto import write_private
from hangar.errors import PermanentError
from hangar.runtime.airflow_config import ADDON_PATH, EnvironmentLayout

# what Airflow writes next to the files it imports, and never reads as DAGs or plugins
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_CHUNK = 1 << 20
# process titles of a running task: Airflow 3's task process, Airflow 2's forked task supervisor
TASK_TITLES = ("airflow worker -- ", "airflow task supervisor:")


class ArchiveInvalid(PermanentError):
    code = "WORKER_ARCHIVE_INVALID"


# --- content: what the DAGs and plugins archives hold ---


def content_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, file) for every file Airflow would read under `folder`, sorted.

    Links are followed (Airflow follows them too); a folder reached twice through links is
    walked once. A missing folder has no files."""
    found: list[tuple[str, Path]] = []
    seen: set[tuple[int, int]] = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        stat = os.stat(current)
        if (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for name in files:
            path = Path(current, name)
            if name.endswith(_SKIPPED_SUFFIXES) or not path.is_file():  # a dangling link, a socket
                continue
            found.append((path.relative_to(folder).as_posix(), path))
    return sorted(found)


def content_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for relative, path in content_files(folder):
        with open(path, "rb") as handle:
            data = handle.read()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def pack(folder: Path, target: Path) -> None:
    """A tar.gz of content_files(folder): plain files only, owned by nobody in particular."""
    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        for relative, path in content_files(folder):
            with open(path, "rb") as handle:
                data = handle.read()
            info = tarfile.TarInfo(relative)
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = int(path.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))


def unpack(archive: Path, target: Path) -> None:
    """Extract a pack() archive into the empty folder `target`."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts or not parts:
                    raise ArchiveInvalid(f"archive member {member.name!r} would land outside {target}")
                if not (member.isfile() or member.isdir()):
                    raise ArchiveInvalid(f"archive member {member.name!r} is not a plain file or folder")
            target.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 checks again
                tar.extractall(target, members=members, filter="data")
            else:  # pragma: no cover
                tar.extractall(target, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveInvalid(f"the archive could not be unpacked: {exc}") from None


def install_version(*, archive: Path, parent: Path, link: Path) -> str:
    """Unpack `archive` as parent/<digest>, make `link` point at it, and keep only it and the
    version it replaced. Returns the digest of what was unpacked."""
    parent.mkdir(parents=True, exist_ok=True)
    building = parent / f".building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    unpack(archive, building)
    digest = content_sha256(building)
    final = parent / digest[:16]
    if final.is_dir():
        shutil.rmtree(building)
    else:
        building.rename(final)
    previous = Path(os.readlink(link)) if link.is_symlink() else None
    if previous == final:
        return digest
    EnvironmentLayout.point(link, final)
    for child in parent.iterdir():
        if child not in (final, previous) and not child.name.startswith(".building-"):
            shutil.rmtree(child, ignore_errors=True)
    return digest


# --- configuration: the control plane's airflow.cfg on this host ---


def _local_paths(layout: EnvironmentLayout) -> dict[tuple[str, str], Path]:
    """The options holding a path on the control plane's machine, and what they are here."""
    return {
        ("core", "dags_folder"): layout.dags_link,
        ("core", "plugins_folder"): layout.plugins_link,
        ("core", "simple_auth_manager_passwords_file"): layout.passwords,
        ("logging", "base_log_folder"): layout.logs,
        ("logging", "dag_processor_child_process_log_directory"): layout.logs / "dag_processor",
        ("scheduler", "child_process_log_directory"): layout.logs / "scheduler",
    }


def localize_cfg(cfg_text: str, *, layout: EnvironmentLayout) -> str:
    """The control plane's airflow.cfg with its paths replaced by this host's.

    The options Hangar renders get their place in `layout`; any other mention of a path under
    the control plane's environment folder (the folder holding its dags_folder link) is moved
    under `layout.root`. Values are kept as written (Airflow reads a literal % as %%)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    remote_root = None
    if parser.has_option("core", "dags_folder"):
        remote_root = str(PurePosixPath(parser.get("core", "dags_folder").replace("%%", "%")).parent)
    local = str(layout.root).replace("%", "%%")
    for section in parser.sections():
        for key, value in parser[section].items():
            if remote_root and remote_root != "/":
                moved = local if value == remote_root else value.replace(remote_root + "/", local + "/")
                parser[section][key] = moved
    for (section, key), path in _local_paths(layout).items():
        if parser.has_option(section, key):
            parser[section][key] = str(path).replace("%", "%%")
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def write_cfg(layout: EnvironmentLayout, cfg_text: str) -> None:
    tmp = layout.cfg.with_suffix(".tmp")
    tmp.write_text(cfg_text)
    tmp.replace(layout.cfg)
    if not layout.passwords.exists():
        # the api-server's file, which a worker never reads; present so that nothing looks for it in vain
        write_private(layout.passwords, json.dumps({"admin": token_urlsafe(24)}).encode())


# --- the worker process ---


_HOSTNAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def host_name(raw: str) -> str:
    """The machine's name as the control plane accepts it (letters, digits, . _ -)."""
    name = _HOSTNAME_CHARS.sub("-", raw).strip("-._")[:200]
    return name or "host"


def worker_args(*, concurrency: int, queue: str, node: str) -> list[str]:
    """`airflow ...` arguments of a joined host's worker, as the control plane runs its own
    (hangar.backend.components.worker_component), under the host's node name; unlike those, it
    serves its task logs (Airflow's worker log server), which stay on this host."""
    return ["celery", "worker", "--concurrency", str(concurrency), "--queues", queue, "--celery-hostname", node,
            "--without-mingle", "--without-gossip"]


def reachable_address(control_plane_url: str) -> str:
    """This host's address on the route to the control plane: the one the control plane (and
    the environment's api-server beside it) reaches this host by. A UDP socket is only
    connected, so nothing is sent."""
    parts = urlsplit(control_plane_url)
    with socket.socket(socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)))
        return probe.getsockname()[0]


def worker_env(bundle_env: dict[str, str], *, layout: EnvironmentLayout, runtime_bin: Path,
               inherited: dict[str, str] | None = None, address: str | None = None) -> dict[str, str]:
    """The worker's environment: this host's own (without Airflow's, Hangar's or Python's
    variables, so no worker token reaches a task), the bundle's, and this host's paths. With
    `address`, its tasks record it as their hostname (hangar_airflow.hostname), so that the
    api-server fetches their logs from this host's log server."""
    source = os.environ if inherited is None else inherited
    kept = {k: v for k, v in source.items() if not k.startswith(("AIRFLOW", "HANGAR_", "VIRTUAL_ENV", "PYTHON"))}
    return {
        **kept,
        **bundle_env,
        "AIRFLOW_HOME": str(layout.root),
        "AIRFLOW_CONFIG": str(layout.cfg),
        "PYTHONPATH": str(ADDON_PATH),
        "PATH": f"{runtime_bin}{os.pathsep}{kept.get('PATH', '/usr/bin:/bin')}",
        **({"AIRFLOW__CORE__HOSTNAME_CALLABLE": "hangar_airflow.hostname.reachable_address",
            "HANGAR_WORKER_ADDRESS": address} if address else {}),
    }


def running_tasks(pid: int | None) -> int:
    """Tasks running under the worker whose leader is `pid`, counted by their process titles."""
    if pid is None:
        return 0
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    count = 0
    for child in children:
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if title.startswith(TASK_TITLES):
            count += 1
    return count
