"""Checks on a user's requirements.txt text before anything is installed.

Airflow itself is pinned by Hangar (as MWAA does): a line that names one of the
packages below, directly or through a file include or a URL, would let the
user's requirements move Airflow and is refused with the line number.
"""
from __future__ import annotations

import re

from hangar.errors import ValidationFailed

PINNED = frozenset({"apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk"})
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EGG = re.compile(r"#egg=([A-Za-z0-9._-]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """The project name a requirements line asks for, or None for blanks/comments/options."""
    text = line.split(" #", 1)[0].strip()
    if not text or text.startswith("#"):
        return None
    if egg := _EGG.search(text):
        return canonical(egg.group(1))
    if text.startswith("-"):
        return None
    if " @ " in text:
        text = text.split(" @ ", 1)[0]
    match = _NAME.match(text)
    return canonical(match.group(1)) if match else None


def check_requirements(text: str) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(("-r", "-c", "--requirement", "--constraint")):
            raise ValidationFailed(
                f"requirements line {number}: {stripped!r}: nested requirement or constraint files "
                "are not supported; put the lines in the requirements text itself"
            )
        name = requirement_name(line)
        if name is None:
            continue
        # extras such as apache-airflow[celery] still name apache-airflow
        base = name.split("[", 1)[0]
        if base in PINNED:
            raise ValidationFailed(
                f"requirements line {number}: {stripped!r} would change {base}, which Hangar pins to "
                "the environment's airflow_version; remove the line and set airflow_version instead"
            )
