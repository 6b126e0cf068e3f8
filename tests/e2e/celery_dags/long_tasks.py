"""Six long tasks: with 5 tasks a worker, the sixth runs on a second worker."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def long_tasks():
    @task
    def long(i: int) -> int:
        import time

        time.sleep(75)
        return i

    long.expand(i=list(range(6)))


long_tasks()
