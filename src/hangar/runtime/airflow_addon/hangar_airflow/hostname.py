"""The name a joined host's tasks record as their task instance's hostname: the address the
control plane reaches the host by (HANGAR_WORKER_ADDRESS, set by `hangar worker join`), so that
the environment's api-server can fetch a task's log from the host's own log server, as Airflow
does for any remote worker ([core] hostname_callable, as airflow.utils.net.get_host_ip_address
is meant for). Without it, the machine's name as Airflow takes it by default."""
from __future__ import annotations

import os
import socket


def reachable_address() -> str:
    return os.environ.get("HANGAR_WORKER_ADDRESS") or socket.getfqdn()
