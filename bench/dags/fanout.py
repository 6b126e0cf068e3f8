"""Fan-out benchmark DAG: one task produces N items, a mapped task runs once per item.

Used by both the `airflow standalone` baseline (bench/baseline.py) and Hangar's own
benchmark, so the two measure exactly the same workload. N comes from the
HANGAR_BENCH_FANOUT_N environment variable at parse time (default 100); every task
is trivially short, so the wall time is dominated by scheduling overhead.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag, task

N = int(os.environ.get("HANGAR_BENCH_FANOUT_N", "100"))


@dag(dag_id="fanout", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["bench"])
def fanout():
    @task
    def make_items() -> list[int]:
        return list(range(N))

    @task
    def work(item: int) -> int:
        return item

    work.expand(item=make_items())


fanout()
