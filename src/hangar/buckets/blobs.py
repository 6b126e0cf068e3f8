"""Content-addressed blobs on disk: `HANGAR_HOME/buckets/NAME/blobs/ab/abcdef…`.

A blob is named by the sha256 of its bytes. It is staged in the bucket's `tmp/` folder
(hangar.buckets.uploads), fsynced and renamed into place, and the rename is fsynced too,
before any row names it. Blobs are checked against their sha256 whenever they are read.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hangar.buckets.errors import ObjectCorrupted
from hangar.buckets.models import BucketObjectRow
from hangar.buckets.uploads import Upload
from hangar.context import Context
from hangar.files import atomic_writer, fsync_dir

_CHUNK = 1 << 20


def bucket_dir(ctx: Context, name: str) -> Path:
    return ctx.settings.home / "buckets" / name


def blob_path(ctx: Context, *, bucket: str, sha256: str) -> Path:
    return bucket_dir(ctx, bucket) / "blobs" / sha256[:2] / sha256


def upload(ctx: Context, *, bucket: str, limit: int) -> Upload:
    """A staging file for an object's bytes, in the bucket's tmp folder (see store.put_upload)."""
    return Upload(bucket_dir(ctx, bucket) / "tmp", limit=limit)


def place_blob(ctx: Context, *, bucket: str, staged: Upload) -> None:
    """Rename a finished upload into place as its blob; the same bytes stored already are kept."""
    staged.finish()
    target = blob_path(ctx, bucket=bucket, sha256=staged.sha256)
    if target.is_file() and target.stat().st_size == staged.size and file_sha256(target) == staged.sha256:
        staged.discard()  # the same bytes are already stored (a damaged blob is replaced below)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged.path, target)
    fsync_dir(target.parent)


def read_blob(ctx: Context, row: BucketObjectRow) -> bytes:
    """The bytes of the version `row`, checked against its sha256."""
    path = blob_path(ctx, bucket=row.bucket, sha256=row.sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob is missing") from None
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob does not match its sha256")
    return data


def copy_blob(ctx: Context, row: BucketObjectRow, target: Path) -> None:
    """Replace `target` with the blob of `row` in one step, checked against its sha256 on the way."""
    try:
        source = blob_path(ctx, bucket=row.bucket, sha256=row.sha256).open("rb")
    except FileNotFoundError:
        raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob is missing") from None
    with source, atomic_writer(target) as out:
        digest = hashlib.sha256()
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != row.sha256:
            raise ObjectCorrupted(row.bucket, row.key, row.version_id, "its blob does not match its sha256")
        out.flush()
        os.fsync(out.fileno())
        os.fchmod(out.fileno(), 0o644)  # readable by all whatever the umask, as mirrored files always were


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
