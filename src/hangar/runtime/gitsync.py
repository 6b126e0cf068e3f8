"""An environment's DAG folder, synced from a git repository.

Layout under `root` (one per environment):

    repo.git/          bare cache; fetched shallow, one ref at a time
    commits/<sha>/     one folder per commit served (<sha>-<tree> when a subdir is served)
    current -> commits/<sha>     what Airflow reads
    state.json         last good commit, when it fetched, the last error

Invariants:
- Airflow never sees a half-written folder: a commit is checked out under a temporary name
  and renamed into place complete; `current` is switched by renaming a new symlink over it.
- A failed sync changes nothing Airflow reads: the last good commit keeps serving and the
  error is recorded in state.json and raised, named for its cause (hangar.errors Git*).
- A ref whose new commit does not descend from the last good commit of the same ref (a
  force-push) is refused unless the caller accepts rewritten history.
- Pruning keeps the `keep` most recently served folders and never the one `current` names.
- One sync at a time per root (an exclusive lock on root/.lock).

Fetch strategy (measured by bench/git_sync.py): the first sync of a ref fetches
`--depth 1`, one tree and nothing of the history. Later syncs of the same ref, with the last
good commit in the cache, fetch without a depth limit: the server stops where the new history
meets what the cache holds, so a fast-forward brings only the new commits, and the one fetch
is also the force-push check: `git merge-base --is-ancestor good new` is then final. A
rewritten branch shares nothing after the rewrite point, so that fetch brings its history
down to the root: a rewrite costs one fuller fetch, and a refused commit is remembered so
that cost is paid once per push. Without the last good commit in the cache (it was deleted),
the check deepens the shallow fetch by 64 commits, then 1024, then the whole history.
`--filter=blob:none` was measured and not kept: a DAG folder needs every blob of its tree,
so deferring them only adds a round trip.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hangar.errors import GitHistoryRewritten, GitSubdirMissing, GitSyncFailed
from hangar.files import file_lock, replace_symlink, write_atomically
from hangar.runtime.gitcheckout import materialise
from hangar.schemas.git import FULL_SHA
from hangar.runtime.gitcommand import Credential, Git, GitSource, HttpsToken, SshKey

__all__ = ["Credential", "GitSource", "HttpsToken", "SshKey", "SyncResult", "SyncState", "read_state",
           "sync"]

_DEEPEN_STEPS = ("--deepen=64", "--deepen=1024", "--unshallow")


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    commit: str
    commit_time: datetime
    changed: bool
    fetched_at: datetime
    path: Path  # the commit's folder, which `current` points at


@dataclass(kw_only=True)
class SyncState:
    """What root/state.json records; timestamps are UTC ISO-8601."""

    url: str = ""
    ref: str = ""
    subdir: str = ""
    commit: str | None = None
    commit_time: str | None = None
    folder: str | None = None
    fetched_at: str | None = None
    last_error: dict[str, str] | None = None
    refused: str | None = None  # a commit already proved to rewrite history
    folders: list[str] = field(default_factory=list)  # served folders, most recent first


def read_state(root: Path) -> SyncState:
    try:
        data = json.loads((root / "state.json").read_text())
    except FileNotFoundError:
        return SyncState()
    known = SyncState.__dataclass_fields__
    return SyncState(**{key: value for key, value in data.items() if key in known})


def sync(*, root: Path, source: GitSource, keep: int = 3, timeout: float,
         accept_rewritten_history: bool = False) -> SyncResult:
    """Fetch `source` and serve its commit at root/current; raises a GitSyncFailed subclass,
    with root/current untouched, when it cannot."""
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".lock"):
        state = read_state(root)
        fetched_at = datetime.now(UTC)
        git = Git(credential=source.credential, timeout=timeout, url=source.url)
        with git:
            try:
                result = _sync(git=git, root=root, source=source, state=state, keep=max(1, keep),
                               fetched_at=fetched_at, accept=accept_rewritten_history,
                               deadline=time.monotonic() + timeout)
            except GitSyncFailed as error:
                state.last_error = {"code": error.code, "message": git.scrub(error.message),
                                    "at": _iso(datetime.now(UTC))}
                _write_state(root, state)
                raise
        return result


def _sync(*, git: Git, root: Path, source: GitSource, state: SyncState, keep: int, fetched_at: datetime,
          accept: bool, deadline: float) -> SyncResult:
    repo = root / "repo.git"
    if state.url != source.url and repo.exists():
        shutil.rmtree(repo)  # another repository: its objects and shallow points are of no use
    if not (repo / "HEAD").exists():
        git.run("init", "--bare", "-q", str(repo))
        git.run("config", "gc.autoDetach", "false", git_dir=repo)
    good = state.commit if (state.url == source.url and state.ref == source.ref
                            and not FULL_SHA.match(source.ref)) else None
    # Holding the last good commit, an unlimited fetch stops where the new history meets it.
    cached = good is not None and _has_commit(git=git, repo=repo, sha=good, deadline=deadline)
    new = _fetch(git=git, repo=repo, source=source, deadline=deadline, depth=() if cached else ("--depth=1",))
    git.run("update-ref", "refs/hangar/fetched", new, git_dir=repo)

    if good is not None and new != good and not accept:
        if state.refused == new or not _descends(git=git, repo=repo, source=source, good=good, new=new,
                                                 settled=cached, deadline=deadline):
            state.refused = new
            raise GitHistoryRewritten(ref=source.ref, good=good, new=new)

    subdir = source.subdir.strip("/")
    try:  # after the colon everything is a path, so the tree's type is checked apart
        tree = git.run("rev-parse", "--verify", "--quiet", f"{new}:{subdir}" if subdir else f"{new}^{{tree}}",
                       git_dir=repo, deadline=deadline).strip()
        if git.run("cat-file", "-t", tree, git_dir=repo, deadline=deadline).strip() != "tree":
            raise GitSubdirMissing(subdir=subdir, commit=new)
    except GitSyncFailed:
        raise GitSubdirMissing(subdir=subdir, commit=new) from None
    name = f"{new}-{tree[:12]}" if subdir else new
    folder = root / "commits" / name
    if not folder.is_dir():
        materialise(git=git, repo=repo, tree=tree, folder=folder, deadline=deadline,
                    previous=_previous(git=git, repo=repo, root=root, state=state, deadline=deadline))
    before = _current_target(root)
    _switch(root=root, target=f"commits/{name}")

    stamp = int(git.run("show", "-s", "--format=%ct", new, git_dir=repo, deadline=deadline).strip())
    commit_time = datetime.fromtimestamp(stamp, UTC)
    git.run("update-ref", "refs/hangar/good", new, git_dir=repo)
    state.url, state.ref, state.subdir = source.url, source.ref, subdir
    state.commit, state.commit_time, state.folder = new, _iso(commit_time), name
    state.fetched_at, state.last_error, state.refused = _iso(fetched_at), None, None
    state.folders = [name] + [kept for kept in state.folders if kept != name]
    _prune(root=root, state=state, keep=keep)
    _write_state(root, state)
    return SyncResult(commit=new, commit_time=commit_time, changed=before != f"commits/{name}",
                      fetched_at=fetched_at, path=folder)


def _fetch(*, git: Git, repo: Path, source: GitSource, deadline: float, depth: tuple[str, ...]) -> str:
    git.run("fetch", "-q", *depth, "--no-tags", "--no-recurse-submodules", "--end-of-options",
            source.url, source.ref, git_dir=repo, deadline=deadline, ref=source.ref)
    return git.run("rev-parse", "--verify", "FETCH_HEAD^{commit}", git_dir=repo, ref=source.ref).strip()


def _descends(*, git: Git, repo: Path, source: GitSource, good: str, new: str, settled: bool,
              deadline: float) -> bool:
    """Whether `new` descends from `good`. `settled`: the fetch already brought all of `new`'s history
    that `good` lacks, so the answer is final; otherwise the shallow cache is deepened until it is."""
    for step in (None, *(() if settled else _DEEPEN_STEPS)):
        if step == "--unshallow" and git.run("rev-parse", "--is-shallow-repository",
                                             git_dir=repo).strip() != "true":
            break
        if step is not None:
            _fetch(git=git, repo=repo, source=source, deadline=deadline, depth=(step,))
        if (_has_commit(git=git, repo=repo, sha=good, deadline=deadline)
                and git.succeeds("merge-base", "--is-ancestor", good, new, git_dir=repo, deadline=deadline)):
            return True
    return False


def _previous(*, git: Git, repo: Path, root: Path, state: SyncState, deadline: float) -> tuple[str, Path] | None:
    """The tree and folder of the last good checkout, whose unchanged files the next one links."""
    folder = root / "commits" / (state.folder or "")
    if state.commit is None or not state.folder or not folder.is_dir():
        return None
    try:
        tree = git.run("rev-parse", "--verify", "--quiet", f"{state.commit}:{state.subdir}" if state.subdir
                       else f"{state.commit}^{{tree}}", git_dir=repo, deadline=deadline).strip()
    except GitSyncFailed:
        return None
    return tree, folder


def _has_commit(*, git: Git, repo: Path, sha: str, deadline: float) -> bool:
    return git.succeeds("cat-file", "-e", f"{sha}^{{commit}}", git_dir=repo, deadline=deadline)


def _current_target(root: Path) -> str | None:
    try:
        return os.readlink(root / "current")
    except (FileNotFoundError, OSError):
        return None


def _switch(*, root: Path, target: str) -> None:
    """Point root/current at `target` in one rename: readers see the old folder or the new one."""
    replace_symlink(root / "current", target, durable=True)


def _prune(*, root: Path, state: SyncState, keep: int) -> None:
    current = (_current_target(root) or "").removeprefix("commits/")
    state.folders = [name for name in state.folders if (root / "commits" / name).is_dir()][:keep]
    kept = set(state.folders) | {current}
    for entry in (root / "commits").iterdir():
        if entry.name not in kept:
            shutil.rmtree(entry, ignore_errors=True)


def _write_state(root: Path, state: SyncState) -> None:
    write_atomically(root / "state.json", json.dumps(asdict(state), indent=2).encode(), mode=0o644)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
