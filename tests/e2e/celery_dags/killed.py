"""One task whose worker is killed while it runs: Airflow retries it per its retry policy."""
from datetime import datetime, timedelta

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def killed():
    @task(retries=2, retry_delay=timedelta(seconds=1))
    def slow(**context) -> int:
        import time

        # the first try lasts long enough for the test to kill its worker; a retry is quick
        time.sleep(120 if context["ti"].try_number == 1 else 1)
        return context["ti"].try_number

    slow()


killed()
