"""`hangar worker join`: this host runs Celery workers for an environment of a control plane elsewhere.

A client of the control plane's API with a worker token (not an API key). It fetches the worker
bundle (hangar.domain.worker_bundle), builds the same runtime the control plane built, unpacks
the DAGs and plugins, makes airflow.cfg its own and runs `airflow celery worker` on the
environment's queue under Hangar's process supervisor (hangar.backend.process), so a crashed
worker is started again with supervisor's backoff. Files live in <home>/environments/<name>/
(hangar.runtime.remote_worker.EnvironmentLayout).

While it runs:
- a heartbeat goes out every few seconds, from a thread of its own, so a long runtime build
  never makes the host look LOST;
- every `--refresh-seconds` the bundle is fetched again: new DAGs or plugins are swapped in by a
  link; a changed configuration, secret, runtime or startup script starts a new worker first and
  then retires the old one by warm shutdown.

It stops only by Celery's warm shutdown (SIGTERM to the worker's leader alone: it takes no new
task and finishes what it runs) and exits 0 once the worker has exited, when:
- the heartbeat answers that the token was revoked (or no longer belongs to the environment);
- it gets SIGINT or SIGTERM (a second one stops the worker at once, killing its tasks).
It exits 1 with one line on stderr when it cannot join (bad token, refused environment,
unbuildable runtime) or the worker keeps crashing. A worker left running by a join that was
killed (SIGKILL) is adopted by the next join with the same --home.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from hangar.backend.pidfiles import settle_all
from hangar.backend.process import ManagedProcess, ProcessSpec, ProcessState
from hangar.cli.client import fail
from hangar.cli.workers import REFRESH_SECONDS, TOKEN_VARIABLE
from hangar.domain.worker_bundle import WorkerBundle
from hangar.errors import HangarError
from hangar.runtime import remote_worker, startup
from hangar.runtime.airflow_config import EnvironmentLayout
from hangar.runtime.venvs import Runtime, ensure_runtime, runtime_key
from hangar.settings import Settings

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# a worker that has not said "ready" by then gets its log's last lines shown (broker or database unreachable?)
READY_WARNING_SECONDS = 120.0


# --- talking to the control plane ---


class ControlPlaneUnreachable(HangarError):
    """No answer, or a 5xx: tried again later, the worker keeps running meanwhile."""

    code = "CONTROL_PLANE_UNREACHABLE"


class JoinRefused(HangarError):
    """The control plane said no (4xx): the message is its own."""

    def __init__(self, code: str, message: str, *, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status

    @property
    def token_rejected(self) -> bool:
        """The token is revoked, or no longer valid for this environment: the host must stop."""
        return self.status in (401, 403)


class ControlPlane:
    """The routes a joined host may call, with its worker token."""

    def __init__(self, *, url: str, token: str, name: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.path = f"/api/v1/environments/{name}"
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def bundle(self) -> WorkerBundle:
        return WorkerBundle.model_validate(self._send("GET", "/worker-bundle").json())

    def heartbeat(self, report: dict) -> dict:
        return self._send("POST", "/workers/heartbeat", json=report).json()

    def download(self, part: str, target: Path) -> None:
        try:
            with self._http.stream("GET", f"{self.path}/worker-bundle/{part}.tar.gz") as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                with open(target, "wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
        except httpx.HTTPError as exc:
            raise ControlPlaneUnreachable(f"cannot fetch the {part} from {self.url}: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, f"{self.path}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ControlPlaneUnreachable(f"cannot reach the Hangar control plane at {self.url}: {exc}") from None
        self._check(response)
        return response

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "HTTP_ERROR", f"{response.request.method} {response.request.url.path} failed with HTTP " \
                                          f"{response.status_code}"
        if response.status_code >= 500:
            raise ControlPlaneUnreachable(f"the control plane at {self.url} failed: {message}")
        raise JoinRefused(code, message, status=response.status_code)


# --- the host's loop ---


class JoinFailed(HangarError):
    code = "JOIN_FAILED"


@dataclass
class _Applied:
    """What this host runs now (digests only; the bundle's secrets stay in memory and in the worker)."""

    dags: str | None = None
    plugins: str | None = None
    runtime: Runtime | None = None


@dataclass(kw_only=True)
class JoinedHost:
    plane: ControlPlane
    layout: EnvironmentLayout
    runtimes: Path
    hostname: str
    concurrency: int | None  # None: the environment's worker_concurrency
    drain_seconds: float
    refresh_seconds: float = REFRESH_SECONDS
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        self.applied = _Applied()
        self.bundle: WorkerBundle | None = None
        self.current: ManagedProcess | None = None
        self.draining: list[ManagedProcess] = []
        self.index = 0  # the last worker number used (node <hostname>-<n>@<environment id>)
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stop_reason: str | None = None
        self.force = False
        self.revoked = False
        self.lost_after = 30.0
        self._ready_seen: dict[str, int] = {}  # worker name -> log offset while it has not said "ready"
        self._started_at: dict[str, float] = {}
        self._unreachable = False
        self._sending = threading.Lock()  # one heartbeat at a time; none after the last (STOPPED) one
        self._finished = False

    # --- entry points ---

    def request_stop(self, reason: str) -> None:
        """Warm shutdown; asked twice, the worker is stopped at once."""
        with self.lock:
            if self.stop_reason is not None:
                self.force = True
            else:
                self.stop_reason = reason
        self.wake.set()

    def run(self) -> None:
        bundle = self.plane.bundle()  # a bad token fails here, before anything is built
        self.layout.create()
        self._adopt(bundle)
        self._apply(bundle)
        if self.stop_reason is not None and not self._processes():
            say(f"stopped before a worker ran: {self.stop_reason}")
            return
        beats = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beats.start()
        try:
            self._loop()
        finally:
            self._final_heartbeat()

    # --- applying a bundle ---

    def _apply(self, bundle: WorkerBundle) -> None:
        """Make this host run `bundle`: runtime, files, configuration, and a worker with them."""
        if self.bundle is None or bundle.environment_id != self.bundle.environment_id:
            say(f"joining {bundle.environment} ({bundle.environment_id}), revision {bundle.revision}, Airflow "
                f"{bundle.airflow_version}, queue {bundle.queue}")
            for warning in bundle.warnings:
                say(f"warning: {warning}")
        runtime = self._runtime(bundle)
        if bundle.dags_sha256 != self.applied.dags or not self.layout.dags_link.exists():
            self._install("dags", bundle.dags_sha256, self.layout.dags, self.layout.dags_link)
            self.applied.dags = bundle.dags_sha256
        if bundle.plugins_sha256 != self.applied.plugins or not self.layout.plugins_link.exists():
            self._install("plugins", bundle.plugins_sha256, self.layout.plugins, self.layout.plugins_link)
            self.applied.plugins = bundle.plugins_sha256
        cfg = remote_worker.localize_cfg(bundle.airflow_cfg, layout=self.layout)
        with self.lock:
            self.bundle = bundle
            self.applied.runtime = runtime
        self._save_state()
        spec = self._spec(bundle, runtime, cfg, index=self.index or 1)
        if self.current is None and self.index:  # a worker an earlier join left running
            leftover = ManagedProcess(spec=spec)
            if leftover.adopt():
                if not leftover.stale:
                    self.current = leftover
                    say(f"adopted {spec.name} (pid {leftover.pid}), left running by an earlier join")
                    return
                self._retire(leftover, why="an earlier join left it running with another configuration")
                spec = self._spec(bundle, runtime, cfg, index=self.index + 1)
        elif self.current is not None:
            if self.current.spec.digest() == spec.digest():
                return
            spec = self._spec(bundle, runtime, cfg, index=self.index + 1)
        if self.stop_reason is not None:  # asked to stop while this was being prepared: start nothing
            return
        remote_worker.write_cfg(self.layout, cfg)  # read by a worker when it starts, and by each Airflow 2 task
        self._start(spec)

    def _runtime(self, bundle: WorkerBundle) -> Runtime:
        if not bundle.celery:
            raise JoinFailed(f"environment {bundle.environment} does not run Celery workers")
        key = runtime_key(python=bundle.runtime_python, airflow_version=bundle.airflow_version,
                          requirements=bundle.requirements, epoch=bundle.runtime_epoch, celery=True)
        if key != bundle.runtime_key:
            raise JoinFailed(f"this host would build runtime {key} for {bundle.environment}, the control plane runs "
                             f"{bundle.runtime_key}: the two Hangar installations build runtimes differently; "
                             "install the control plane's Hangar version here")
        if self.applied.runtime is not None and self.applied.runtime.key == key:
            return self.applied.runtime
        with err.status(f"runtime {key}: Python {bundle.runtime_python}, Airflow {bundle.airflow_version}",
                        spinner="dots") as status:
            runtime = ensure_runtime(root=self.runtimes, python=bundle.runtime_python,
                                     airflow_version=bundle.airflow_version, requirements=bundle.requirements,
                                     progress=lambda text: status.update(f"runtime {key}: {text[:100]}"),
                                     epoch=bundle.runtime_epoch, celery=True)
        say(f"runtime {runtime.key} ready ({runtime.path})")
        return runtime

    def _install(self, part: str, digest: str, parent: Path, link: Path) -> None:
        archive = self.layout.root / f".{part}.tar.gz.part"
        try:
            self.plane.download(part, archive)
            local = remote_worker.install_version(archive=archive, parent=parent, link=link)
        finally:
            archive.unlink(missing_ok=True)
        count = len(remote_worker.content_files(link))
        say(f"{part} {digest[:12]} in place ({count} files)" + ("" if local == digest else
                                                               "; they changed again meanwhile, fetched next time"))

    def _spec(self, bundle: WorkerBundle, runtime: Runtime, cfg: str, *, index: int) -> ProcessSpec:
        env = remote_worker.worker_env(bundle.env, layout=self.layout, runtime_bin=runtime.path / "bin")
        wrapper: list[str] = []
        if bundle.startup_script:
            script = self.layout.root / "startup" / f"{hashlib.sha256(bundle.startup_script.encode()).hexdigest()[:16]}.sh"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(bundle.startup_script)
            env.update(startup.launch_env())
            wrapper = startup.launch_argv(python=runtime.python, script=script, timeout=self.settings.startup_timeout,
                                          argv=[])
        # what the worker reads from files: a change starts a new worker (as on the control plane)
        env["HANGAR_CONFIG_DIGEST"] = hashlib.sha256(f"{cfg}\0{self.applied.plugins}".encode()).hexdigest()[:16]
        concurrency = self.concurrency or bundle.worker_concurrency
        name = f"worker-{index}"
        node = f"{self.hostname}-{index}@{bundle.environment_id}"
        return ProcessSpec(
            name=name, argv=[*wrapper, str(runtime.airflow), *remote_worker.worker_args(
                concurrency=concurrency, queue=bundle.queue, node=node)],
            env=env, cwd=self.layout.root, log_file=self.layout.logs / "components" / f"{name}.log",
            pid_file=self.layout.run / f"{name}.pid", start_seconds=self.settings.start_seconds,
            start_retries=self.settings.start_retries, stable_seconds=self.settings.stable_seconds,
        )

    def _start(self, spec: ProcessSpec) -> None:
        """Start a worker with `spec`; the one it replaces drains once it runs."""
        process = ManagedProcess(spec=spec)
        offset = spec.log_file.stat().st_size if spec.log_file.exists() else 0
        process.start()
        with self.lock:
            old, self.current = self.current, process
            self.index = int(spec.name.removeprefix("worker-"))
            self._ready_seen[spec.name] = offset
            self._started_at[spec.name] = time.monotonic()
        node = spec.argv[spec.argv.index("--celery-hostname") + 1]
        concurrency = spec.argv[spec.argv.index("--concurrency") + 1]
        say(f"worker {node} started (pid {process.pid}, concurrency {concurrency}); log: {spec.log_file}")
        if old is not None:
            self._retire(old, why=f"replaced by {node}")

    def _retire(self, process: ManagedProcess, *, why: str) -> None:
        running = remote_worker.running_tasks(process.pid)
        process.move_pid_file(self.layout.run / "draining" / f"{process.spec.name}-{process.pid}.pid")
        say(f"{process.spec.name} (pid {process.pid}) leaves, {why}: warm shutdown, its {running} running task(s) "
            "finish first")
        process.drain(grace=self.drain_seconds)
        with self.lock:
            self.draining.append(process)

    def _adopt(self, bundle: WorkerBundle) -> None:
        """What a killed join left: draining workers are followed to their end; the newest running
        one is kept by _apply if nothing changed since, and any other is retired."""
        settle_all(self.layout.run)  # a worker the killed join spawned may be named only by its intent
        for pid_file in sorted((self.layout.run / "draining").glob("*.pid")):
            process = ManagedProcess(spec=ProcessSpec(name=pid_file.stem.rsplit("-", 1)[0], argv=[], env={},
                                                      cwd=self.layout.root, log_file=Path(os.devnull),
                                                      pid_file=pid_file))
            if process.adopt():
                process.watch_drain(grace=self.drain_seconds)  # signalled once already; a second SIGTERM is not a drain
                self.draining.append(process)
                say(f"following {process.spec.name} (pid {process.pid}), left draining by an earlier join")
            else:
                pid_file.unlink(missing_ok=True)
        live: list[ManagedProcess] = []
        for pid_file in self.layout.run.glob("worker-*.pid"):
            process = ManagedProcess(spec=ProcessSpec(name=pid_file.stem, argv=[], env={}, cwd=self.layout.root,
                                                      log_file=Path(os.devnull), pid_file=pid_file))
            if process.adopt():
                live.append(process)
            else:
                pid_file.unlink(missing_ok=True)
        live.sort(key=lambda p: int(p.spec.name.removeprefix("worker-")))
        for process in live[:-1]:
            self._retire(process, why="an earlier join left it running")
        if live:
            self.index = int(live[-1].spec.name.removeprefix("worker-"))
        state = self._load_state()
        if state.get("environment_id") == bundle.environment_id:
            self.applied.dags, self.applied.plugins = state.get("dags"), state.get("plugins")

    # --- the loop ---

    def _loop(self) -> None:
        next_refresh = time.monotonic() + self.refresh_seconds
        forced = False
        while True:
            self._tick()
            with self.lock:
                reason, force = self.stop_reason, self.force
            if reason is not None and self.current is not None:
                self._retire_current(why=reason)
            if force and not forced:
                forced = True
                say("stopping now: the running tasks are killed")
                for process in self._processes():
                    process.stop()
            if reason is not None and not self._processes():
                say(f"stopped: {reason}")
                return
            if reason is None and time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self.refresh_seconds
                self._refresh()
            self._watch_ready()
            self.wake.wait(0.5)
            self.wake.clear()

    def _retire_current(self, *, why: str) -> None:
        with self.lock:
            process, self.current = self.current, None
        if process is not None:
            self._retire(process, why=why)

    def _tick(self) -> None:
        with self.lock:
            processes = self._processes()
        for process in processes:
            before = process.state
            process.tick()
            if process is self.current and process.state == ProcessState.BACKOFF and before != ProcessState.BACKOFF:
                say(f"{process.spec.name} {process.reason}; starting it again")
            if process is self.current and process.state == ProcessState.FATAL:
                raise JoinFailed(f"the worker keeps failing: {process.reason}; {_log_tail(process.spec.log_file)}")
            if process is self.current and process.state == ProcessState.STARTING and before == ProcessState.BACKOFF:
                self._ready_seen[process.spec.name] = _size(process.spec.log_file)
                self._started_at[process.spec.name] = time.monotonic()
        with self.lock:
            for process in [p for p in self.draining if p.state == ProcessState.STOPPED]:
                self.draining.remove(process)
                say(f"{process.spec.name} has finished its tasks and exited")

    def _processes(self) -> list[ManagedProcess]:
        return [p for p in [self.current, *self.draining] if p is not None]

    def _refresh(self) -> None:
        try:
            bundle = self.plane.bundle()
            self._apply(bundle)
        except JoinRefused as exc:
            if exc.token_rejected:
                self._revoked(exc.message)
            else:
                say(f"the control plane refused the bundle, keeping what runs: {exc.message}")
        except ControlPlaneUnreachable as exc:
            self._unreachable_once(exc.message)
        except HangarError as exc:  # a runtime that does not build, an archive that does not unpack
            say(f"could not follow the environment's change, keeping what runs: {exc.message}")

    def _watch_ready(self) -> None:
        for name, offset in list(self._ready_seen.items()):
            process = next((p for p in self._processes() if p.spec.name == name), None)
            if process is None:
                self._ready_seen.pop(name)
                continue
            text = _read_from(process.spec.log_file, offset)
            if " ready." in text:
                self._ready_seen.pop(name)
                say(f"{name} is ready: it takes tasks from {self.bundle.queue if self.bundle else 'its queue'}")
            elif time.monotonic() - self._started_at.get(name, time.monotonic()) > READY_WARNING_SECONDS:
                self._ready_seen.pop(name)
                say(f"warning: {name} has not said it is ready after {READY_WARNING_SECONDS:.0f} s; "
                    f"{_log_tail(process.spec.log_file)}")

    # --- heartbeats ---

    def _heartbeats(self) -> None:
        while not self.revoked:
            with self.lock:
                stopping = self.stop_reason is not None
                alive = self._processes()
            if stopping and not alive:
                return
            try:
                with self._sending:
                    if self._finished:
                        return
                    answer = self.plane.heartbeat(self._report())
                self.lost_after = float(answer.get("lost_after_seconds") or self.lost_after)
                if self._unreachable:
                    self._unreachable = False
                    say("the control plane answers again")
            except JoinRefused as exc:
                if exc.token_rejected:
                    self._revoked(exc.message)
                    return
                say(f"heartbeat refused: {exc.message}")
            except ControlPlaneUnreachable as exc:
                self._unreachable_once(exc.message)
            time.sleep(max(1.0, min(5.0, self.lost_after / 4)))

    def _report(self, *, stopped: bool = False) -> dict:
        with self.lock:
            current, processes, bundle, runtime = self.current, self._processes(), self.bundle, self.applied.runtime
            stopping = self.stop_reason is not None
        state = "STOPPED" if stopped else ("DRAINING" if stopping or current is None else "RUNNING")
        nodes = [p.spec.argv[p.spec.argv.index("--celery-hostname") + 1] for p in processes
                 if "--celery-hostname" in p.spec.argv]
        concurrency = 0
        if current is not None and "--concurrency" in current.spec.argv:
            concurrency = int(current.spec.argv[current.spec.argv.index("--concurrency") + 1])
        return {
            "hostname": self.hostname, "concurrency": 0 if stopped else concurrency, "state": state,
            "running_tasks": 0 if stopped else sum(remote_worker.running_tasks(p.pid) for p in processes),
            "workers": [] if stopped else nodes,
            "airflow_version": bundle.airflow_version if bundle else None,
            "runtime_key": runtime.key if runtime else None,
        }

    def _final_heartbeat(self) -> None:
        with self._sending:
            self._finished = True
            if self.revoked:
                return
            try:
                self.plane.heartbeat(self._report(stopped=True))
            except HangarError:
                pass

    def _revoked(self, message: str) -> None:
        with self.lock:
            first = not self.revoked
            self.revoked = True
        if first:
            say(f"the control plane cut this host off: {message}")
            self.request_stop("the worker token was revoked")

    def _unreachable_once(self, message: str) -> None:
        if not self._unreachable:
            self._unreachable = True
            say(f"warning: {message}; the worker keeps running, trying again")

    # --- state on disk (no secrets) ---

    def _save_state(self) -> None:
        with self.lock:
            bundle = self.bundle
        state = {"environment_id": bundle.environment_id if bundle else None, "dags": self.applied.dags,
                 "plugins": self.applied.plugins}
        tmp = self.layout.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.layout.state)

    def _load_state(self) -> dict:
        try:
            return json.loads(self.layout.state.read_text())
        except (FileNotFoundError, ValueError):
            return {}


