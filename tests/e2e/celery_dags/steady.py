"""A chain of tasks: a run that lasts while a component is killed.

The first step runs straight through; the others hold until the run's conf "release" file
exists: the test kills the component while the second step holds, then writes it, and the
steps after it are scheduled by what survived."""
import os
import time
from datetime import datetime

from airflow.sdk import dag, task

STEPS = 4


def held(context) -> None:
    """Until the run's conf "release" file exists; a run without one goes straight on."""
    release = (context["dag_run"].conf or {}).get("release")
    deadline = time.monotonic() + 900
    while release and not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear")
        time.sleep(0.5)


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def steady():
    previous = None
    for i in range(STEPS):
        @task(task_id=f"step_{i}")
        def step(**context) -> None:
            if context["ti"].task_id != "step_0":
                held(context)

        current = step()
        if previous is not None:
            previous >> current
        previous = current


steady()
