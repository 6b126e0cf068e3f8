"""The bucket routes over HTTP with a real store: auth and roles, the raw-bytes object
round trip with versions, and error translation.

The app is assembled here rather than with create_app, whose lifespan starts the
embedded PostgreSQL; it has the same error handlers, audit middleware and auth.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import audit
from hangar.api import errors as api_errors
from hangar.api.routes import buckets as bucket_routes
from hangar.buckets.errors import BucketAlreadyExists, BucketNotEmpty, BucketNotFound, ObjectNotFound
from hangar.context import Context
from hangar.domain.access import Role, create_access_key
from hangar.domain.audit import read_audit

ADMIN_KEY = "hgr_test-admin-key"
BASE = "/api/v1/buckets"


@pytest.fixture
def client(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    # the statuses hangar.api.errors gives these errors once the bucket errors are wired in there
    for error, status in ((BucketNotFound, 404), (ObjectNotFound, 404), (BucketAlreadyExists, 409),
                          (BucketNotEmpty, 409)):
        monkeypatch.setitem(api_errors.STATUS, error, status)
    app = FastAPI()
    api_errors.install(app)
    audit.install(app)
    app.include_router(bucket_routes.router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    with TestClient(app, headers=bearer(ADMIN_KEY)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_for(ctx: Context, role: Role) -> dict[str, str]:
    return bearer(create_access_key(ctx, role=role).api_key)


def obj(bucket: str, key: str) -> str:
    return f"{BASE}/{bucket}/objects/{quote(key, safe='/')}"


def error(response) -> dict:
    return response.json()["error"]


@pytest.fixture
def bucket(client: TestClient) -> str:
    assert client.post(BASE, json={"name": "mwaa-src"}).status_code == 201
    return "mwaa-src"


# ---------------------------------------------------------------- auth


def test_every_route_needs_a_key(client: TestClient, bucket: str) -> None:
    anonymous = {"Authorization": ""}
    calls = [("GET", BASE), ("POST", BASE), ("GET", f"{BASE}/{bucket}"), ("DELETE", f"{BASE}/{bucket}"),
             ("GET", f"{BASE}/{bucket}/objects"), ("GET", obj(bucket, "a")), ("PUT", obj(bucket, "a")),
             ("DELETE", obj(bucket, "a"))]
    for method, path in calls:
        response = client.request(method, path, headers=anonymous)
        assert response.status_code == 401, (method, path)
        assert error(response)["code"] == "UNAUTHORIZED"
    assert client.get(BASE, headers=bearer("hgr_wrong")).status_code == 401
    assert client.get(BASE, headers=bearer("HKIANOPE:secret")).status_code == 401


def test_viewer_reads_but_cannot_write(client: TestClient, ctx: Context, bucket: str) -> None:
    client.put(obj(bucket, "dags/a.py"), content=b"a")
    viewer = key_for(ctx, Role.Viewer)
    assert client.get(BASE, headers=viewer).status_code == 200
    assert client.get(obj(bucket, "dags/a.py"), headers=viewer).content == b"a"
    for method, path in (("PUT", obj(bucket, "dags/a.py")), ("DELETE", obj(bucket, "dags/a.py")),
                         ("POST", BASE), ("DELETE", f"{BASE}/{bucket}")):
        response = client.request(method, path, headers=viewer, content=b"x" if method == "PUT" else None)
        assert response.status_code == 403, (method, path)
        assert "Viewer" in error(response)["message"]
    assert client.get(obj(bucket, "dags/a.py")).content == b"a"
    assert len(client.get(f"{BASE}/{bucket}/objects", params={"versions": True}).json()) == 1


def test_op_writes_objects_but_only_admin_manages_buckets(client: TestClient, ctx: Context, bucket: str) -> None:
    op = key_for(ctx, Role.Op)
    assert client.put(obj(bucket, "a.txt"), content=b"a", headers=op).status_code == 200
    assert client.delete(obj(bucket, "a.txt"), headers=op).status_code == 200
    assert client.post(BASE, json={"name": "other"}, headers=op).status_code == 403
    assert client.delete(f"{BASE}/{bucket}", headers=op).status_code == 403


# ---------------------------------------------------------------- buckets


def test_bucket_lifecycle(client: TestClient) -> None:
    created = client.post(BASE, json={"name": "team-a"})
    assert created.status_code == 201
    assert created.json()["arn"] == "arn:aws:s3:::team-a"
    assert client.post(BASE, json={"name": "team-a"}).status_code == 409
    invalid = client.post(BASE, json={"name": "Team_A"})
    assert invalid.status_code == 400
    assert error(invalid)["code"] == "INVALID_BUCKET_NAME"
    assert "'Team_A'" in error(invalid)["message"]
    assert [b["name"] for b in client.get(BASE).json()] == ["team-a"]
    assert client.get(f"{BASE}/team-a").json()["name"] == "team-a"
    client.put(obj("team-a", "x"), content=b"x")
    not_empty = client.delete(f"{BASE}/team-a")
    assert not_empty.status_code == 409 and "team-a" in error(not_empty)["message"]
    client.delete(obj("team-a", "x"))
    assert client.delete(f"{BASE}/team-a").status_code == 204
    missing = client.get(f"{BASE}/team-a")
    assert missing.status_code == 404
    assert error(missing) == {"code": "BUCKET_NOT_FOUND", "message": "bucket 'team-a' does not exist"}


# ---------------------------------------------------------------- objects


def test_object_round_trip_with_versions(client: TestClient, bucket: str) -> None:
    key = "dags/etl/my dag #1.py"
    first = client.put(obj(bucket, key), content=b"\x00v1 bytes\xff")
    assert first.status_code == 200
    v1 = first.json()
    assert v1["key"] == key and v1["size"] == 10 and v1["is_latest"] and not v1["delete_marker"]
    v2 = client.put(obj(bucket, key), content=b"v2").json()
    assert v2["version_id"] != v1["version_id"]

    latest = client.get(obj(bucket, key))
    assert latest.status_code == 200
    assert latest.content == b"v2"
    assert latest.headers["x-hangar-version-id"] == v2["version_id"]
    assert latest.headers["x-hangar-sha256"] == v2["sha256"]
    assert latest.headers["content-type"] == "application/octet-stream"

    old = client.get(obj(bucket, key), params={"version_id": v1["version_id"]})
    assert old.content == b"\x00v1 bytes\xff"
    assert old.headers["x-hangar-version-id"] == v1["version_id"]

    marker = client.delete(obj(bucket, key))
    assert marker.status_code == 200 and marker.json()["delete_marker"]
    gone = client.get(obj(bucket, key))
    assert gone.status_code == 404
    assert error(gone)["code"] == "OBJECT_NOT_FOUND" and f"s3://{bucket}/{key}" in error(gone)["message"]
    assert client.get(obj(bucket, key), params={"version_id": v1["version_id"]}).content == b"\x00v1 bytes\xff"
    unknown = client.get(obj(bucket, key), params={"version_id": "nope"})
    assert unknown.status_code == 404 and "nope" in error(unknown)["message"]

    history = client.get(f"{BASE}/{bucket}/objects", params={"versions": "true"}).json()
    assert [(h["version_id"], h["is_latest"], h["delete_marker"]) for h in history] == [
        (marker.json()["version_id"], True, True), (v2["version_id"], False, False), (v1["version_id"], False, False)]
    assert client.get(f"{BASE}/{bucket}/objects").json() == []


def test_list_objects_by_prefix(client: TestClient, bucket: str) -> None:
    for key in ("dags/a.py", "dags/sub/b.py", "plugins.zip"):
        client.put(obj(bucket, key), content=key.encode())
    listed = client.get(f"{BASE}/{bucket}/objects", params={"prefix": "dags/"}).json()
    assert [o["key"] for o in listed] == ["dags/a.py", "dags/sub/b.py"]
    assert len(client.get(f"{BASE}/{bucket}/objects").json()) == 3


def test_errors_are_translated(client: TestClient, bucket: str) -> None:
    assert client.put(obj("no-such-bucket", "a"), content=b"a").status_code == 404
    assert client.get(f"{BASE}/no-such-bucket/objects").status_code == 404
    dots = client.put(f"{BASE}/{bucket}/objects/a/%2E%2E/b", content=b"a")  # unescaped, httpx would drop them
    assert dots.status_code == 400 and '".."' in error(dots)["message"]
    double = client.put(f"{BASE}/{bucket}/objects/dags//a.py", content=b"a")
    assert double.status_code == 400 and error(double)["code"] == "INVALID_OBJECT_KEY"
    assert client.get(f"{BASE}/{bucket}/objects", params={"versions": True}).json() == []
    assert client.delete(obj(bucket, "never.txt")).status_code == 404


def test_mutations_are_audited_by_route_name(client: TestClient, ctx: Context, bucket: str) -> None:
    client.put(obj(bucket, "a.txt"), content=b"a")
    client.delete(obj(bucket, "a.txt"))
    client.put(obj("no-such-bucket", "a.txt"), content=b"a")
    entries = [(e.action, e.target, e.status_code) for e in reversed(read_audit(ctx))]
    assert entries == [("buckets.create", None, 201), ("buckets.put_object", bucket, 200),
                       ("buckets.delete_object", bucket, 200), ("buckets.put_object", "no-such-bucket", 404)]
