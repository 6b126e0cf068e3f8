"""One task whose worker is killed while it runs: Airflow retries it per its retry policy.

The first try holds until the run's conf "release" file exists (the test writes it once the
worker is killed, so only a try that outlived the kill would see it); a retry is quick."""
import os
import time
from datetime import datetime, timedelta

from airflow.sdk import dag, task


def held(context) -> None:
    """Until the run's conf "release" file exists; a run without one goes straight on."""
    release = (context["dag_run"].conf or {}).get("release")
    deadline = time.monotonic() + 900
    while release and not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear")
        time.sleep(0.5)


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def killed():
    @task(retries=2, retry_delay=timedelta(seconds=1))
    def slow(**context) -> int:
        print(f"slow: try {context['ti'].try_number} begins", flush=True)
        if context["ti"].try_number == 1:
            held(context)
        return context["ti"].try_number

    slow()


killed()
