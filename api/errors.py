"""Every error is JSON ``{"error": {"code", "message"}}`` with a 4xx status saying what was
wrong; unexpected failures answer 500 with a generic message and are logged, never echoed."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from processors.errors import ProcessingError
from schemas.dead_letter import ErrorKind
from schemas.validation import describe
from search import IncompatibleQueryModel
from search.batching import SearchBusy

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


IMAGE_STATUS = {
    ErrorKind.IMAGE_TOO_LARGE: 413,
    ErrorKind.UNSUPPORTED_IMAGE_FORMAT: 415,
}


def image_error(exc: ProcessingError) -> ApiError:
    return ApiError(IMAGE_STATUS.get(exc.kind, 422), exc.kind.value, str(exc))


def _body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(IncompatibleQueryModel)
    async def incompatible(_: Request, exc: IncompatibleQueryModel) -> JSONResponse:
        return JSONResponse(_body("incompatible_query_model", str(exc)), status_code=409)

    @app.exception_handler(SearchBusy)
    async def busy(_: Request, exc: SearchBusy) -> JSONResponse:
        return JSONResponse(_body("busy", f"{exc}: retry shortly"), status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = describe(exc.errors(), root="request", skip=("body",))
        return JSONResponse(_body("invalid_request", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(_body("internal_error", "internal error"), status_code=500)
