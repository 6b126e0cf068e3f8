"""Admission: callers are authenticated from their headers before their body is read, and
no body is read past its route's limit.

The app is called as ASGI with a receive() that counts the body bytes it hands over, so
"not read" is what the app pulled, not what came back."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import admission, audit
from hangar.api import errors as api_errors
from hangar.api.mwaa import routes as mwaa_routes
from hangar.api.routes import buckets as bucket_routes
from hangar.api.routes import environments as environment_routes
from hangar.api.routes import workers as worker_routes
from hangar.buckets import blobs, store
from hangar.context import Context
from hangar.domain.access import Role, create_access_key
from hangar.domain.audit import read_audit

ADMIN_KEY = "hgr_test-admin-key"
BIG = 400 * 1024 * 1024


@pytest.fixture
def app(ctx: Context) -> FastAPI:
    ctx.settings.max_request_bytes = 4096
    ctx.settings.max_upload_bytes = 64 * 1024
    app = FastAPI()
    api_errors.install(app)
    admission.install(app)
    audit.install(app)
    for router in (environment_routes.router, bucket_routes.router, worker_routes.router, mwaa_routes.router):
        app.include_router(router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    return app


def call(app: FastAPI, method: str, path: str, *, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict, int]:
    """Send a request whose body comes in `chunks`; return status, JSON body and the bytes the app read."""
    pending = list(chunks)
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": quote(path).encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.9", 5000), "server": ("127.0.0.1", 8080), "app": app,
    }

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body or b"null"), pulled


def test_no_key_is_refused_before_one_byte_of_a_huge_body(app: FastAPI, ctx: Context) -> None:
    chunks = [b"x" * 65536] * 4
    status, body, pulled = call(app, "POST", "/api/v1/environments", chunks=chunks,
                                headers={"content-length": str(BIG), "content-type": "application/json"})
    assert (status, body["error"]["code"], pulled) == (401, "UNAUTHORIZED", 0)
    status, _, pulled = call(app, "POST", "/api/v1/environments", chunks=chunks,
                             headers={"authorization": "Bearer wrong", "content-length": str(BIG)})
    assert (status, pulled) == (401, 0)
    # the refusals are still audited: one entry for this source this minute
    [entry] = read_audit(ctx, limit=10)
    assert entry.status_code == 401 and "1 more refused calls from 203.0.113.9" in entry.target


def test_a_malformed_request_without_a_key_gets_401_not_its_validation_error(app: FastAPI) -> None:
    status, body, _ = call(app, "POST", "/api/v1/environments", chunks=[b"{not json"],
                           headers={"content-length": "9", "content-type": "application/json"})
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")


def test_a_declared_length_over_the_limit_is_413_unread(app: FastAPI) -> None:
    status, body, pulled = call(app, "POST", "/api/v1/environments", chunks=[b"{}"],
                                headers={"authorization": f"Bearer {ADMIN_KEY}", "content-length": str(BIG)})
    assert (status, body["error"]["code"], pulled) == (413, "PAYLOAD_TOO_LARGE", 0)
    assert f"of {BIG} bytes is over the limit of 4096 bytes" in body["error"]["message"]


def test_a_chunked_body_is_cut_off_at_the_limit(app: FastAPI) -> None:
    chunks = [b"x" * 1000] * 50
    status, body, pulled = call(app, "POST", "/api/v1/environments", chunks=chunks,
                                headers={"authorization": f"Bearer {ADMIN_KEY}", "transfer-encoding": "chunked"})
    assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert pulled <= 4096 + 1000
    # under the limit, the route gets the whole body: here, its validation error
    status, body, _ = call(app, "POST", "/api/v1/environments", chunks=[b'{"name": ', b'"x"}'],
                           headers={"authorization": f"Bearer {ADMIN_KEY}", "transfer-encoding": "chunked",
                                    "content-type": "application/json"})
    assert (status, body["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_a_content_length_that_is_not_a_number_is_400(app: FastAPI) -> None:
    status, body, _ = call(app, "POST", "/api/v1/environments", chunks=[b"{}"],
                           headers={"authorization": f"Bearer {ADMIN_KEY}", "content-length": "lots"})
    assert (status, body["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_mwaa_calls_without_a_live_access_key_are_refused_unread(app: FastAPI, ctx: Context) -> None:
    status, body, pulled = call(app, "PUT", "/environments/e1", chunks=[b"x" * 65536],
                                headers={"content-length": str(BIG)})
    assert (status, pulled) == (403, 0)
    assert "Signature Version 4" in body["Message"]
    forged = ("AWS4-HMAC-SHA256 Credential=AKNOSUCHKEY/20261207/us-east-1/airflow/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    status, body, pulled = call(app, "PUT", "/environments/e1", chunks=[b"x" * 65536],
                                headers={"authorization": forged, "content-length": str(BIG)})
    assert (status, pulled) == (403, 0)
    assert "AKNOSUCHKEY" in body["Message"]
    # a live key's request over the limit: 413, unread (its signature is checked once the body is read)
    key = create_access_key(ctx, role=Role.Admin)
    live = forged.replace("AKNOSUCHKEY", key.access_key_id)
    status, _, pulled = call(app, "PUT", "/environments/e1", chunks=[b"x"], headers={"authorization": live,
                                                                                       "content-length": str(BIG)})
    assert (status, pulled) == (413, 0)


def test_bucket_uploads_stream_to_their_own_limit(app: FastAPI, ctx: Context) -> None:
    store.create_bucket(ctx, name="uploads")
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    path = "/api/v1/buckets/uploads/objects/dags/big.py"
    # over the API's own 4 KiB but under the upload limit: stored whole
    status, body, _ = call(app, "PUT", path, chunks=[b"a" * 30000, b"b" * 30000], headers={**auth,
                                                                                          "content-length": "60000"})
    assert (status, body["size"]) == (200, 60000)
    # a body over the upload limit without a length: refused as it passes the limit, nothing kept
    status, body, pulled = call(app, "PUT", path, chunks=[b"c" * 16384] * 8, headers={**auth,
                                                                                     "transfer-encoding": "chunked"})
    assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert pulled <= 64 * 1024 + 16384
    assert list((blobs.bucket_dir(ctx, "uploads") / "tmp").iterdir()) == []
    assert [v.size for v in store.list_objects(ctx, bucket="uploads", versions=True)] == [60000]
    status, _, pulled = call(app, "PUT", path, chunks=[b"c"], headers={**auth, "content-length": str(BIG)})
    assert (status, pulled) == (413, 0)


def test_worker_tokens_are_checked_before_the_heartbeat_body(app: FastAPI) -> None:
    status, body, pulled = call(app, "POST", "/api/v1/environments/e1/workers/heartbeat", chunks=[b"{}"],
                                headers={"authorization": "Bearer hwt_not-a-token", "content-length": str(BIG)})
    assert (status, body["error"]["code"], pulled) == (401, "WORKER_TOKEN_INVALID", 0)


def test_health_needs_nothing(app: FastAPI) -> None:
    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
