"""One task that fails when the run's conf says {"fail": true}, and succeeds otherwise
(bench/alert_latency.py: a failed run opens an incident, a good one resolves it)."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def flaky():
    @task(retries=0)
    def maybe(**context) -> None:
        if (context["dag_run"].conf or {}).get("fail"):
            raise RuntimeError("failing on purpose")

    maybe()


flaky()
