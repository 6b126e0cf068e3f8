"""An object's bytes on their way into a bucket.

They are written to the bucket's `tmp/` folder as they arrive, hashed and counted, and
refused as soon as they pass the limit, so an upload of any size holds one chunk in
memory. The store then renames the finished file into place as a blob.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from hangar.errors import PayloadTooLarge


class Upload:
    def __init__(self, tmp_dir: Path, *, limit: int) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        self.path = Path(name)
        self.limit = limit
        self.size = 0
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(None, self.limit)
        self._hash.update(chunk)
        self._file.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def finish(self) -> None:
        """Flush the bytes to disk; the file is complete once this returns."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Upload":
        return self

    def __exit__(self, *_: object) -> None:
        self.discard()  # after a put the file has been renamed away, and this removes nothing
