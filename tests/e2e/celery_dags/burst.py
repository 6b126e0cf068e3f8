"""A burst of more tasks than an environment runs at once (16 a DAG): the autoscaler's demand.

A run whose conf names a "release" file holds its tasks until the file exists, so the demand
lasts until the test has seen what it waits for (four workers running)."""
import os
import time
from datetime import datetime

from airflow.sdk import dag, task


def held(context) -> None:
    """Until the run's conf "release" file exists; a run without one goes straight on."""
    release = (context["dag_run"].conf or {}).get("release")
    deadline = time.monotonic() + 900
    while release and not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear")
        time.sleep(0.5)


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def burst():
    @task
    def short(i: int, **context) -> int:
        held(context)
        return i

    short.expand(i=list(range(20)))


burst()
