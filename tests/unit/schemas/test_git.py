"""The git DAG source a user writes: what is taken, and what is refused with the field named."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from hangar.schemas.git import GitDags


def test_defaults_and_accepted_forms() -> None:
    spec = GitDags(url="https://github.com/team/dags.git")
    assert (spec.ref, spec.subdir, spec.sync_interval, spec.credential) == ("main", "", 60, None)
    assert GitDags(url="git@github.com:team/dags.git", ref="v1.2", subdir="/airflow/dags/").subdir == "airflow/dags"
    assert GitDags(url="ssh://git@host:2222/team/dags.git", ref="a" * 40, credential="github-deploy").ref == "a" * 40


@pytest.mark.parametrize("fields", [
    {"url": "file:///srv/hangar/state"}, {"url": "/srv/repo.git"}, {"url": "ext::sh -c id"},
    {"url": "https://user:ghp_secret@github.com/team/dags.git"},
    {"url": "https://github.com/t/d.git", "ref": "--upload-pack=evil"},
    {"url": "https://github.com/t/d.git", "ref": "main..other"},
    {"url": "https://github.com/t/d.git", "subdir": "../outside"},
    {"url": "https://github.com/t/d.git", "sync_interval": 1},
    {"url": "https://github.com/t/d.git", "credential": "no spaces allowed"},
])
def test_refused(fields: dict) -> None:
    with pytest.raises(ValidationError) as raised:
        GitDags(**fields)
    message = raised.value.errors()[0]["msg"]
    assert "ghp_secret" not in message
    if "ghp_secret" in str(fields):
        assert "password" in message
