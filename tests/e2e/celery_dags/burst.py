"""200 short tasks at once: the autoscaler's burst."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def burst():
    @task
    def short(i: int) -> int:
        import time

        time.sleep(0.5)
        return i

    short.expand(i=list(range(200)))


burst()
