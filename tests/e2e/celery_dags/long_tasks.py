"""Six long tasks: with 5 tasks a worker, the sixth runs on a second worker.

They last until the run's conf "release" file exists: the test writes it once a worker
has been chosen for scale-down while busy."""
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
def long_tasks():
    @task
    def long(i: int, **context) -> int:
        held(context)
        return i

    long.expand(i=list(range(6)))


long_tasks()
