"""A StatsD receiver on loopback for every environment's Airflow ([metrics] statsd_*).

Each environment sends with the prefix "airflow.<environment id>", so a line
"airflow.<id>.scheduler_heartbeat:1|c" is the environment's "airflow.scheduler_heartbeat".
Lines are "name:value|type[|@rate][|#tags]"; counters (c), gauges (g, "+n"/"-n" change
one), timers (ms, h) and sets (s) are read, anything else is dropped. A packet from a sender
that names no environment Hangar knows is dropped too.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
PREFIX = "airflow."


@dataclass(frozen=True)
class Sample:
    env_id: str
    name: str  # with the "airflow." prefix, without the environment
    value: float
    kind: str  # c, g, ms, s
    relative: bool = False  # a gauge change (+n, -n) rather than a value
    rate: float = 1.0


def parse_line(line: str) -> Sample | None:
    try:
        name, rest = line.split(":", 1)
        fields = rest.split("|")
        raw, kind = fields[0], fields[1]
    except (ValueError, IndexError):
        return None
    kind = "ms" if kind == "h" else kind
    if kind not in ("c", "g", "ms", "s") or not name.startswith(PREFIX):
        return None
    env_id, _, metric = name[len(PREFIX):].partition(".")
    if not env_id or not metric:
        return None
    rate = 1.0
    for extra in fields[2:]:
        if extra.startswith("@"):
            try:
                rate = float(extra[1:]) or 1.0
            except ValueError:
                return None
    if kind == "s":
        return Sample(env_id, PREFIX + metric, 0.0, kind)
    try:
        value = float(raw)
    except ValueError:
        return None
    return Sample(env_id, PREFIX + metric, value, kind, relative=kind == "g" and raw[:1] in "+-", rate=rate)


def parse_packet(data: bytes) -> list[Sample]:
    text = data.decode("utf-8", errors="replace")
    return [sample for line in text.splitlines() if line and (sample := parse_line(line.strip()))]


class StatsdReceiver:
    """Reads UDP packets on `host`:`port` in a thread and hands each packet's samples to `sink`."""

    def __init__(self, *, port: int, sink: Callable[[list[Sample]], None], host: str = "127.0.0.1") -> None:
        self.sink = sink
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hangar-statsd", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.sink(parse_packet(data))
            except Exception:  # a bad packet never stops the receiver
                log.exception("a StatsD packet could not be taken")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
