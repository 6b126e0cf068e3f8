"""What the console's form routes share: field errors from a schema's validation, the values to
show again, and the answer after an action (a 303 for a plain form, HX-Redirect for htmx)."""
from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

# messages clearer than pydantic's for the errors a person makes most
FRIENDLY = {
    "string_pattern_mismatch": "use letters, digits, '-' and '_' only, starting with a letter",
    "string_too_short": "is too short",
    "string_too_long": "is too long",
    "float_parsing": "enter a number",
    "greater_than": "must be more than 0",
    "finite_number": "enter a finite number",
}


def blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def field_errors(exc: ValidationError, *, whole: Callable[[str], str] = lambda _: "form",
                 messages: Mapping[str, str] | None = None) -> dict[str, str]:
    """{field: message} from a schema's ValidationError. An error of the whole model (a rule across
    fields) goes to the field `whole(message)` names; `messages` overrides a field's message by
    "field:error type"."""
    found: dict[str, str] = {}
    for error in exc.errors():
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[0] if loc else whole(message)
        kind = str(error.get("type", ""))
        message = (messages or {}).get(f"{field}:{kind}") or FRIENDLY.get(kind) or message
        found.setdefault(field, message)
    return found


def done(request: Request, target: str) -> Response:
    """After an action: the page where its result shows (htmx follows HX-Redirect as a whole page)."""
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
