"""Ten tasks that return the name of the host they ran on: a joined host's share.

They hold until the run's conf "release" file exists, so that every worker, the joined
host's too, takes tasks before any finishes."""
import os
import socket
import time
from datetime import datetime

from airflow.sdk import dag, task


def held(context) -> None:
    """Until the run's conf "release" file exists; a run without one goes straight on."""
    release = (context["dag_run"].conf or {}).get("release")
    deadline = time.monotonic() + 900
    while release and not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear")
        time.sleep(0.5)


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def where_am_i():
    @task
    def where(i: int, **context) -> str:
        held(context)
        return socket.gethostname()

    where.expand(i=list(range(10)))


where_am_i()
