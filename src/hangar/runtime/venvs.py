"""Runtimes: venvs built with uv and keyed by hash(python, airflow version, requirements).

A runtime is built once into a temporary folder and renamed into place, so a
crash mid-build never leaves a half-built runtime under its key. Every
environment with the same key shares it. Airflow is pinned in the same resolve as
the user's requirements, so a requirement that needs another Airflow fails to
resolve with uv's own message.

An epoch above 0 (an environment's runtime_epoch, raised by maintenance) is mixed
into the key and builds with uv's --refresh, so a runtime that resolves the same
requirements again picks up patched releases instead of the cached ones. Epoch 0
gives the keys runtimes always had, so existing runtimes stay valid.
"""
from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from uv import find_uv_bin

from hangar.domain.spec import parse_version
from hangar.errors import AirflowVersionNotFound, RuntimeBuildFailed

Progress = Callable[[str], None]
READY_MARKER = ".hangar-ready"


@dataclass(frozen=True, kw_only=True)
class Runtime:
    key: str
    path: Path
    airflow_version: str

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
    extras = "postgres,celery" if celery else "postgres"
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


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_uv(args: list[str], *, progress: Progress, log: Path) -> tuple[int, str]:
    lines: list[str] = []
    with open(log, "a") as log_handle:
        process = subprocess.Popen(
            [find_uv_bin(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**_clean_env(), "NO_COLOR": "1"},
        )
        assert process.stdout is not None
        for line in process.stdout:
            log_handle.write(line)
            lines.append(line.rstrip())
            if line.strip():
                progress(line.strip())
        return process.wait(), "\n".join(lines)


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")}


def _failure(output: str, airflow_version: str) -> Exception:
    summary = "\n".join(line for line in output.splitlines() if line.strip())[-2000:]
    missing = rf"no version of apache-airflow(\[[a-z,]+\])?=={re.escape(airflow_version)}\b"
    if re.search(missing, output, re.I):
        return AirflowVersionNotFound(f"apache-airflow {airflow_version} does not exist on the package index")
    return RuntimeBuildFailed(f"requirements could not be installed; uv said:\n{summary}")


def ensure_runtime(
    *, root: Path, python: str, airflow_version: str, requirements: str | None, progress: Progress, epoch: int = 0,
    celery: bool = False,
) -> Runtime:
    key = runtime_key(python=python, airflow_version=airflow_version, requirements=requirements, epoch=epoch,
                      celery=celery)
    final = root / key
    runtime = Runtime(key=key, path=final, airflow_version=airflow_version)
    if (final / READY_MARKER).exists():
        progress(f"runtime {key} is cached")
        return runtime
    with _file_lock(root / f".{key}.lock"):
        if (final / READY_MARKER).exists():
            progress(f"runtime {key} is cached")
            return runtime
        building = root / f".{key}.building"
        shutil.rmtree(building, ignore_errors=True)
        log = root / f"{key}.build.log"
        log.write_text("")
        progress(f"building runtime {key}: python {python}, apache-airflow {airflow_version}")
        code, output = _run_uv(["venv", "--quiet", "--python", python, str(building)], progress=progress, log=log)
        if code != 0:
            raise RuntimeBuildFailed(f"uv could not create a Python {python} venv: {output[-1000:]}")
        args = ["pip", "install", "--compile-bytecode", "--python", str(building / "bin" / "python"),
                *base_packages(airflow_version, celery=celery)]
        if epoch:  # a rebuild for patched releases: revalidate what uv has cached
            args.append("--refresh")
        if requirements and requirements.strip():
            req_file = building / "hangar-requirements.txt"
            req_file.write_text(requirements)
            args += ["--requirement", str(req_file)]
        code, output = _run_uv(args, progress=progress, log=log)
        if code != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise _failure(output, airflow_version)
        # uv venvs hold absolute paths; the rename keeps the interpreter symlinks valid but
        # scripts' shebangs point at the building path, so they are rewritten.
        building.rename(final)
        _fix_shebangs(final / "bin", old=str(building), new=str(final))
        (final / READY_MARKER).write_text(airflow_version)
        progress(f"runtime {key} built")
    return runtime


def _fix_shebangs(bin_dir: Path, *, old: str, new: str) -> None:
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        try:
            head = script.read_bytes()[:2]
            if head != b"#!":
                continue
            text = script.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if old in text:
            script.write_text(text.replace(old, new))
    activate = bin_dir / "activate"
    if activate.exists():
        activate.write_text(activate.read_text().replace(old, new))
    cfg = bin_dir.parent / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_text(cfg.read_text().replace(old, new))
