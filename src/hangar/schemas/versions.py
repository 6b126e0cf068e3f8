"""Airflow versions as Hangar reads them: 3.3.2, never a range or a pre-release."""
from __future__ import annotations

import re

DEFAULT_AIRFLOW_VERSION = "3.3.2"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def parse_version(version: str) -> tuple[int, int, int]:
    match = _VERSION.fullmatch(version)
    if not match:
        raise ValueError(f"airflow_version {version!r} is not a version like 3.3.2")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def check_version(version: str) -> str:
    major, minor, _ = parse_version(version)
    if not (major == 3 or (major == 2 and minor >= 11)):
        raise ValueError(f"airflow_version {version!r} is not supported: use 2.11.x or 3.x")
    return version
