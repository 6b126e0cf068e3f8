"""Ten tasks of about three seconds that return the name of the host they ran on: a joined host's share."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def where_am_i():
    @task
    def where(i: int) -> str:
        import socket
        import time

        time.sleep(3)
        return socket.gethostname()

    where.expand(i=list(range(10)))


where_am_i()
