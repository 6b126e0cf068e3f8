"""A small TaskFlow DAG: extract -> transform -> load. Runs on Airflow 2.11 and 3.x."""
from __future__ import annotations

import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, tags=["example"])
def hello_taskflow():
    @task
    def extract() -> dict:
        return {"a": 1, "b": 2, "c": 3}

    @task
    def transform(values: dict) -> int:
        return sum(values.values())

    @task
    def load(total: int) -> None:
        print(f"total is {total}")
        assert total == 6

    load(transform(extract()))


hello_taskflow()
