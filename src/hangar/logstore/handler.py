"""The control plane's own lines about an environment, kept with that environment's logs.

Code that acts on an environment logs as usual with `extra={"env_id": ...}` (see `about`);
this handler copies those records into the environment's logs as the component "hangar", so
that `hangar env logs NAME --component hangar` tells why a scheduler restarted or an update
failed next to what the scheduler itself printed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from hangar.logstore.lines import level_name, utc_stamp
from hangar.logstore.store import LogStore

COMPONENT = "hangar"


def about(env_id: str) -> dict[str, dict[str, str]]:
    """The `extra` that files a log record under an environment: log.info(..., **about(env_id))."""
    return {"extra": {"env_id": env_id}}


class EnvironmentLogHandler(logging.Handler):
    def __init__(self, store: LogStore, *, knows: Callable[[str], bool]) -> None:
        super().__init__(logging.INFO)
        self.store = store
        self.knows = knows  # several control planes may share a process (tests): each keeps its own

    def emit(self, record: logging.LogRecord) -> None:
        env_id = getattr(record, "env_id", None)
        if not isinstance(env_id, str) or not self.knows(env_id):
            return
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            stamp = utc_stamp(datetime.fromtimestamp(record.created, timezone.utc))
            level = level_name(record.levelname) or "INFO"
            self.store.append(env_id, COMPONENT, [(stamp, level, line) for line in text.splitlines() or [""]])
        except Exception:
            self.handleError(record)
