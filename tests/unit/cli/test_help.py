"""Every command's --help renders: rich reads square brackets in help texts as markup."""
from __future__ import annotations

from typer.testing import CliRunner

from hangar.cli.main import app


def test_bucket_ls_help_shows_its_optional_prefix() -> None:
    result = CliRunner().invoke(app, ["bucket", "ls", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "s3://BUCKET[/PREFIX]" in result.output


def test_the_server_warns_when_it_listens_beyond_loopback_without_isolation(tmp_path) -> None:
    from hangar.cli.serverctl import exposure_warning
    from hangar.settings import Settings

    exposed = Settings(home=tmp_path, host="0.0.0.0", isolation=False)
    assert "beyond loopback, without isolation" in exposure_warning(exposed)
    assert exposure_warning(Settings(home=tmp_path, host="127.0.0.1", isolation=False)) is None
    assert exposure_warning(Settings(home=tmp_path, host="localhost", isolation=False)) is None
    assert exposure_warning(Settings(home=tmp_path, host="0.0.0.0", isolation=True)) is None
