"""Real receivers for what Hangar sends out: an HTTP server for alert webhooks."""
from __future__ import annotations

import json
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver:
    """A real HTTP server on loopback; every POST lands in `got` as (headers, body, arrival time)."""

    def __init__(self) -> None:
        got = self.got = queue.Queue()
        self._kept: list[tuple[dict, bytes, float]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                got.put((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"])), time.time()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hangar"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, *, alert: str, state: str, timeout: float = 180) -> tuple[dict, bytes, dict]:
        """The first notice of `alert` in `state` not taken yet (others wait for their turn);
        `arrived` is when it came."""
        while True:
            for item in self._kept:
                headers, body, arrived = item
                notice = json.loads(body)
                if notice["alert"] == alert and notice["state"] == state:
                    self._kept.remove(item)
                    self.arrived = arrived
                    return headers, body, notice
            self._kept.append(self.got.get(timeout=timeout))


    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
