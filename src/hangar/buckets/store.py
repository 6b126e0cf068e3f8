"""Versioned object storage for buckets, with S3's versioning semantics.

Layout: `HANGAR_HOME/buckets/NAME/blobs/ab/abcdef…` holds content-addressed blobs
(sha256 of the bytes); `…/NAME/tmp/` holds blobs being written. Which key has which
versions lives in the control plane's SQLite store (hangar.buckets.models).

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

import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NewType

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hangar.buckets.uploads import Upload
from hangar.buckets.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidBucketName,
    InvalidObjectKey,
    ObjectCorrupted,
    ObjectNotFound,
)
from hangar.buckets.models import BucketObjectRow, BucketRow
from hangar.context import Context
from hangar.errors import ValidationFailed
from hangar.schemas.buckets import BucketPublic, ObjectVersionPublic
from hangar.store.models import utcnow

VersionId = NewType("VersionId", str)

MAX_KEY_BYTES = 1024
_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_CHUNK = 1 << 20


# ---------------------------------------------------------------- models


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    data: bytes
    version: ObjectVersionPublic


@dataclass(kw_only=True)
class MaterializeResult:
    """Paths relative to the target directory, in POSIX form."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- names, keys, ARNs


def validate_bucket_name(name: str) -> str:
    """S3's bucket naming rules; the reason names the rule that was broken."""
    if not 3 <= len(name) <= 63:
        raise InvalidBucketName(name, "it must be 3 to 63 characters long")
    if not _BUCKET_CHARS.match(name):
        raise InvalidBucketName(
            name, "use only lowercase letters, digits, dots and hyphens, and start and end with a letter or digit")
    if ".." in name:
        raise InvalidBucketName(name, "it must not contain two dots in a row")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        raise InvalidBucketName(name, "it must not look like an IP address")
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        raise InvalidBucketName(name, "the prefixes xn-- and sthree- and the suffixes -s3alias and --ol-s3 are reserved")
    return name


def validate_key(key: str) -> str:
    """Keys map onto file paths when a prefix is materialized, so every segment must be a plain name.

    A trailing "/" is allowed (S3 consoles create such "folder" objects); they are
    never materialized.
    """
    if not key:
        raise InvalidObjectKey(key, "it is empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidObjectKey(key, f"it is longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidObjectKey(key, 'it must not start with "/"')
    if "\x00" in key:
        raise InvalidObjectKey(key, "it must not contain a NUL character")
    segments = key.split("/")
    if segments[-1] == "":
        segments.pop()
    for segment in segments:
        if segment == "..":
            raise InvalidObjectKey(key, 'it must not contain ".." as a path segment')
        if segment in ("", "."):
            raise InvalidObjectKey(key, 'it must not contain "//" or "." as a path segment')
    return key


def bucket_arn(name: str) -> str:
    return f"arn:aws:s3:::{name}"


def bucket_from_arn(arn: str) -> str:
    """The bucket name of an MWAA SourceBucketArn (`arn:aws:s3:::NAME`)."""
    prefix = "arn:aws:s3:::"
    if not arn.startswith(prefix) or "/" in arn[len(prefix):]:
        raise ValidationFailed(f"{arn!r} is not a bucket ARN; expected arn:aws:s3:::BUCKET")
    return validate_bucket_name(arn[len(prefix):])


def folder_prefix(prefix: str) -> str:
    """A DagS3Path-style prefix as a folder: "dags", "/dags/" and "dags/" all become "dags/"."""
    stripped = prefix.strip("/")
    if stripped:
        validate_key(stripped)
    return f"{stripped}/" if stripped else ""


def new_version_id() -> VersionId:
    """32 hex characters: milliseconds since the epoch, then 80 random bits. Sorts by time."""
    return VersionId(f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}")


# ---------------------------------------------------------------- disk


def bucket_dir(ctx: Context, name: str) -> Path:
    return ctx.settings.home / "buckets" / name


def blob_path(ctx: Context, *, bucket: str, sha256: str) -> Path:
    return bucket_dir(ctx, bucket) / "blobs" / sha256[:2] / sha256


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def upload(ctx: Context, *, bucket: str, limit: int) -> Upload:
    """A staging file for an object's bytes, in the bucket's tmp folder (see put_upload)."""
    return Upload(bucket_dir(ctx, bucket) / "tmp", limit=limit)


def _place_blob(ctx: Context, *, bucket: str, staged: Upload) -> None:
    staged.finish()
    target = blob_path(ctx, bucket=bucket, sha256=staged.sha256)
    if target.is_file() and target.stat().st_size == staged.size and _file_sha256(target) == staged.sha256:
        staged.discard()  # the same bytes are already stored (a damaged blob is replaced below)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged.path, target)
    _fsync_dir(target.parent)


def _read_blob(ctx: Context, row: BucketObjectRow) -> bytes:
    path = blob_path(ctx, bucket=row.bucket, sha256=row.sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob is missing") from None
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob does not match its sha256")
    return data


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
    _place_blob(ctx, bucket=bucket, staged=staged)
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
    return StoredObject(data=_read_blob(ctx, row), version=_public(row))


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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _same_file(path: Path, *, size: int, sha256: str) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    return path.stat().st_size == size and _file_sha256(path) == sha256


def _copy_blob_into(ctx: Context, row: BucketObjectRow, target: Path) -> None:
    """Copy a verified blob to `target` through a temp file in the same folder, then rename."""
    source = blob_path(ctx, bucket=row.bucket, sha256=row.sha256)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".hangar-tmp")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                handle = source.open("rb")
            except FileNotFoundError:
                raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob is missing") from None
            with handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != row.sha256:
            raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob does not match its sha256")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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

    root = Path(target_dir)
    root.mkdir(parents=True, exist_ok=True)
    result = MaterializeResult()

    # remove what no object maps to (including a file where a folder must go, and vice versa)
    for current, dirnames, filenames in os.walk(root, topdown=True):
        base = Path(current)
        rel_base = base.relative_to(root).as_posix()
        rel_base = "" if rel_base == "." else f"{rel_base}/"
        for name in list(dirnames):
            rel = rel_base + name
            path = base / name
            if rel not in folders or path.is_symlink():
                _remove(path)
                result.removed.append(rel + "/")
                dirnames.remove(name)
        for name in filenames:
            rel = rel_base + name
            if rel not in wanted:
                (base / name).unlink(missing_ok=True)
                result.removed.append(rel)

    for rel in sorted(wanted):
        row = wanted[rel]
        path = root / rel
        if _same_file(path, size=row.size, sha256=row.sha256):
            result.unchanged.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        _copy_blob_into(ctx, row, path)
        result.written.append(rel)
    return result


def pinned_requirements(ctx, spec) -> str | None:
    """The requirements a revision runs with: its own text, or its bucket object at the pinned version."""
    source = spec.source
    if source is None or not source.requirements_s3_path:
        return spec.requirements
    return get_object(ctx, bucket=source.bucket, key=source.requirements_s3_path,
                      version_id=source.requirements_s3_object_version).data.decode()
