"""A real git server on loopback for tests: git's own `git http-backend` CGI program behind a
small threaded HTTP server that wants a token (HTTP Basic, the token as the password, which is
how git sends what GIT_ASKPASS prints) and answers 401 without it. It serves the bare
repositories of one folder, push included, and needs nothing but git.

    with GitServer(root=tmp_path / "served", token="s3cret") as server:
        repo = server.create_repo("dags")          # a work clone whose origin is the server
        sha = repo.commit({"dag.py": "..."}, "first")
        repo.push()
        server.url("dags")                         # http://127.0.0.1:<port>/dags.git

`WorkClone.local(...)` makes the same kind of clone of a plain bare repository (file://).
"""
from __future__ import annotations

import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

_CLEAN_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "LC_ALL": "C",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Hangar Tests",
    "GIT_AUTHOR_EMAIL": "tests@hangar.invalid",
    "GIT_COMMITTER_NAME": "Hangar Tests",
    "GIT_COMMITTER_EMAIL": "tests@hangar.invalid",
}


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=_CLEAN_ENV | (env or {}), capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def http_backend() -> str:
    return str(Path(git("--exec-path")) / "git-http-backend")


class WorkClone:
    """A non-bare clone that tests commit into and push from."""

    def __init__(self, *, path: Path, env: dict[str, str] | None = None) -> None:
        self.path, self.env = path, env or {}

    @classmethod
    def local(cls, *, bare: Path, work: Path) -> WorkClone:
        """A new bare repository at `bare` (served as file://) and a clone of it at `work`."""
        git("init", "--bare", "-q", "-b", "main", str(bare))
        git("init", "-q", "-b", "main", str(work))
        git("remote", "add", "origin", str(bare), cwd=work)
        return cls(path=work)

    def commit(self, files: dict[str, str | None], message: str) -> str:
        """Write (or, for None, remove) `files` and commit them; the new commit's sha."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
                while target.parent != self.path and not any(target.parent.iterdir()):
                    target = target.parent
                    target.rmdir()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git("add", "-A", cwd=self.path)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path)
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.path)

    def push(self, branch: str = "main") -> None:
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=self.path, env=self.env)

    def force_push(self, *, to: str = "HEAD~1", files: dict[str, str | None] | None = None,
                   message: str = "rewritten", branch: str = "main") -> str:
        """Rewrite history: reset to `to`, commit `files` on top, force-push; the new sha."""
        git("reset", "-q", "--hard", to, cwd=self.path)
        sha = self.commit(files or {"rewritten.txt": message}, message)
        git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=self.path, env=self.env)
        return sha

    def tag(self, name: str, *, annotated: bool = True) -> None:
        git("tag", *(["-a", "-m", name] if annotated else []), name, cwd=self.path)
        git("push", "-q", "origin", f"refs/tags/{name}", cwd=self.path, env=self.env)


class GitServer:
    """`git http-backend` over HTTP on 127.0.0.1, serving the bare repositories under `root`."""

    def __init__(self, *, root: Path, token: str, username: str = "x-access-token") -> None:
        self.root, self.token, self.username = root, token, username
        self.root.mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, int]] = []  # (path, status) of every request answered
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def create_repo(self, name: str) -> WorkClone:
        """A new served bare repository `name` and a work clone of it pushing through HTTP."""
        bare = self.root / f"{name}.git"
        git("init", "--bare", "-q", "-b", "main", str(bare))
        git("config", "http.receivepack", "true", cwd=bare)
        work = self.root.parent / f"{self.root.name}-work" / name
        git("init", "-q", "-b", "main", str(work))
        git("remote", "add", "origin", self.url(name), cwd=work)
        header = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        # the header reaches git through its environment, not its command line
        env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
               "GIT_CONFIG_VALUE_0": f"Authorization: Basic {header}"}
        return WorkClone(path=work, env=env)

    def __enter__(self) -> GitServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        expected = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._cgi()

            def do_POST(self) -> None:
                self._cgi()

            def _authorised(self) -> bool:
                given = self.headers.get("Authorization", "")
                if not given.startswith("Basic "):
                    return False
                try:
                    user, _, password = base64.b64decode(given[6:]).decode().partition(":")
                except ValueError:
                    return False
                return password == server.token or given[6:] == expected

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _cgi(self) -> None:
                body = self._body()
                if not self._authorised():
                    server.requests.append((self.path, 401))
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="hangar-tests"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                env = _CLEAN_ENV | {
                    "GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": server.username, "REMOTE_ADDR": self.client_address[0],
                    "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
                }
                for header, variable in (("Git-Protocol", "GIT_PROTOCOL"),
                                         ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
                    if value := self.headers.get(header):
                        env[variable] = value
                done = subprocess.run([http_backend()], input=body, env=env, capture_output=True, timeout=300)
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = done.stdout.partition(b"\n\n")
                status, headers = 200, []
                for line in head.decode("latin-1").splitlines():
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                server.requests.append((self.path, status))
                self.send_response(status)
                for name, value in headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
