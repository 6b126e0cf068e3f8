"""What native routes declare they need, as annotated types.

A route takes `c: ContextDep` for the control plane's run-time context, and a caller type
(`Reader`, `LoginCaller`, `Updater`) when its body needs to know who calls and has checked
that the caller may do what the type says. Authentication itself happens before any route
runs (hangar.api.admission); these only read what it found, so a route never touches
`request.app.state`.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hangar.api.auth import require
from hangar.context import Context
from hangar.domain.access import Principal


def get_context(request: Request) -> Context:
    """The context the app was started with (hangar.api.app)."""
    return request.app.state.ctx


ContextDep = Annotated[Context, Depends(get_context)]

# the authenticated caller, once it has been allowed the action
Reader = Annotated[Principal, Depends(require("read"))]
LoginCaller = Annotated[Principal, Depends(require("login"))]
Updater = Annotated[Principal, Depends(require("update"))]
