"""Autoscaling benchmark DAG: one mapped task over range(N), each instance sleeping ~1 s.

Used by bench/autoscale.py on a CeleryExecutor environment and on a LocalExecutor one,
so both run exactly the same burst. N (default 200) and the sleep (default 1 s) come from
the HANGAR_BENCH_BURST_N and HANGAR_BENCH_BURST_SLEEP environment variables at parse
time. No retries: a task that fails shows as failed.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from airflow.sdk import dag, task

N = int(os.environ.get("HANGAR_BENCH_BURST_N", "200"))
SLEEP = float(os.environ.get("HANGAR_BENCH_BURST_SLEEP", "1"))


@dag(dag_id="burst", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
     default_args={"retries": 0}, tags=["bench"])
def burst():
    @task(retries=0)
    def nap(item: int) -> None:
        time.sleep(SLEEP)

    nap.expand(item=list(range(N)))


burst()
