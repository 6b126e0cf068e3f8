"""Native routes for buckets and their objects under /api/v1/buckets.

Objects travel as raw bytes: PUT takes the request body as the object, GET returns
it with its version id, sha256 and size in response headers. Keys are path
parameters and may contain "/".
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.buckets import blobs, names, store
from hangar.schemas.buckets import BucketCreate, BucketPublic, ObjectVersionPublic

router = APIRouter(prefix="/api/v1/buckets", dependencies=[Depends(principal)], tags=["buckets"])

VERSION_HEADER = "x-hangar-version-id"
SHA256_HEADER = "x-hangar-sha256"
RAW_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
RAW_RESPONSE = {200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                      "description": "the object's bytes"}}



@router.post("", status_code=201, name="buckets.create", dependencies=[Depends(require("admin"))])
def create_bucket(body: BucketCreate, c: ContextDep) -> BucketPublic:
    return store.create_bucket(c, name=body.name)


@router.get("", dependencies=[Depends(require("read"))])
def list_buckets(c: ContextDep) -> list[BucketPublic]:
    return store.list_buckets(c)


@router.get("/{name}", dependencies=[Depends(require("read"))])
def get_bucket(name: str, c: ContextDep) -> BucketPublic:
    return store.get_bucket(c, name=name)


@router.delete("/{name}", status_code=204, name="buckets.delete", dependencies=[Depends(require("admin"))])
def delete_bucket(name: str, c: ContextDep) -> None:
    store.delete_bucket(c, name=name)


@router.get("/{name}/objects", dependencies=[Depends(require("read"))])
def list_objects(name: str, c: ContextDep, prefix: str = "", versions: bool = False) -> list[ObjectVersionPublic]:
    return store.list_objects(c, bucket=name, prefix=prefix, versions=versions)


@router.put("/{name}/objects/{key:path}", name="buckets.put_object", openapi_extra=RAW_BODY,
            dependencies=[Depends(require("update"))])
async def put_object(name: str, key: str, request: Request, c: ContextDep) -> ObjectVersionPublic:
    # streamed to disk as it arrives, up to HANGAR_MAX_UPLOAD_BYTES (admission refuses a larger Content-Length)
    names.validate_key(key)
    await run_in_threadpool(store.get_bucket, c, name=name)  # before any byte is written
    with blobs.upload(c, bucket=name, limit=c.settings.max_upload_bytes) as staged:
        async for chunk in request.stream():
            staged.write(chunk)
        return await run_in_threadpool(store.put_upload, c, bucket=name, key=key, staged=staged)


@router.get("/{name}/objects/{key:path}", response_class=Response, responses=RAW_RESPONSE,
            dependencies=[Depends(require("read"))])
def get_object(name: str, key: str, c: ContextDep, version_id: str | None = None) -> Response:
    found = store.get_object(c, bucket=name, key=key, version_id=version_id)
    return Response(content=found.data, media_type="application/octet-stream", headers={
        VERSION_HEADER: found.version.version_id,
        SHA256_HEADER: found.version.sha256 or "",
        "etag": f'"{found.version.sha256}"',
        "last-modified": found.version.created_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    })


@router.delete("/{name}/objects/{key:path}", name="buckets.delete_object", dependencies=[Depends(require("update"))])
def delete_object(name: str, key: str, c: ContextDep) -> ObjectVersionPublic:
    return store.delete_object(c, bucket=name, key=key)
