"""The control plane as a joined host reaches it: the routes it may call with its worker token.

No answer or a 5xx raises ControlPlaneUnreachable; a 4xx raises JoinRefused with the control
plane's code and message (read by hangar.http_errors, as the `hangar` command reads them).
"""
from __future__ import annotations

from pathlib import Path

import httpx

from hangar.agent.errors import ControlPlaneUnreachable, JoinRefused
from hangar.http_errors import error_answer
from hangar.schemas.worker_bundle import WorkerBundle


class ControlPlane:
    """The routes a joined host may call, with its worker token."""

    def __init__(self, *, url: str, token: str, name: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.path = f"/api/v1/environments/{name}"
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def bundle(self) -> WorkerBundle:
        return WorkerBundle.model_validate(self._send("GET", "/worker-bundle").json())

    def heartbeat(self, report: dict) -> dict:
        return self._send("POST", "/workers/heartbeat", json=report).json()

    def download(self, part: str, target: Path) -> None:
        try:
            with self._http.stream("GET", f"{self.path}/worker-bundle/{part}.tar.gz") as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                with open(target, "wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
        except httpx.HTTPError as exc:
            raise ControlPlaneUnreachable(f"cannot fetch the {part} from {self.url}: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, f"{self.path}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ControlPlaneUnreachable(f"cannot reach the Hangar control plane at {self.url}: {exc}") from None
        self._check(response)
        return response

    def _check(self, response: httpx.Response) -> None:
        answer = error_answer(response, method=response.request.method, path=response.request.url.path)
        if answer is None:
            return
        if response.status_code >= 500:
            raise ControlPlaneUnreachable(f"the control plane at {self.url} failed: {answer.message}")
        raise JoinRefused(answer.code or "HTTP_ERROR", answer.message, status=response.status_code)
