"""One mapping from every error to an HTTP status and the OpenAI error body."""

from __future__ import annotations

import re
import traceback
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from app.engine.errors import EngineError, EngineStopped, InvalidParams, PromptTooLong, QueueFull
from app.engine.manifest import ManifestError
from app.schemas import ErrorBody, ErrorDetail

log = structlog.get_logger("llm_gateway.errors")
_FIELD_IN_MESSAGE = re.compile(r"(?:required field `|at `\$\.)([\w.\[\]]+)`")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        return ErrorBody(
            ErrorDetail(
                message=self.message, type=_TYPES.get(self.status, "server_error"), param=self.param, code=self.code
            )
        )


def from_engine(exc: EngineError) -> ApiError:
    if isinstance(exc, PromptTooLong):
        return ApiError(400, str(exc), param=exc.field, code="context_length_exceeded")
    if isinstance(exc, InvalidParams):
        return ApiError(400, str(exc), param=exc.field, code="invalid_value")
    if isinstance(exc, QueueFull):
        return ApiError(429, str(exc), code="queue_full", headers={"Retry-After": "1"})
    if isinstance(exc, EngineStopped):
        return ApiError(503, str(exc), code="shutting_down")
    return ApiError(500, str(exc), code="engine_error")


def to_response(error: ApiError) -> Response[ErrorBody]:
    return Response(error.body(), status_code=error.status, headers=error.headers)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Litestar's exception handler for every route."""
    if isinstance(exc, ApiError):
        return to_response(exc)
    if isinstance(exc, EngineError):
        return to_response(from_engine(exc))
    if isinstance(exc, ValidationException):
        return to_response(_validation(exc))
    if isinstance(exc, HTTPException):
        return to_response(_http(request, exc))
    if isinstance(exc, ManifestError):
        return to_response(ApiError(503, str(exc), code="model_unavailable"))
    log.error("request.unhandled_error", error=repr(exc), path=request.url.path, exc_info=exc)
    message = "internal server error"
    if request.app.state.get("settings") is not None and request.app.state.settings.debug:
        message += ":\n" + "".join(traceback.format_exception(exc))
    return to_response(ApiError(500, message, code="internal_error"))


def _validation(exc: ValidationException) -> ApiError:
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    detail = str(first.get("message") or exc.detail)
    param = first.get("key")
    if param in (None, "data", "body"):
        found = _FIELD_IN_MESSAGE.search(detail)
        param = found.group(1) if found else None
    if param:
        message = f"{param}: {detail}"
    elif "JSON" in str(detail) or "decode" in str(detail).lower():
        message = f"the request body is not valid JSON: {detail}"
    else:
        message = str(detail)
    return ApiError(400, message, param=param, code="invalid_value")


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> ApiError:
    """Litestar's own refusals: unknown route, wrong method, body too large, ..."""
    headers = dict(exc.headers or {})
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return ApiError(404, f"{where}: no such route (GET /docs lists them)", code="not_found", headers=headers)
    if exc.status_code == 405:
        allowed = headers.get("allow", "")
        message = f"{where}: method not allowed; this route accepts {allowed}"
        return ApiError(405, message, code="method_not_allowed", headers=headers)
    if exc.status_code == 413:
        return ApiError(413, "the request body is larger than the server accepts", headers=headers)
    return ApiError(exc.status_code, exc.detail, headers=headers)
