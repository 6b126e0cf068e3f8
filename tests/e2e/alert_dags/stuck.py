"""A DAG whose task waits for a slot of the pool "closed", which the test makes with 0 slots."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def stuck():
    @task(pool="closed")
    def waits() -> None:
        pass

    waits()


stuck()
