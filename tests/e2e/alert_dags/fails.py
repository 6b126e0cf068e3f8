"""A DAG whose only task fails at once (no retries)."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def fails():
    @task(retries=0)
    def boom() -> None:
        raise RuntimeError("boom, on purpose")

    boom()


fails()
