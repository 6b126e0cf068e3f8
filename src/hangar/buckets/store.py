"""Versioned object storage for buckets, with S3's versioning semantics.

Which key has which versions lives in the control plane's SQLite store
(hangar.buckets.models); the bytes are content-addressed blobs on disk (hangar.buckets.blobs).

Semantics:
- every put creates a new version with a fresh, unique version id; nothing is
  overwritten, so a version id always returns exactly the bytes it was created with;
- a delete adds a delete marker as the newest version; older versions stay readable
  by id. Versions are only ever removed together with their (empty) bucket;
- "latest" is the newest version of a key; reading a key without a version returns
  it unless it is a delete marker.

Write order makes every write atomic: the blob is written to a temp file, fsynced and
renamed into place, and only then is its version row committed. A blob without a row
(a crash in between) is never visible and is harmless. Blobs are checked against
their sha256 when read.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hangar.buckets.blobs import bucket_dir, place_blob, read_blob, upload
from hangar.buckets.errors import BucketAlreadyExists, BucketNotEmpty, BucketNotFound, ObjectNotFound
from hangar.buckets.mirror import MaterializeResult, mirror
from hangar.buckets.models import BucketObjectRow, BucketRow
from hangar.buckets.names import (
    VersionId, bucket_arn, folder_prefix, new_version_id, validate_bucket_name, validate_key,
)
from hangar.buckets.uploads import Upload
from hangar.context import Context
from hangar.errors import ValidationFailed
from hangar.schemas.buckets import BucketPublic, ObjectVersionPublic
from hangar.store.models import utcnow


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    data: bytes
    version: ObjectVersionPublic


# ---------------------------------------------------------------- rows


def _public(row: BucketObjectRow) -> ObjectVersionPublic:
    return ObjectVersionPublic(
        bucket=row.bucket, key=row.key, version_id=row.version_id, sha256=row.sha256, size=row.size,
        created_at=row.created_at, is_latest=row.is_latest, delete_marker=row.deleted,
    )


def _require_bucket(session: Session, name: str) -> BucketRow:
    row = session.get(BucketRow, name)
    if row is None:
        raise BucketNotFound(name)
    return row


def _under(prefix: str):
    """Keys starting with `prefix`, case-sensitively (SQLite's LIKE ignores ASCII case)."""
    return func.substr(BucketObjectRow.key, 1, len(prefix)) == prefix


def _find_version(session: Session, *, bucket: str, key: str, version_id: str | None) -> BucketObjectRow:
    """The readable version: the given one, or the latest; never a delete marker."""
    _require_bucket(session, bucket)
    query = select(BucketObjectRow).where(BucketObjectRow.bucket == bucket, BucketObjectRow.key == key)
    if version_id is None:
        row = session.scalar(query.where(BucketObjectRow.is_latest))
        if row is None or row.deleted:
            raise ObjectNotFound(bucket, key)
        return row
    row = session.scalar(query.where(BucketObjectRow.version_id == version_id))
    if row is None:
        raise ObjectNotFound(bucket, key, version_id)
    if row.deleted:
        raise ObjectNotFound(bucket, key, version_id, delete_marker=True)
    return row


def _add_version(session: Session, *, bucket: str, key: str, sha256: str | None, size: int,
                 deleted: bool) -> BucketObjectRow:
    # The UPDATE comes first: it takes SQLite's write lock, so the checks below and the
    # insert see a state no other writer can change before commit.
    session.execute(
        update(BucketObjectRow)
        .where(BucketObjectRow.bucket == bucket, BucketObjectRow.key == key, BucketObjectRow.is_latest)
        .values(is_latest=False)
    )
    _require_bucket(session, bucket)
    row = BucketObjectRow(bucket=bucket, key=key, version_id=new_version_id(), sha256=sha256, size=size,
                          created_at=utcnow(), is_latest=True, deleted=deleted)
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------- buckets


def create_bucket(ctx: Context, *, name: str) -> BucketPublic:
    validate_bucket_name(name)
    try:
        with ctx.store.session() as session:
            if session.get(BucketRow, name) is not None:
                raise BucketAlreadyExists(name)
            row = BucketRow(name=name, created_at=utcnow())
            session.add(row)
            session.flush()
            (bucket_dir(ctx, name) / "blobs").mkdir(parents=True, exist_ok=True)
    except IntegrityError:
        raise BucketAlreadyExists(name) from None
    return BucketPublic(name=row.name, arn=bucket_arn(row.name), created_at=row.created_at)


def get_bucket(ctx: Context, *, name: str) -> BucketPublic:
    with ctx.store.session() as session:
        row = _require_bucket(session, name)
        return BucketPublic(name=row.name, arn=bucket_arn(row.name), created_at=row.created_at)


def list_buckets(ctx: Context) -> list[BucketPublic]:
    with ctx.store.session() as session:
        rows = session.scalars(select(BucketRow).order_by(BucketRow.name))
        return [BucketPublic(name=r.name, arn=bucket_arn(r.name), created_at=r.created_at) for r in rows]


def delete_bucket(ctx: Context, *, name: str) -> None:
    """Delete a bucket with every version in it; refused while any key has a live latest version."""
    with ctx.store.session() as session:
        # the write comes first so the count below cannot race a concurrent put
        session.execute(update(BucketRow).where(BucketRow.name == name).values(name=BucketRow.name))
        _require_bucket(session, name)
        live = session.scalar(
            select(func.count()).select_from(BucketObjectRow)
            .where(BucketObjectRow.bucket == name, BucketObjectRow.is_latest, BucketObjectRow.deleted.is_(False))
        )
        if live:
            raise BucketNotEmpty(name, live)
        session.query(BucketObjectRow).filter(BucketObjectRow.bucket == name).delete()
        session.query(BucketRow).filter(BucketRow.name == name).delete()
    # rows are gone first, so a failure here leaves only unreferenced files
    shutil.rmtree(bucket_dir(ctx, name), ignore_errors=True)


# ---------------------------------------------------------------- objects


def put_object(ctx: Context, *, bucket: str, key: str, data: bytes) -> ObjectVersionPublic:
    """Store `data` as the new latest version of `key`; the result carries its version id."""
    validate_key(key)
    with ctx.store.session() as session:
        _require_bucket(session, bucket)  # before writing anything to disk
    with upload(ctx, bucket=bucket, limit=max(len(data), 1)) as staged:
        staged.write(data)
        return put_upload(ctx, bucket=bucket, key=key, staged=staged)


def put_upload(ctx: Context, *, bucket: str, key: str, staged: Upload) -> ObjectVersionPublic:
    """Store the bytes of a finished upload as the new latest version of `key`."""
    validate_key(key)
    with ctx.store.session() as session:
        _require_bucket(session, bucket)
    place_blob(ctx, bucket=bucket, staged=staged)
    with ctx.store.session() as session:
        return _public(_add_version(session, bucket=bucket, key=key, sha256=staged.sha256, size=staged.size,
                                    deleted=False))


def head_object(ctx: Context, *, bucket: str, key: str, version_id: str | None = None) -> ObjectVersionPublic:
    with ctx.store.session() as session:
        return _public(_find_version(session, bucket=bucket, key=key, version_id=version_id))


def get_object(ctx: Context, *, bucket: str, key: str, version_id: str | None = None) -> StoredObject:
    """The bytes of the latest version, or of exactly `version_id` even if later overwritten or deleted."""
    with ctx.store.session() as session:
        row = _find_version(session, bucket=bucket, key=key, version_id=version_id)
    return StoredObject(data=read_blob(ctx, row), version=_public(row))


def resolve_version(ctx: Context, *, bucket: str, key: str, version_id: str | None = None) -> VersionId:
    """The version id to pin: the given one after checking it is readable, else the latest."""
    return VersionId(head_object(ctx, bucket=bucket, key=key, version_id=version_id).version_id)


def delete_object(ctx: Context, *, bucket: str, key: str) -> ObjectVersionPublic:
    """Add a delete marker as the latest version; earlier versions stay readable by id.

    Unlike S3, deleting a key that has no live version is ObjectNotFound rather than
    another marker, so a typo is reported instead of silently recorded.
    """
    validate_key(key)
    with ctx.store.session() as session:
        _require_bucket(session, bucket)
        latest = session.scalar(select(BucketObjectRow).where(
            BucketObjectRow.bucket == bucket, BucketObjectRow.key == key, BucketObjectRow.is_latest))
        if latest is None or latest.deleted:
            raise ObjectNotFound(bucket, key)
        return _public(_add_version(session, bucket=bucket, key=key, sha256=None, size=0, deleted=True))


def list_objects(ctx: Context, *, bucket: str, prefix: str = "", versions: bool = False) -> list[ObjectVersionPublic]:
    """Latest live versions by key; with `versions`, every version and delete marker, newest first per key."""
    with ctx.store.session() as session:
        _require_bucket(session, bucket)
        query = select(BucketObjectRow).where(BucketObjectRow.bucket == bucket)
        if prefix:
            query = query.where(_under(prefix))
        if not versions:
            query = query.where(BucketObjectRow.is_latest, BucketObjectRow.deleted.is_(False))
        rows = session.scalars(query.order_by(BucketObjectRow.key, BucketObjectRow.id.desc()))
        return [_public(r) for r in rows]


def _as_of(session: Session, *, bucket: str, prefix: str, at: datetime | None) -> list[BucketObjectRow]:
    """The live version of every key under `prefix`, now or at time `at`."""
    query = select(BucketObjectRow).where(BucketObjectRow.bucket == bucket)
    if prefix:
        query = query.where(_under(prefix))
    if at is None:
        return list(session.scalars(query.where(BucketObjectRow.is_latest, BucketObjectRow.deleted.is_(False))))
    newest: dict[str, BucketObjectRow] = {}
    for row in session.scalars(query.where(BucketObjectRow.created_at <= at).order_by(BucketObjectRow.id)):
        newest[row.key] = row
    return [row for row in newest.values() if not row.deleted]


# ---------------------------------------------------------------- materialize


def materialize_prefix(ctx: Context, *, bucket: str, prefix: str, target_dir: Path,
                       at: datetime | None = None) -> MaterializeResult:
    """Make `target_dir` an exact mirror of the objects under the folder `prefix`.

    Object `prefix/a/b.py` becomes `target_dir/a/b.py`. With `at`, the mirror shows the
    bucket as it was at that time (a naive `at` is taken as UTC). Files that match their
    object (size and sha256) are left untouched; others are replaced atomically; files
    and folders that no object maps to are removed.
    """
    folder = folder_prefix(prefix)
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    with ctx.store.session() as session:
        _require_bucket(session, bucket)
        rows = _as_of(session, bucket=bucket, prefix=folder, at=at)
    wanted: dict[str, BucketObjectRow] = {}
    for row in rows:
        relative = row.key[len(folder):]
        if relative and not relative.endswith("/"):  # "folder/" placeholder objects are not files
            wanted[relative] = row
    folders = {"/".join(rel.split("/")[:i]) for rel in wanted for i in range(1, rel.count("/") + 1)}
    clash = sorted(folders & wanted.keys())
    if clash:
        raise ValidationFailed(
            f"s3://{bucket}/{folder}{clash[0]} is both an object and a folder, so {folder or 'the bucket'} "
            "cannot be mirrored to a directory")
    return mirror(ctx, root=Path(target_dir), wanted=wanted, folders=folders)


def pinned_requirements(ctx, spec) -> str | None:
    """The requirements a revision runs with: its own text, or its bucket object at the pinned version."""
    source = spec.source
    if source is None or not source.requirements_s3_path:
        return spec.requirements
    return get_object(ctx, bucket=source.bucket, key=source.requirements_s3_path,
                      version_id=source.requirements_s3_object_version).data.decode()
