"""Four tasks for one worker slot: three wait in the broker."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def queued():
    @task
    def wait(i: int) -> int:
        import time

        time.sleep(8)
        return i

    wait.expand(i=list(range(4)))


queued()
