"""Every command's --help renders: rich reads square brackets in help texts as markup."""
from __future__ import annotations

from typer.testing import CliRunner

from hangar.cli.main import app


def test_bucket_ls_help_shows_its_optional_prefix() -> None:
    result = CliRunner().invoke(app, ["bucket", "ls", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "s3://BUCKET[/PREFIX]" in result.output
