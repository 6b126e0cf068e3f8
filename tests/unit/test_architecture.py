"""The architecture holds: the import-linter contracts in pyproject.toml pass, and no module
grows past what a reader takes in at once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "hangar"
MAX_LINES = 400


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_module_is_longer_than_400_lines() -> None:
    long = {str(path.relative_to(SOURCE)): n for path in SOURCE.rglob("*.py")
            if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
