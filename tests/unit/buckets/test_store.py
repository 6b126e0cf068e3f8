"""Bucket storage against a real SQLite store and real files: S3 versioning semantics,
pinned versions, delete markers, prefix mirroring, name/key rules and write atomicity."""
from __future__ import annotations

import hashlib
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hangar.buckets import blobs as disk
from hangar.buckets import names, store
from hangar.buckets.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidBucketName,
    InvalidObjectKey,
    ObjectCorrupted,
    ObjectNotFound,
)
from hangar.context import Context
from hangar.errors import PayloadTooLarge, ValidationFailed

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Each version gets a timestamp one second after the previous one."""
    ticks: list[datetime] = []

    def now() -> datetime:
        ticks.append(T0 + timedelta(seconds=len(ticks)))
        return ticks[-1]

    monkeypatch.setattr(store, "utcnow", now)
    return ticks


@pytest.fixture
def bucket(ctx: Context) -> str:
    store.create_bucket(ctx, name="airflow-dags")
    return "airflow-dags"


def put(ctx: Context, bucket: str, key: str, data: bytes) -> str:
    return store.put_object(ctx, bucket=bucket, key=key, data=data).version_id


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- buckets and names


def test_create_and_list_buckets(ctx: Context) -> None:
    created = store.create_bucket(ctx, name="team-b.dags")
    store.create_bucket(ctx, name="team-a")
    assert created.arn == "arn:aws:s3:::team-b.dags"
    assert [b.name for b in store.list_buckets(ctx)] == ["team-a", "team-b.dags"]
    assert (ctx.settings.home / "buckets" / "team-a").is_dir()


def test_bucket_names_are_unique(ctx: Context, bucket: str) -> None:
    with pytest.raises(BucketAlreadyExists, match="airflow-dags"):
        store.create_bucket(ctx, name=bucket)


@pytest.mark.parametrize("name", [
    "ab", "a" * 64, "Upper", "under_score", "-start", "end-", ".start", "end.", "two..dots", "192.168.5.4",
    "xn--bucket", "sthree-x", "name-s3alias", "name--ol-s3", "spa ce", "",
])
def test_invalid_bucket_names(ctx: Context, name: str) -> None:
    with pytest.raises(InvalidBucketName) as raised:
        store.create_bucket(ctx, name=name)
    assert repr(name) in raised.value.message
    assert store.list_buckets(ctx) == []


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "0ab", "1.2.3"])
def test_valid_bucket_names(name: str) -> None:
    assert names.validate_bucket_name(name) == name


@pytest.mark.parametrize("key", [
    "", "/dags/a.py", "dags/../secret", "..", "dags/./a.py", "dags//a.py", "nul\x00byte", "k" * 1025,
    "é" * 513,  # 1026 bytes in UTF-8
])
def test_invalid_keys_are_refused(ctx: Context, bucket: str, key: str) -> None:
    with pytest.raises(InvalidObjectKey):
        put(ctx, bucket, key, b"x")
    assert store.list_objects(ctx, bucket=bucket, versions=True) == []


@pytest.mark.parametrize("key", ["a", "dags/a.py", "dags/", "file..txt", "k" * 1024, "with space/и юникод.py"])
def test_valid_keys(ctx: Context, bucket: str, key: str) -> None:
    put(ctx, bucket, key, b"x")
    assert store.get_object(ctx, bucket=bucket, key=key).data == b"x"


def test_unknown_bucket(ctx: Context) -> None:
    with pytest.raises(BucketNotFound, match="'nope'"):
        put(ctx, "nope", "a", b"x")
    with pytest.raises(BucketNotFound):
        store.get_object(ctx, bucket="nope", key="a")
    with pytest.raises(BucketNotFound):
        store.list_objects(ctx, bucket="nope")
    with pytest.raises(BucketNotFound):
        store.materialize_prefix(ctx, bucket="nope", prefix="dags", target_dir=ctx.settings.home / "x")
    assert not (ctx.settings.home / "buckets" / "nope").exists()


def test_bucket_arn_round_trip() -> None:
    assert names.bucket_from_arn(names.bucket_arn("my-bucket")) == "my-bucket"
    for bad in ("my-bucket", "arn:aws:s3:::my-bucket/dags", "arn:aws:s3:::BAD"):
        with pytest.raises(ValidationFailed):
            names.bucket_from_arn(bad)


# ---------------------------------------------------------------- versions


def test_every_put_creates_a_new_version(ctx: Context, bucket: str) -> None:
    v1 = put(ctx, bucket, "requirements.txt", b"pandas==2.2.0\n")
    v2 = put(ctx, bucket, "requirements.txt", b"pandas==2.2.1\n")
    v3 = put(ctx, bucket, "requirements.txt", b"pandas==2.2.1\n")  # same bytes still make a version
    assert len({v1, v2, v3}) == 3
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in (v1, v2, v3))
    latest = store.get_object(ctx, bucket=bucket, key="requirements.txt")
    assert latest.data == b"pandas==2.2.1\n"
    assert latest.version.version_id == v3
    assert latest.version.sha256 == hashlib.sha256(b"pandas==2.2.1\n").hexdigest()
    assert store.get_object(ctx, bucket=bucket, key="requirements.txt", version_id=v1).data == b"pandas==2.2.0\n"
    history = store.list_objects(ctx, bucket=bucket, versions=True)
    assert [v.version_id for v in history] == [v3, v2, v1]
    assert [v.is_latest for v in history] == [True, False, False]


def test_pinned_version_survives_overwrite_and_delete(ctx: Context, bucket: str) -> None:
    put(ctx, bucket, "plugins.zip", b"v1")
    pinned = store.resolve_version(ctx, bucket=bucket, key="plugins.zip")
    put(ctx, bucket, "plugins.zip", b"v2")
    store.delete_object(ctx, bucket=bucket, key="plugins.zip")
    put(ctx, bucket, "plugins.zip", b"v1")  # same bytes again: a different version
    assert store.get_object(ctx, bucket=bucket, key="plugins.zip", version_id=pinned).data == b"v1"
    assert store.get_object(ctx, bucket=bucket, key="plugins.zip", version_id=pinned).version.version_id == pinned
    assert store.resolve_version(ctx, bucket=bucket, key="plugins.zip", version_id=pinned) == pinned
    assert store.resolve_version(ctx, bucket=bucket, key="plugins.zip") != pinned


def test_resolve_version_refuses_unknown_or_foreign_versions(ctx: Context, bucket: str) -> None:
    other = put(ctx, bucket, "other.txt", b"x")
    put(ctx, bucket, "startup.sh", b"#!/bin/sh\n")
    with pytest.raises(ObjectNotFound, match="0000"):
        store.resolve_version(ctx, bucket=bucket, key="startup.sh", version_id="0000")
    with pytest.raises(ObjectNotFound, match=other):
        store.resolve_version(ctx, bucket=bucket, key="startup.sh", version_id=other)
    with pytest.raises(ObjectNotFound, match="s3://airflow-dags/missing.sh"):
        store.resolve_version(ctx, bucket=bucket, key="missing.sh")


def test_delete_adds_a_marker(ctx: Context, bucket: str) -> None:
    v1 = put(ctx, bucket, "dags/a.py", b"a")
    marker = store.delete_object(ctx, bucket=bucket, key="dags/a.py")
    assert marker.delete_marker and marker.is_latest and marker.sha256 is None and marker.size == 0
    with pytest.raises(ObjectNotFound, match="s3://airflow-dags/dags/a.py"):
        store.get_object(ctx, bucket=bucket, key="dags/a.py")
    with pytest.raises(ObjectNotFound, match="delete marker"):
        store.get_object(ctx, bucket=bucket, key="dags/a.py", version_id=marker.version_id)
    with pytest.raises(ObjectNotFound):
        store.delete_object(ctx, bucket=bucket, key="dags/a.py")  # already deleted
    with pytest.raises(ObjectNotFound):
        store.delete_object(ctx, bucket=bucket, key="never/was.py")
    assert store.get_object(ctx, bucket=bucket, key="dags/a.py", version_id=v1).data == b"a"
    assert store.list_objects(ctx, bucket=bucket) == []
    history = store.list_objects(ctx, bucket=bucket, versions=True)
    assert [(v.version_id, v.delete_marker, v.is_latest) for v in history] == [
        (marker.version_id, True, True), (v1, False, False)]
    v2 = put(ctx, bucket, "dags/a.py", b"again")  # a put after a delete makes the key live again
    assert store.get_object(ctx, bucket=bucket, key="dags/a.py").version.version_id == v2


def test_list_objects_by_prefix_is_case_sensitive_and_literal(ctx: Context, bucket: str) -> None:
    for key in ("dags/a.py", "dags/sub/b.py", "Dags/c.py", "dagsx/d.py", "d%s/e.py", "d_gs/f.py", "requirements.txt"):
        put(ctx, bucket, key, key.encode())
    put(ctx, bucket, "dags/a.py", b"newer")

    def keys(prefix: str) -> list[str]:
        return [o.key for o in store.list_objects(ctx, bucket=bucket, prefix=prefix)]

    assert keys("dags/") == ["dags/a.py", "dags/sub/b.py"]
    assert keys("dags") == ["dags/a.py", "dags/sub/b.py", "dagsx/d.py"]
    assert keys("d%") == ["d%s/e.py"]
    assert keys("d_") == ["d_gs/f.py"]
    assert len(keys("")) == 7
    assert [o.size for o in store.list_objects(ctx, bucket=bucket, prefix="dags/a")] == [len(b"newer")]


def test_concurrent_puts_keep_one_latest(ctx: Context, bucket: str) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                put(ctx, bucket, "shared.txt", f"{n}-{i}".encode())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = store.list_objects(ctx, bucket=bucket, versions=True)
    assert len(history) == 30
    assert [v.version_id for v in history if v.is_latest] == [history[0].version_id]
    assert store.get_object(ctx, bucket=bucket, key="shared.txt").version.version_id == history[0].version_id


# ---------------------------------------------------------------- atomicity and integrity


def test_blob_without_a_row_is_invisible(ctx: Context, bucket: str) -> None:
    """A crash between writing the blob and committing its row leaves nothing visible."""
    v1 = put(ctx, bucket, "dags/a.py", b"old")
    with disk.upload(ctx, bucket=bucket, limit=100) as staged:
        staged.write(b"orphan")
        disk.place_blob(ctx, bucket=bucket, staged=staged)
    assert disk.blob_path(ctx, bucket=bucket, sha256=hashlib.sha256(b"orphan").hexdigest()).is_file()
    assert [o.version_id for o in store.list_objects(ctx, bucket=bucket, versions=True)] == [v1]
    assert store.get_object(ctx, bucket=bucket, key="dags/a.py").data == b"old"


def test_an_upload_past_its_limit_is_refused_and_leaves_no_file(ctx: Context, bucket: str) -> None:
    with pytest.raises(PayloadTooLarge, match="over the limit of 8 bytes"):
        with disk.upload(ctx, bucket=bucket, limit=8) as staged:
            staged.write(b"12345")
            staged.write(b"6789")
    assert list((disk.bucket_dir(ctx, bucket) / "tmp").iterdir()) == []
    assert store.list_objects(ctx, bucket=bucket, versions=True) == []


def test_failed_row_write_keeps_the_previous_latest(ctx: Context, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = put(ctx, bucket, "dags/a.py", b"old")

    def crash(*_, **__):
        raise RuntimeError("crash before the row is committed")

    monkeypatch.setattr(store, "_add_version", crash)
    with pytest.raises(RuntimeError):
        put(ctx, bucket, "dags/a.py", b"new")
    monkeypatch.undo()
    assert disk.blob_path(ctx, bucket=bucket, sha256=hashlib.sha256(b"new").hexdigest()).is_file()
    assert store.get_object(ctx, bucket=bucket, key="dags/a.py").data == b"old"
    assert [o.version_id for o in store.list_objects(ctx, bucket=bucket, versions=True)] == [v1]


def test_failed_blob_write_leaves_no_row_and_no_temp_file(ctx: Context, bucket: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(*_):
        raise OSError("disk full")

    monkeypatch.setattr(disk.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        put(ctx, bucket, "dags/a.py", b"data")
    monkeypatch.undo()
    assert store.list_objects(ctx, bucket=bucket, versions=True) == []
    assert list((disk.bucket_dir(ctx, bucket) / "tmp").iterdir()) == []
    assert not disk.blob_path(ctx, bucket=bucket, sha256=hashlib.sha256(b"data").hexdigest()).exists()


def test_blobs_are_content_addressed_and_verified(ctx: Context, bucket: str) -> None:
    v1 = put(ctx, bucket, "a.txt", b"same")
    put(ctx, bucket, "b.txt", b"same")
    blobs = [p for p in (disk.bucket_dir(ctx, bucket) / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in blobs] == [hashlib.sha256(b"same").hexdigest()]
    blobs[0].write_bytes(b"evil")
    with pytest.raises(ObjectCorrupted, match=v1):
        store.get_object(ctx, bucket=bucket, key="a.txt")
    put(ctx, bucket, "c.txt", b"same")  # a damaged blob is rewritten, not trusted
    assert store.get_object(ctx, bucket=bucket, key="a.txt", version_id=v1).data == b"same"
    blobs[0].unlink()
    with pytest.raises(ObjectCorrupted, match="missing"):
        store.get_object(ctx, bucket=bucket, key="b.txt")


# ---------------------------------------------------------------- delete bucket


def test_delete_bucket_refuses_live_objects(ctx: Context, bucket: str) -> None:
    put(ctx, bucket, "a.txt", b"a")
    with pytest.raises(BucketNotEmpty, match="airflow-dags"):
        store.delete_bucket(ctx, name=bucket)
    store.delete_object(ctx, bucket=bucket, key="a.txt")
    store.delete_bucket(ctx, name=bucket)
    assert store.list_buckets(ctx) == []
    assert not disk.bucket_dir(ctx, bucket).exists()
    with pytest.raises(BucketNotFound):
        store.delete_bucket(ctx, name=bucket)
    store.create_bucket(ctx, name=bucket)
    assert store.list_objects(ctx, bucket=bucket, versions=True) == []


# ---------------------------------------------------------------- materialize_prefix


def test_materialize_mirrors_the_prefix(ctx: Context, bucket: str, tmp_path: Path) -> None:
    put(ctx, bucket, "dags/a.py", b"a")
    put(ctx, bucket, "dags/sub/deep/b.py", b"b")
    put(ctx, bucket, "dags/", b"")  # a console "folder" object
    put(ctx, bucket, "dagsx/not-mine.py", b"x")
    put(ctx, bucket, "requirements.txt", b"r")
    target = tmp_path / "env" / "dags"
    for prefix in ("dags", "dags/", "/dags/"):
        store.materialize_prefix(ctx, bucket=bucket, prefix=prefix, target_dir=target)
        assert tree(target) == {"a.py": b"a", "sub/deep/b.py": b"b"}
    whole = tmp_path / "whole"
    store.materialize_prefix(ctx, bucket=bucket, prefix="", target_dir=whole)
    assert tree(whole) == {"dags/a.py": b"a", "dags/sub/deep/b.py": b"b", "dagsx/not-mine.py": b"x",
                           "requirements.txt": b"r"}


def test_materialize_removes_what_is_gone_and_keeps_what_is_unchanged(ctx: Context, bucket: str,
                                                                      tmp_path: Path) -> None:
    put(ctx, bucket, "dags/keep.py", b"keep")
    put(ctx, bucket, "dags/change.py", b"v1")
    put(ctx, bucket, "dags/gone/old.py", b"old")
    target = tmp_path / "dags"
    first = store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=target)
    assert sorted(first.written) == ["change.py", "gone/old.py", "keep.py"]

    past = 1_000_000_000
    os.utime(target / "keep.py", (past, past))
    inode = (target / "keep.py").stat().st_ino
    (target / "stray.txt").write_text("not in the bucket")
    (target / "empty" / "dir").mkdir(parents=True)
    (target / ".change.py.abc.hangar-tmp").write_text("left by a crash")
    put(ctx, bucket, "dags/change.py", b"v2")
    store.delete_object(ctx, bucket=bucket, key="dags/gone/old.py")

    second = store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=target)
    assert tree(target) == {"keep.py": b"keep", "change.py": b"v2"}
    assert sorted(p.name for p in target.iterdir()) == ["change.py", "keep.py"]  # no empty folders left
    assert second.written == ["change.py"]
    assert second.unchanged == ["keep.py"]
    assert {"stray.txt", "gone/", "empty/", ".change.py.abc.hangar-tmp"} <= set(second.removed)
    assert (target / "keep.py").stat().st_mtime == past
    assert (target / "keep.py").stat().st_ino == inode

    third = store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=target)
    assert third.written == [] and third.removed == [] and sorted(third.unchanged) == ["change.py", "keep.py"]


def test_materialize_repairs_edited_files_and_type_clashes(ctx: Context, bucket: str, tmp_path: Path) -> None:
    put(ctx, bucket, "dags/a.py", b"original")
    put(ctx, bucket, "dags/pkg/mod.py", b"mod")
    put(ctx, bucket, "dags/file", b"file")
    target = tmp_path / "dags"
    target.mkdir()
    (target / "a.py").write_bytes(b"edited!!")  # same size, different bytes
    (target / "pkg").write_text("a file where a folder belongs")
    (target / "file").mkdir()
    (target / "file" / "x").write_text("a folder where a file belongs")
    (target / "link.py").symlink_to(tmp_path / "elsewhere.py")
    store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=target)
    assert tree(target) == {"a.py": b"original", "pkg/mod.py": b"mod", "file": b"file"}
    assert not (target / "link.py").is_symlink()


def test_materialize_refuses_a_key_that_is_also_a_folder(ctx: Context, bucket: str, tmp_path: Path) -> None:
    put(ctx, bucket, "dags/x", b"file")
    put(ctx, bucket, "dags/x/y.py", b"inside")
    with pytest.raises(ValidationFailed, match="s3://airflow-dags/dags/x is both"):
        store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=tmp_path / "t")


def test_materialize_as_of_a_time(ctx: Context, bucket: str, tmp_path: Path, clock: list[datetime]) -> None:
    first = store.put_object(ctx, bucket=bucket, key="dags/a.py", data=b"a1")
    put(ctx, bucket, "dags/b.py", b"b1")
    middle = store.put_object(ctx, bucket=bucket, key="dags/a.py", data=b"a2")
    store.delete_object(ctx, bucket=bucket, key="dags/b.py")
    put(ctx, bucket, "dags/c.py", b"c1")
    assert first.created_at == T0 and middle.created_at == T0 + timedelta(seconds=2)

    def at(when: datetime) -> dict[str, bytes]:
        target = tmp_path / when.isoformat().replace(":", "-")
        store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=target, at=when)
        return tree(target)

    assert at(T0 - timedelta(seconds=1)) == {}
    assert at(T0) == {"a.py": b"a1"}
    assert at(T0 + timedelta(seconds=1)) == {"a.py": b"a1", "b.py": b"b1"}
    assert at(T0 + timedelta(seconds=2, milliseconds=500)) == {"a.py": b"a2", "b.py": b"b1"}
    assert at(T0 + timedelta(seconds=3)) == {"a.py": b"a2"}
    assert at((T0 + timedelta(seconds=4)).replace(tzinfo=None)) == {"a.py": b"a2", "c.py": b"c1"}  # naive = UTC
    latest = tmp_path / "latest"
    store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=latest)
    assert tree(latest) == {"a.py": b"a2", "c.py": b"c1"}


def test_materialize_refuses_a_damaged_blob_without_touching_the_file(ctx: Context, bucket: str,
                                                                       tmp_path: Path) -> None:
    put(ctx, bucket, "dags/a.py", b"v1")
    target = tmp_path / "dags"
    store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=target)
    put(ctx, bucket, "dags/a.py", b"v2")
    disk.blob_path(ctx, bucket=bucket, sha256=hashlib.sha256(b"v2").hexdigest()).write_bytes(b"xx")
    with pytest.raises(ObjectCorrupted):
        store.materialize_prefix(ctx, bucket=bucket, prefix="dags", target_dir=target)
    assert tree(target) == {"a.py": b"v1"}
