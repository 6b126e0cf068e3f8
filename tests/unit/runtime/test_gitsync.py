"""DAGs from git, against a real git server (git http-backend over HTTP, token required) and a
plain bare repository (file://): what is served, what is refused and why, and that the token
stays off every command line and out of every message."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from hangar.errors import (
    GitAuthFailed,
    GitHistoryRewritten,
    GitHostKeyMismatch,
    GitRefNotFound,
    GitSubdirMissing,
    GitUnreachable,
)
from hangar.runtime import gitcommand
from hangar.runtime.gitcommand import Git, classify
from hangar.runtime.gitsync import GitSource, HttpsToken, SshKey, read_state, sync
from tests.e2e.gitserver import GitServer, WorkClone

TOKEN = "ghp_TestToken0123456789abcdefSECRET"
TIMEOUT = 60.0


@pytest.fixture
def server(tmp_path: Path):
    with GitServer(root=tmp_path / "served", token=TOKEN) as running:
        yield running


@pytest.fixture
def repo(server: GitServer) -> WorkClone:
    return server.create_repo("dags")


def source(server: GitServer, **fields) -> GitSource:
    fields.setdefault("credential", HttpsToken(token=TOKEN))
    return GitSource(url=server.url("dags"), **fields)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_first_sync_serves_the_branch_and_records_it(tmp_path: Path, server: GitServer, repo: WorkClone) -> None:
    sha = repo.commit({"dag.py": "one", "lib/util.py": "u"}, "first")
    repo.push()
    root = tmp_path / "sync"
    result = sync(root=root, source=source(server), timeout=TIMEOUT)
    assert (result.commit, result.changed) == (sha, True)
    assert result.path == root / "commits" / sha
    assert os.readlink(root / "current") == f"commits/{sha}"
    assert (root / "current" / "dag.py").read_text() == "one"
    assert (root / "current" / "lib" / "util.py").read_text() == "u"
    state = json.loads((root / "state.json").read_text())
    assert state["commit"] == sha and state["last_error"] is None and state["fetched_at"].endswith("Z")
    assert result.commit_time.tzinfo is not None and abs(time.time() - result.commit_time.timestamp()) < 120


def test_a_change_is_served_and_no_change_is_reported_unchanged(tmp_path: Path, server: GitServer,
                                                                repo: WorkClone) -> None:
    repo.commit({"dag.py": "one", "old.py": "x"}, "first")
    repo.push()
    root = tmp_path / "sync"
    sync(root=root, source=source(server), timeout=TIMEOUT)
    second = repo.commit({"dag.py": "two", "old.py": None}, "second")
    repo.push()
    changed = sync(root=root, source=source(server), timeout=TIMEOUT)
    assert (changed.commit, changed.changed) == (second, True)
    assert (root / "current" / "dag.py").read_text() == "two"
    assert not (root / "current" / "old.py").exists()
    again = sync(root=root, source=source(server), timeout=TIMEOUT)
    assert (again.commit, again.changed) == (second, False)
    assert again.fetched_at > changed.fetched_at


def test_only_the_subdir_is_served(tmp_path: Path, server: GitServer, repo: WorkClone) -> None:
    repo.commit({"README.md": "r", "airflow/dags/dag.py": "d"}, "first")
    repo.push()
    result = sync(root=tmp_path / "sync", source=source(server, subdir="airflow/dags/"), timeout=TIMEOUT)
    assert sorted(os.listdir(result.path)) == ["dag.py"]
    with pytest.raises(GitSubdirMissing, match="'nope'"):
        sync(root=tmp_path / "sync", source=source(server, subdir="nope"), timeout=TIMEOUT)
    assert (tmp_path / "sync" / "current" / "dag.py").read_text() == "d"


def test_tag_and_full_sha_refs(tmp_path: Path, server: GitServer, repo: WorkClone) -> None:
    first = repo.commit({"dag.py": "v1"}, "first")
    repo.push()
    repo.tag("v1")
    repo.commit({"dag.py": "v2"}, "second")
    repo.push()
    tagged = sync(root=tmp_path / "tag", source=source(server, ref="v1"), timeout=TIMEOUT)
    assert tagged.commit == first and (tagged.path / "dag.py").read_text() == "v1"
    pinned = sync(root=tmp_path / "sha", source=source(server, ref=first), timeout=TIMEOUT)
    assert pinned.commit == first and (pinned.path / "dag.py").read_text() == "v1"


@pytest.mark.parametrize("ref", ["no-such-branch", "0123456789abcdef0123456789abcdef01234567"])
def test_an_unknown_ref_is_named_and_leaves_current_alone(tmp_path: Path, server: GitServer, repo: WorkClone,
                                                          ref: str) -> None:
    sha = repo.commit({"dag.py": "one"}, "first")
    repo.push()
    root = tmp_path / "sync"
    sync(root=root, source=source(server), timeout=TIMEOUT)
    with pytest.raises(GitRefNotFound, match=ref):
        sync(root=root, source=source(server, ref=ref), timeout=TIMEOUT)
    assert os.readlink(root / "current") == f"commits/{sha}"
    assert read_state(root).last_error["code"] == "GIT_REF_NOT_FOUND"


@pytest.mark.parametrize("credential", [HttpsToken(token="wrong-" + TOKEN[::-1]), None])
def test_a_wrong_or_missing_token_is_an_auth_failure_that_names_no_token(
        tmp_path: Path, server: GitServer, repo: WorkClone, credential: HttpsToken | None) -> None:
    repo.commit({"dag.py": "one"}, "first")
    repo.push()
    with pytest.raises(GitAuthFailed) as raised:
        sync(root=tmp_path / "sync", source=source(server, credential=credential), timeout=TIMEOUT)
    assert "127.0.0.1" in raised.value.message
    written = (tmp_path / "sync" / "state.json").read_text()
    for text in (raised.value.message, written):
        assert TOKEN not in text and TOKEN[::-1] not in text
    assert ("/dags.git/info/refs?service=git-upload-pack", 401) in server.requests


def test_a_port_nothing_listens_on_is_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/dags.git"
    with pytest.raises(GitUnreachable, match="cannot be reached"):
        sync(root=tmp_path / "sync", source=GitSource(url=url, credential=HttpsToken(token=TOKEN)), timeout=TIMEOUT)


def test_a_force_push_is_refused_and_the_last_good_commit_keeps_serving(tmp_path: Path, server: GitServer,
                                                                        repo: WorkClone) -> None:
    repo.commit({"dag.py": "one"}, "first")
    good = repo.commit({"dag.py": "two"}, "second")
    repo.push()
    root = tmp_path / "sync"
    sync(root=root, source=source(server), timeout=TIMEOUT)
    rewritten = repo.force_push(to="HEAD~1", files={"dag.py": "evil"})
    for _ in range(2):  # the second time from the remembered refusal
        with pytest.raises(GitHistoryRewritten, match=good[:12]):
            sync(root=root, source=source(server), timeout=TIMEOUT)
        assert os.readlink(root / "current") == f"commits/{good}"
        assert (root / "current" / "dag.py").read_text() == "two"
    assert read_state(root).refused == rewritten
    accepted = sync(root=root, source=source(server), timeout=TIMEOUT, accept_rewritten_history=True)
    assert accepted.commit == rewritten and (root / "current" / "dag.py").read_text() == "evil"


def test_many_commits_pushed_at_once_are_a_fast_forward(tmp_path: Path, server: GitServer, repo: WorkClone) -> None:
    repo.commit({"dag.py": "0"}, "first")
    repo.push()
    root = tmp_path / "sync"
    sync(root=root, source=source(server), timeout=TIMEOUT)
    for number in range(1, 80):  # past the first deepening step (64)
        last = repo.commit({"dag.py": str(number)}, f"commit {number}")
    repo.push()
    assert sync(root=root, source=source(server), timeout=TIMEOUT).commit == last


def test_a_plain_bare_repository_over_file_url(tmp_path: Path) -> None:
    clone = WorkClone.local(bare=tmp_path / "bare.git", work=tmp_path / "work")
    first = clone.commit({"dag.py": "one"}, "first")
    clone.push()
    plain = GitSource(url=f"file://{tmp_path / 'bare.git'}")
    root = tmp_path / "sync"
    assert sync(root=root, source=plain, timeout=TIMEOUT).commit == first
    second = clone.commit({"dag.py": "two"}, "second")
    clone.push()
    result = sync(root=root, source=plain, timeout=TIMEOUT)
    assert (result.commit, result.changed) == (second, True)
    assert (root / "current" / "dag.py").read_text() == "two"


def test_old_commit_folders_are_pruned_but_never_current(tmp_path: Path) -> None:
    clone = WorkClone.local(bare=tmp_path / "bare.git", work=tmp_path / "work")
    root = tmp_path / "sync"
    shas = []
    for number in range(5):
        shas.append(clone.commit({"dag.py": str(number)}, f"commit {number}"))
        clone.push()
        sync(root=root, source=GitSource(url=f"file://{tmp_path / 'bare.git'}"), keep=2, timeout=TIMEOUT)
    assert sorted(os.listdir(root / "commits")) == sorted(shas[-2:])
    sync(root=root, source=GitSource(url=f"file://{tmp_path / 'bare.git'}", ref=shas[0]), keep=1, timeout=TIMEOUT)
    assert os.listdir(root / "commits") == [shas[0]]


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every entry under `folder`: its mode and content (a link's target)."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            seen[str(path.relative_to(folder))] = (info.st_mode, os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            seen[str(path.relative_to(folder))] = (info.st_mode, path.read_text())
    return seen


def test_a_change_reuses_unchanged_files_yet_equals_a_full_checkout(tmp_path: Path) -> None:
    clone = WorkClone.local(bare=tmp_path / "bare.git", work=tmp_path / "work")
    url = f"file://{tmp_path / 'bare.git'}"
    first = clone.commit({f"dags/dag_{i}.py": f"{i}\n" for i in range(50)}
                         | {"becomes_folder": "f", "folder/becomes_file.py": "x", "run.sh": "echo"}, "first")
    clone.push()
    root = tmp_path / "sync"
    old = sync(root=root, source=GitSource(url=url), timeout=TIMEOUT).path
    before = snapshot(old)
    (clone.path / "becomes_folder").unlink()
    os.chmod(clone.path / "run.sh", 0o755)
    os.symlink("dags/dag_1.py", clone.path / "link.py")
    second = clone.commit({"dags/dag_0.py": "changed\n", "dags/dag_2.py": None, "becomes_folder/inner.py": "i",
                           "folder/becomes_file.py": None, "folder": "now a file"}, "second")
    clone.push()
    new = sync(root=root, source=GitSource(url=url), timeout=TIMEOUT).path
    full = sync(root=tmp_path / "full", source=GitSource(url=url, ref=second), timeout=TIMEOUT).path
    assert snapshot(new) == snapshot(full)
    assert snapshot(new)["run.sh"][0] & 0o111 and snapshot(new)["link.py"][1] == "dags/dag_1.py"
    assert os.stat(new / "dags" / "dag_5.py").st_ino == os.stat(old / "dags" / "dag_5.py").st_ino
    assert snapshot(old) == before and old.name == first


def test_current_always_resolves_to_a_complete_folder(tmp_path: Path) -> None:
    clone = WorkClone.local(bare=tmp_path / "bare.git", work=tmp_path / "work")
    shas = []
    for number in range(3):
        files = {f"dags/dag_{i}.py": f"# {number} {i}\n" * 50 for i in range(300)}
        shas.append(clone.commit(files | {"always.txt": f"commit {number}\ncomplete\n"}, f"commit {number}"))
    clone.push()
    root = tmp_path / "sync"
    url = f"file://{tmp_path / 'bare.git'}"
    sync(root=root, source=GitSource(url=url, ref=shas[0]), keep=2, timeout=TIMEOUT)
    done, seen, problems = threading.Event(), set(), []

    def read() -> None:
        while not done.is_set():
            try:
                text = (root / "current" / "always.txt").read_text()
                seen.add(text.splitlines()[0])
                if not text.endswith("complete\n") or not (root / "current" / "dags" / "dag_299.py").exists():
                    problems.append(text)
            except OSError as error:
                problems.append(repr(error))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for turn in range(12):
            sync(root=root, source=GitSource(url=url, ref=shas[turn % 3]), keep=2, timeout=TIMEOUT)
    finally:
        done.set()
        reader.join()
    assert problems == []
    assert seen == {"commit 0", "commit 1", "commit 2"}


def test_the_token_is_on_no_command_line_and_the_private_folder_goes(tmp_path: Path, server: GitServer,
                                                                    repo: WorkClone, monkeypatch) -> None:
    repo.commit({f"dag_{i}.py": "x" * 2000 for i in range(200)}, "first")
    repo.push()
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(private))
    started, real_run = [], subprocess.run

    def recording_run(command, **kwargs):
        started.append(list(command))
        return real_run(command, **kwargs)

    monkeypatch.setattr(gitcommand.subprocess, "run", recording_run)
    done, lines = threading.Event(), []

    def watch() -> None:
        me = psutil.Process()
        while not done.is_set():
            for child in me.children(recursive=True):
                try:
                    lines.append(" ".join(child.cmdline()))
                except psutil.Error:
                    pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        sync(root=tmp_path / "sync", source=source(server), timeout=TIMEOUT)
        repo.commit({"dag_0.py": "y"}, "second")
        repo.push()
        sync(root=tmp_path / "sync", source=source(server), timeout=TIMEOUT)
    finally:
        done.set()
        watcher.join()
    assert any(command[:1] == ["git"] and "fetch" in command for command in started)
    assert any("git" in line for line in lines), "the watcher saw no git process"
    assert not [line for line in lines + [" ".join(c) for c in started] if TOKEN in line]
    assert os.listdir(private) == []  # the askpass script is gone


def test_ssh_key_material_is_private_and_an_ssh_host_that_does_not_answer_is_unreachable(tmp_path: Path) -> None:
    credential = SshKey(private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAkeymaterialkeymaterial\n"
                                    "-----END OPENSSH PRIVATE KEY-----", known_hosts="[127.0.0.1]:1 ssh-ed25519 AAAA")
    url = f"ssh://git@127.0.0.1:{closed_port()}/dags.git"
    with Git(credential=credential, timeout=TIMEOUT, url=url) as git:
        ssh = git._env["GIT_SSH_COMMAND"]
        key = Path(ssh.split(" -i ", 1)[1].split(" ", 1)[0])
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
        for option in ("IdentitiesOnly=yes", "StrictHostKeyChecking=yes", "BatchMode=yes", "UserKnownHostsFile="):
            assert option in ssh
        assert "keymaterial" not in ssh
        with pytest.raises(GitUnreachable, match="connection refused"):
            git.run("ls-remote", url)
    assert not key.exists()


@pytest.mark.parametrize(("stderr", "kind"), [
    ("@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n"
     "fatal: Could not read from remote repository.", GitHostKeyMismatch),
    ("No ED25519 host key is known for [git.example]:22 and you have requested strict checking.\n"
     "Host key verification failed.", GitHostKeyMismatch),
    ("git@git.example: Permission denied (publickey).\nfatal: Could not read from remote repository.", GitAuthFailed),
    ("ssh: Could not resolve hostname git.example: Name or service not known", GitUnreachable),
])
def test_ssh_failures_are_named(stderr: str, kind: type) -> None:
    error = classify(stderr=stderr, url="git@git.example:team/dags.git", ref="main", action="fetch")
    assert type(error) is kind and "git.example" in error.message


SSHD = Path("/usr/sbin/sshd")


@pytest.mark.skipif(not SSHD.exists(), reason="no sshd on this machine (/usr/sbin/sshd) to serve git over SSH; "
                    "the SSH path is tested up to the connection and by its failure messages")
def test_sync_over_ssh_with_a_pinned_host_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("host", "user", "other_host"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "user.pub").read_text())
    os.chmod(keys / "authorized_keys", 0o600)
    port = closed_port()
    config = keys / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
                      f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
                      "StrictModes no\nUsePAM no\nPasswordAuthentication no\nPubkeyAuthentication yes\n")
    sshd = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        clone = WorkClone.local(bare=tmp_path / "bare.git", work=tmp_path / "work")
        sha = clone.commit({"dag.py": "over ssh"}, "first")
        clone.push()
        user = psutil.Process().username()
        url = f"ssh://{user}@127.0.0.1:{port}{tmp_path / 'bare.git'}"
        pinned = f"[127.0.0.1]:{port} {' '.join((keys / 'host.pub').read_text().split(' ', 2)[:2])}"
        wrong = f"[127.0.0.1]:{port} {' '.join((keys / 'other_host.pub').read_text().split(' ', 2)[:2])}"
        key = (keys / "user").read_text()
        result = sync(root=tmp_path / "sync", source=GitSource(url=url, credential=SshKey(
            private_key=key, known_hosts=pinned)), timeout=TIMEOUT)
        assert result.commit == sha and (result.path / "dag.py").read_text() == "over ssh"
        with pytest.raises(GitHostKeyMismatch) as raised:
            sync(root=tmp_path / "other", source=GitSource(url=url, credential=SshKey(
                private_key=key, known_hosts=wrong)), timeout=TIMEOUT)
        assert "PRIVATE KEY" not in raised.value.message
        with pytest.raises(GitAuthFailed):
            sync(root=tmp_path / "refused", source=GitSource(url=url, credential=SshKey(
                private_key=(keys / "other_host").read_text(), known_hosts=pinned)), timeout=TIMEOUT)
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
