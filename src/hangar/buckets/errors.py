"""Errors raised by bucket storage, named after what went wrong.

They subclass hangar.errors so the API edge translates them like every other
domain error (hangar.api.errors maps each to its HTTP status). Messages name the
bucket, key and version as s3:// URIs, the form users type.
"""
from __future__ import annotations

from hangar.errors import HangarError, ValidationFailed


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


class InvalidBucketName(ValidationFailed):
    code = "INVALID_BUCKET_NAME"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"bucket name {name!r} is not valid: {reason}")
        self.name = name


class InvalidObjectKey(ValidationFailed):
    code = "INVALID_OBJECT_KEY"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"object key {key!r} is not valid: {reason}")
        self.key = key


class BucketNotFound(HangarError):
    code = "BUCKET_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"bucket {name!r} does not exist")
        self.name = name


class BucketAlreadyExists(HangarError):
    code = "BUCKET_EXISTS"

    def __init__(self, name: str) -> None:
        super().__init__(f"bucket {name!r} already exists")
        self.name = name


class BucketNotEmpty(HangarError):
    code = "BUCKET_NOT_EMPTY"

    def __init__(self, name: str, live: int) -> None:
        super().__init__(f"bucket {name!r} still holds {live} object(s); delete them first")
        self.name = name


class ObjectNotFound(HangarError):
    code = "OBJECT_NOT_FOUND"

    def __init__(self, bucket: str, key: str, version: str | None = None, *, delete_marker: bool = False) -> None:
        if version is None:
            message = f"object {_uri(bucket, key)} does not exist"
        elif delete_marker:
            message = f"version {version} of {_uri(bucket, key)} is a delete marker"
        else:
            message = f"version {version} of {_uri(bucket, key)} does not exist"
        super().__init__(message)
        self.bucket, self.key, self.version = bucket, key, version


class ObjectCorrupted(HangarError):
    """The blob behind a version is missing or no longer hashes to its sha256."""

    code = "OBJECT_CORRUPTED"

    def __init__(self, bucket: str, key: str, version: str, reason: str) -> None:
        super().__init__(f"version {version} of {_uri(bucket, key)} is damaged on disk: {reason}")
        self.bucket, self.key, self.version = bucket, key, version
