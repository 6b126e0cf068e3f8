"""A task that runs until the run's conf "release" file exists."""
import os
import time
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def held():
    @task
    def waits(**context) -> None:
        release = (context["dag_run"].conf or {}).get("release")
        deadline = time.monotonic() + 600
        while release and not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.2)

    waits()


held()
