"""A chain of tasks of a few seconds each: a run that lasts while a component is killed."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def steady():
    previous = None
    for i in range(8):
        @task(task_id=f"step_{i}")
        def step() -> None:
            import time

            time.sleep(4)

        current = step()
        if previous is not None:
            previous >> current
        previous = current


steady()
