"""Domain errors become HTTP responses here, and only here."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hangar import errors

STATUS = {
    errors.ValidationFailed: 400,
    errors.Unauthorized: 401,
    errors.AccessDenied: 403,
    errors.EnvironmentNotFound: 404,
    errors.EnvironmentAlreadyExists: 409,
    errors.EnvironmentBusy: 409,
    errors.IllegalTransition: 409,
}


def _status_for(exc: errors.HangarError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 500


def _describe(error: dict) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.HangarError)
    async def _hangar(_: Request, exc: errors.HangarError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=_status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(_describe(e) for e in exc.errors())
        return JSONResponse({"error": {"code": "VALIDATION_ERROR", "message": message}}, status_code=400)
