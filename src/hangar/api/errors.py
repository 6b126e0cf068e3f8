"""Domain errors become HTTP responses here, and only here.

Two wire formats: the native API answers {"error": {"code", "message"}}; the MWAA
routes answer the AWS REST-JSON way (the type in `x-amzn-ErrorType`, the message
in the body) with the error names and status codes of botocore's mwaa model.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError

from hangar import errors
from hangar.api.console import gate, render
from hangar.buckets import errors as bucket_errors

log = logging.getLogger(__name__)

STATUS = {
    errors.ValidationFailed: 400,
    errors.Unauthorized: 401,
    errors.PayloadTooLarge: 413,
    errors.AccessDenied: 403,
    errors.EnvironmentNotFound: 404,
    errors.EnvironmentAlreadyExists: 409,
    errors.EnvironmentBusy: 409,
    errors.IllegalTransition: 409,
    errors.RestApiClientError: 502,
    errors.SnapshotNotFound: 404,
    errors.SnapshotCorrupted: 409,
    errors.AlertNotFound: 404,
    errors.AlertAlreadyExists: 409,
    errors.GitCredentialNotFound: 404,
    errors.GitCredentialExists: 409,
    bucket_errors.BucketNotFound: 404,
    bucket_errors.ObjectNotFound: 404,
    bucket_errors.BucketAlreadyExists: 409,
    bucket_errors.BucketNotEmpty: 409,
}

# MWAA error type and status for each domain error; anything else is InternalServerException
MWAA = {
    errors.ValidationFailed: ("ValidationException", 400),
    errors.EnvironmentAlreadyExists: ("ValidationException", 400),
    errors.EnvironmentBusy: ("ValidationException", 400),
    errors.IllegalTransition: ("ValidationException", 400),
    errors.EnvironmentNotFound: ("ResourceNotFoundException", 404),
    errors.Unauthorized: ("AccessDeniedException", 403),
    errors.PayloadTooLarge: ("ValidationException", 413),
    errors.AccessDenied: ("AccessDeniedException", 403),
    bucket_errors.BucketNotFound: ("ValidationException", 400),
    bucket_errors.ObjectNotFound: ("ValidationException", 400),
    errors.RestApiServerError: ("RestApiServerException", 400),
    errors.RestApiClientError: ("RestApiClientException", 400),
}


def _lookup(table: dict, exc: Exception, default):
    for kind, value in table.items():
        if isinstance(exc, kind):
            return value
    return default


def _describe(error: dict) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def is_mwaa(request: Request) -> bool:
    return _mwaa_path(request.url.path)


NATIVE_PATHS = ("/api/v1", "/health", "/metrics", "/console")  # every other path is the MWAA API's


def _mwaa_path(path: str) -> bool:
    return not path.startswith(NATIVE_PATHS)


def mwaa_error(kind: str, status: int, message: str, extra: dict | None = None) -> JSONResponse:
    key = "Message" if kind == "AccessDeniedException" else "message"
    body = {key: message, **(extra or {})}
    return JSONResponse(body, status_code=status, headers={"x-amzn-ErrorType": kind})


def error_response(path: str, exc: errors.HangarError) -> JSONResponse:
    """The response for a domain error on `path`, in the wire format of its API."""
    if _mwaa_path(path):
        kind, status = _lookup(MWAA, exc, ("InternalServerException", 500))
        extra = None
        if isinstance(exc, errors.RestApiClientError):
            extra = {"RestApiStatusCode": exc.status, "RestApiResponse": exc.payload}
        return mwaa_error(kind, status, exc.message, extra)
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=_lookup(STATUS, exc, 500))


def is_console(request: Request) -> bool:
    return gate.covers(request.url.path)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.HangarError)
    async def _hangar(request: Request, exc: errors.HangarError) -> Response:
        if is_console(request):  # a page that says what went wrong, in the console's frame
            return render.error_page(request, status_code=_lookup(STATUS, exc, 500), message=exc.message)
        return error_response(request.url.path, exc)

    # a request that does not parse, and a shape built from valid pieces that breaks a cross-field rule
    @app.exception_handler(RequestValidationError)
    @app.exception_handler(PydanticValidationError)
    async def _invalid(request: Request, exc: RequestValidationError | PydanticValidationError) -> Response:
        message = "; ".join(_describe(e) for e in exc.errors())
        if is_console(request):
            return render.error_page(request, status_code=400, message=message)
        if is_mwaa(request):
            return mwaa_error("ValidationException", 400, message)
        return JSONResponse({"error": {"code": "VALIDATION_ERROR", "message": message}}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        if is_console(request):
            return render.error_page(request, status_code=500, message="an internal error occurred; see the "
                                     "control plane's log")
        if is_mwaa(request):
            return mwaa_error("InternalServerException", 500, "an internal error occurred; see the control plane's log")
        return JSONResponse({"error": {"code": "INTERNAL_ERROR", "message": "an internal error occurred; see the "
                                       "control plane's log"}}, status_code=500)
