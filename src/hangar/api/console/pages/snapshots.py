"""(to be written)"""
from __future__ import annotations

from hangar.api.console.pages.common import console_router

router = console_router()
