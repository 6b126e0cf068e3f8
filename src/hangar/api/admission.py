"""Admission: who may send a body, and how much of it is read.

A plain ASGI middleware in front of every route but /health. It authenticates the caller
from the request's headers alone, before one byte of the body is read, so a caller with no
key costs the server a header parse whatever it sends:
- native routes: the bearer key (an API key, or a worker token on a joined host's routes);
- the console: its session cookie (hangar.api.console.gate);
- MWAA routes: the SigV4 Authorization header must be well formed and name a live access
  key. The signature itself covers the body and is checked by the route once the body,
  now bounded, is read.

It then bounds the body. A declared Content-Length over the limit is refused at once with
413. A body without one (chunked) is read up to the limit and refused when it goes past it,
so no more than the limit is ever held. Bucket object uploads have their own, larger limit
and are not read here at all: the route streams them to disk and enforces the same limit as
it goes.
"""
from __future__ import annotations

import re

from fastapi import FastAPI

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hangar.api.console import gate
from hangar.api.errors import NATIVE_PATHS, error_response
from hangar.api.mwaa.sigv4 import precheck
from hangar.domain import git_dags, workers
from hangar.domain.access import Role, authenticate_bearer
from hangar.errors import AccessDenied, HangarError, PayloadTooLarge, Unauthorized, ValidationFailed

OPEN_PATHS = frozenset({"/health"})
# joined hosts call their environment's routes with a worker token instead of an API key; which
# routes take one is each route's own business (require_worker_token)
_ENVIRONMENT_ROUTE = re.compile(r"^/api/v1/environments/(?P<name>[^/]+)/")
_UPLOAD_ROUTE = re.compile(r"^/api/v1/buckets/[^/]+/objects/.+$")
# a push webhook from GitHub or GitLab: authenticated by the environment's webhook secret
_GIT_WEBHOOK = re.compile(r"^/api/v1/environments/(?P<name>[^/]+)/git-webhook$")


class Admission:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.ctx.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        upload = scope["method"] == "PUT" and _UPLOAD_ROUTE.match(scope["path"]) is not None
        limit = settings.max_upload_bytes if upload else settings.max_request_bytes
        try:
            if gate.covers(scope["path"]):
                refused = await gate.admit(scope, headers)
                if refused is not None:
                    await refused(scope, receive, send)
                    return
            else:
                await self._authenticate(scope, headers)
            declared = _content_length(headers)
            if declared is not None and declared > limit:
                raise PayloadTooLarge(declared, limit)
            if not upload and declared is None and "chunked" in headers.get("transfer-encoding", ""):
                receive = await _buffered(receive, limit)
        except HangarError as exc:
            await error_response(scope["path"], exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _authenticate(scope: Scope, headers: dict[str, str]) -> None:
        ctx = scope["app"].state.ctx
        if not scope["path"].startswith(NATIVE_PATHS):
            await run_in_threadpool(precheck, ctx, headers)  # MWAA: SigV4 (key lookups may block)
            return
        webhook = _GIT_WEBHOOK.match(scope["path"]) if scope["method"] == "POST" else None
        if webhook is not None:
            await _check_webhook(ctx, webhook["name"], headers)
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a valid API key is required (Authorization: Bearer <key from HANGAR_HOME/admin.key>)")
        environment_route = _ENVIRONMENT_ROUTE.match(scope["path"])
        if token.startswith(workers.TOKEN_PREFIX) and environment_route is not None:
            await run_in_threadpool(workers.verify_token, ctx, name=environment_route["name"], token=token.strip())
            return
        found = await run_in_threadpool(authenticate_bearer, ctx, token=token.strip(),
                                        admin_key=scope["app"].state.admin_key)
        if found.role == Role.Scrape and scope["path"] != "/metrics":
            raise AccessDenied(f"{found.id} is a scrape token: it may read /metrics only")
        scope.setdefault("state", {})["principal"] = found


async def _check_webhook(ctx, name: str, headers: dict[str, str]) -> None:
    """GitLab's token is checked here, before the body; GitHub's signature covers the body and is
    checked by the route once the body, bounded, is read. Neither header: refused at once."""
    if headers.get("x-gitlab-token"):
        await run_in_threadpool(git_dags.verify_gitlab_token, ctx, name=name, token=headers["x-gitlab-token"])
    elif not headers.get("x-hub-signature-256", "").startswith("sha256="):
        raise Unauthorized("a push webhook needs X-Hub-Signature-256 (GitHub) or X-Gitlab-Token (GitLab)")


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise ValidationFailed(f"Content-Length {value[:40]!r} is not a number of bytes")
    return int(value)


async def _buffered(receive: Receive, limit: int) -> Receive:
    """Read a body of unknown length up to `limit` bytes, then replay it to the route."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(None, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replayed() -> Message:
        return replay.pop() if replay else await receive()

    return replayed


def install(app: FastAPI) -> None:
    app.add_middleware(Admission)