def say(text: str) -> None:
    out.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False, soft_wrap=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(1 << 20).decode(errors="replace")
    except FileNotFoundError:
        return ""


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except FileNotFoundError:
        return "its log is empty"
    return "its log ends: " + " | ".join(line.strip() for line in tail) if tail else "its log is empty"


# --- the command ---


def join(*, url: str, environment: str, token: str | None, token_file: Path | None, concurrency: int | None,
         home: Path | None, drain_timeout: float | None, refresh_seconds: float) -> None:
    """`hangar worker join` (its flags are declared in hangar.cli.workers): join, run until stopped, exit 0."""
    secret = _token(token, token_file)
    settings = Settings(**({"home": home} if home is not None else {}))
    layout = EnvironmentLayout(root=settings.home.expanduser().resolve() / "environments" / environment, joined_host=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    lock = _lock(layout, environment)
    plane = ControlPlane(url=url, token=secret, name=environment)
    host = JoinedHost(plane=plane, layout=layout, runtimes=settings.runtimes_dir,
                      hostname=remote_worker.host_name(socket.gethostname()), concurrency=concurrency,
                      drain_seconds=settings.worker_drain_seconds if drain_timeout is None else drain_timeout,
                      refresh_seconds=refresh_seconds, settings=settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: host.request_stop(f"{signal.Signals(number).name} received"))
    try:
        host.run()
    except HangarError as exc:  # refused, unreachable at the start, a runtime that does not build, a crashing worker
        if host.stop_reason is not None and not host._processes():
            say(f"stopped before a worker ran: {host.stop_reason}")  # Ctrl-C also ends uv's build with an error
            return
        fail(exc.message)
    finally:
        plane.close()
        lock.close()


def _token(token: str | None, token_file: Path | None) -> str:
    if token and token_file:
        fail("give the worker token once: --token or --token-file")
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            fail(f"cannot read the worker token from {token_file}: {exc.strerror}")
    token = token or os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        fail(f"a worker token is required: {TOKEN_VARIABLE}, --token-file or --token "
             "(from `hangar worker token create NAME` on the control plane)")
    return token


def _lock(layout: EnvironmentLayout, name: str):
    handle = open(layout.run / "join.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        fail(f"another `hangar worker join` runs for {name} with {layout.root}")
    return handle
