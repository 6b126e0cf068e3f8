"""Log shipping: each component's raw output becomes stored log lines within `log_interval`.

Components write their output to <environment>/logs/components/<component>.log (O_APPEND,
so they outlive the control plane). Every round, what was added to each file since the last
round is read up to its last full line, stamped with a time and level (hangar.logstore.lines),
cut free of every secret value Hangar knows for the environment (hangar.domain.redaction), and
appended to the environment's logs. A raw file is cut back to nothing once more than
RAW_KEEP_BYTES of it were shipped and nothing was added meanwhile, so raw files stay small;
between that check and the cut a component's write could be lost (a window of microseconds).

The files are in a folder the environment's user owns: they are opened without following a
link (backend.identity.open_plain). How far each file was read is kept in the state folder by
file identity, so a restarted control plane goes on where the last one stopped.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from hangar.backend.identity import open_plain
from hangar.context import Context
from hangar.domain.redaction import redact, secret_values
from hangar.logstore.lines import LineReader

log = logging.getLogger(__name__)
RAW_KEEP_BYTES = 1024 * 1024
READ_BYTES = 4 * 1024 * 1024  # at most this much of one file per round
PARTIAL_LINE_BYTES = 64 * 1024  # a line longer than this is shipped in pieces
SECRETS_SECONDS = 10.0  # how long the secret values of an environment are reused
SWEEP_SECONDS = 60.0


class Shipper:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.offsets_file = ctx.settings.state_dir / "log-offsets.json"
        self.offsets: dict[str, list[int]] = self._load()  # path -> [inode, offset]
        self.readers: dict[str, LineReader] = {}
        self._secrets: dict[str, tuple[float, set[str]]] = {}
        self._refused: set[str] = set()

    def _load(self) -> dict[str, list[int]]:
        try:
            return {k: list(v) for k, v in json.loads(self.offsets_file.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def ship_all(self) -> None:
        before = dict(self.offsets)
        seen = set()
        root = self.ctx.settings.environments_dir
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            for raw in sorted(folder.joinpath("logs", "components").glob("*.log")):
                seen.add(str(raw))
                try:
                    self.ship(folder.name, raw)
                except FileNotFoundError:
                    pass
                except OSError as exc:  # e.g. a link in place of the file: said once, not every round
                    if str(raw) not in self._refused:
                        self._refused.add(str(raw))
                        log.warning("not shipping %s: %s", raw, exc, extra={"env_id": folder.name})
                except Exception:  # one file's trouble never stops the others' shipping
                    log.exception("shipping %s failed", raw)
        self.offsets = {k: v for k, v in self.offsets.items() if k in seen}
        self.readers = {k: v for k, v in self.readers.items() if k in seen}
        if self.offsets != before:
            tmp = self.offsets_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.offsets))
            tmp.replace(self.offsets_file)

    def ship(self, env_id: str, raw: Path) -> None:
        key = str(raw)
        fd = open_plain(raw, os.O_RDWR)
        try:
            info = os.fstat(fd)
            inode, offset = self.offsets.get(key, (info.st_ino, 0))
            if inode != info.st_ino or info.st_size < offset:  # a new file, or cut by someone else
                offset = 0
            if info.st_size == offset:
                self.offsets[key] = [info.st_ino, offset]
                return
            data = os.pread(fd, min(info.st_size - offset, READ_BYTES), offset)
            end = data.rfind(b"\n") + 1
            if end == 0 and len(data) < PARTIAL_LINE_BYTES:
                return  # the rest of the line is still to come
            chunk = data[:end] if end else data
            values = self.secrets(env_id)
            text = redact(chunk.decode("utf-8", errors="replace"), values)
            reader = self.readers.setdefault(key, LineReader())
            records = reader.stamp(text.splitlines(), now=datetime.now(timezone.utc))
            self.ctx.logs.append(env_id, raw.stem, records)
            offset += len(chunk)
            if offset >= RAW_KEEP_BYTES and os.fstat(fd).st_size == offset:
                os.ftruncate(fd, 0)
                offset = 0
            self.offsets[key] = [info.st_ino, offset]
        finally:
            os.close(fd)

    def secrets(self, env_id: str) -> set[str]:
        """The values to cut out of an environment's lines; gathered anew every SECRETS_SECONDS.
        When they cannot be gathered nothing is shipped (the error propagates): withheld, not leaked."""
        now = time.monotonic()
        cached = self._secrets.get(env_id)
        if cached is None or now - cached[0] > SECRETS_SECONDS:
            cached = (now, secret_values(self.ctx, env_id=env_id))
            self._secrets[env_id] = cached
        return cached[1]


def loop(ctx: Context, *, stop: threading.Event) -> None:
    """Ship every `log_interval` seconds, and apply retention every SWEEP_SECONDS, until `stop`."""
    shipper = Shipper(ctx)
    swept = 0.0
    while not stop.wait(ctx.settings.log_interval):
        try:
            shipper.ship_all()
            if time.monotonic() - swept > SWEEP_SECONDS:
                ctx.logs.sweep()
                swept = time.monotonic()
        except Exception:
            log.exception("log shipping failed; trying again")
