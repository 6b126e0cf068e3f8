"""Four tasks for one worker slot: three wait in the broker.

They last until the run's conf "release" file exists, so the test decides how long they wait."""
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
def queued():
    @task
    def wait(i: int, **context) -> int:
        held(context)
        return i

    wait.expand(i=list(range(4)))


queued()
