"""DAGs from git: how long the first sync and a one-file change take for a repository of 5,000
small DAG files, against a plain `git clone --depth 1` of the same repository (the baseline,
and for the change: `git fetch --depth 1` + `git reset --hard` in that clone).

The repository is generated, committed and served on loopback by the test git server
(git http-backend over HTTP with a token, tests/e2e/gitserver.py), so both sides pay the same
HTTP round trips. Also measured, to choose the fetch strategy: a shallow fetch with
`--filter=blob:none`, whose checkout then fetches the blobs lazily.

Run: PYTHONPATH=src python bench/git_sync.py --runs 5 [--files 5000]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hangar.runtime.gitsync import GitSource, HttpsToken, sync  # noqa: E402
from tests.e2e.gitserver import GitServer, git  # noqa: E402

TOKEN = "bench-token-0123456789"
DAG = '''from datetime import datetime

from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="team_{team}_dag_{number}", start_date=datetime(2026, 1, 1), schedule="@daily", catchup=False):
    EmptyOperator(task_id="start") >> EmptyOperator(task_id="end")
'''


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def summary(times: list[float]) -> dict[str, object]:
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hangar-bench-git-"))
    try:
        with GitServer(root=work / "served", token=TOKEN) as server:
            print(json.dumps(run(server=server, work=work, runs=args.runs, files=args.files), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(*, server: GitServer, work: Path, runs: int, files: int) -> dict[str, object]:
    repo = server.create_repo("dags")
    repo.commit({f"dags/team_{n // 100:02d}/dag_{n:05d}.py": DAG.format(team=n // 100, number=n)
                 for n in range(files)}, "5,000 DAGs")
    repo.push()
    url = server.url("dags")
    source = GitSource(url=url, credential=HttpsToken(token=TOKEN))
    header_env = repo.env  # the same token, for the plain git baseline

    def plain_clone(target: Path) -> None:
        git("clone", "-q", "--depth", "1", "--no-tags", url, str(target), env=header_env)

    first_sync, first_clone, first_raw, first_filtered = [], [], [], []
    for run_number in range(runs):
        first_sync.append(timed(lambda: sync(root=work / f"sync-{run_number}", source=source, timeout=600)))
        first_clone.append(timed(lambda: plain_clone(work / f"clone-{run_number}")))
        first_raw.append(timed(lambda: raw_fetch(url=url, env=header_env, target=work / f"raw-{run_number}",
                                                 blobs=True)))
        first_filtered.append(timed(lambda: raw_fetch(url=url, env=header_env,
                                                      target=work / f"filtered-{run_number}", blobs=False)))

    change_sync, change_clone = [], []
    root, clone = work / "sync-0", work / "clone-0"
    for run_number in range(runs):
        number = run_number * 7
        repo.commit({f"dags/team_00/dag_{number:05d}.py": DAG.format(team=0, number=number) + f"# {run_number}\n"},
                    f"change {run_number}")
        repo.push()
        change_sync.append(timed(lambda: sync(root=root, source=source, timeout=600)))
        change_clone.append(timed(lambda: fetch_and_reset(clone=clone, env=header_env)))
    checked = (root / "current" / "dags" / "team_00" / f"dag_{(runs - 1) * 7:05d}.py").read_text()
    assert checked.endswith(f"# {runs - 1}\n"), "the last change is not served"

    def ratio(ours: list[float], baseline: list[float]) -> float:
        return round(statistics.median(ours) / statistics.median(baseline), 2)

    return {
        "files": files, "runs": runs, "git": git("--version"),
        "first_sync": summary(first_sync),
        "baseline_clone_depth_1": summary(first_clone),
        "first_sync_vs_baseline": ratio(first_sync, first_clone),
        "strategy_depth_1_then_checkout": summary(first_raw),
        "strategy_depth_1_filter_blob_none_then_checkout": summary(first_filtered),
        "one_file_change_sync": summary(change_sync),
        "baseline_fetch_depth_1_and_reset": summary(change_clone),
        "one_file_change_vs_baseline": ratio(change_sync, change_clone),
    }


def raw_fetch(*, url: str, env: dict[str, str], target: Path, blobs: bool) -> None:
    """A fetch strategy alone: a shallow bare clone then a checkout of its tree. Without `blobs`
    (--filter=blob:none) the clone holds trees only and the checkout asks for the blobs it needs."""
    git("clone", "-q", "--bare", "--depth", "1", *(() if blobs else ("--filter=blob:none",)), "--no-tags",
        url, str(target), env=env)
    out = target.with_name(target.name + "-tree")
    out.mkdir()
    index = {"GIT_INDEX_FILE": str(target / "bench-index")}
    git("--git-dir", str(target), "read-tree", "HEAD", env=env | index)
    git("--git-dir", str(target), "--work-tree", str(out), "checkout-index", "-a", env=env | index)
    assert sum(1 for _ in out.rglob("*.py")) > 0


def fetch_and_reset(*, clone: Path, env: dict[str, str]) -> None:
    git("fetch", "-q", "--depth", "1", "--no-tags", "origin", "main", cwd=clone, env=env)
    git("reset", "-q", "--hard", "FETCH_HEAD", cwd=clone)


if __name__ == "__main__":
    main()
