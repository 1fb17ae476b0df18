"""Per request, inside the Litestar app: the request id (echoed back), one access log line when the response
ends (streams included) and the request counters. Handlers get the `RequestContext` by dependency injection."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import Access, access_of
from app.metrics import Metrics

log = structlog.get_logger("llm_gateway.access")

UNKNOWN_ROUTE = "other"  # the route label of paths the app does not serve
_CONTEXT = "llm_gateway.context"  # the scope["state"] key the middleware hands the context over with
_REQUEST_ID = re.compile(r"^[\w.:/+=-]{1,128}$")
_UNLOGGED = (Access.PUBLIC, Access.METRICS)  # probes, scrapes, pages: counted, not logged (unknown paths are)


@dataclass(slots=True)
class RequestContext:
    """One request's id and the extra fields of its access log line (handlers add prompt, tokens, ...)."""

    request_id: str
    log: dict[str, Any] = field(default_factory=dict)


def provide_context(request: Request[Any, Any, Any]) -> RequestContext:
    """The `context` dependency of every handler."""
    context: RequestContext = request.scope["state"][_CONTEXT]
    return context


class RequestMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: Metrics, catch_all: str) -> None:
        self.metrics = metrics
        self.catch_all = catch_all  # the path template of the handler answering unknown paths

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        context = RequestContext(_request_id(scope))
        scope["state"][_CONTEXT] = context
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", context.request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=context.request_id):
            try:
                await next_app(scope, receive, send_with_id)
            finally:
                self._finished(scope, context, status, time.perf_counter() - started)

    def _finished(self, scope: Scope, context: RequestContext, status: int, duration: float) -> None:
        template = scope.get("path_template", UNKNOWN_ROUTE)
        route = UNKNOWN_ROUTE if template == self.catch_all else template
        self.metrics.request_duration.labels(route=route).observe(duration)
        logged = route == UNKNOWN_ROUTE or access_of(scope["route_handler"]) not in _UNLOGGED  # a 404 is worth a line
        _record(self.metrics, scope, route, status, logged, duration_ms=round(duration * 1000, 1), **context.log)


def record_unrouted(scope: Scope, status: int, metrics: Metrics) -> str:
    """A request the router refused before any route, so before this middleware: a path below a known prefix
    (`/v1/x/y`: Litestar's route trie does not fall back from `/v1` to the root catch-all) or a wrong method.
    It gets what the middleware gives the others, from the exception handler: a request id (returned, for the
    response header), the request counter under the route label "other", and the access log line. No duration
    histogram: the time the router took is not known here."""
    request_id = _request_id(scope)
    _record(metrics, scope, UNKNOWN_ROUTE, status, True, request_id=request_id)
    return request_id


def _record(metrics: Metrics, scope: Scope, route: str, status: int, logged: bool, **fields: Any) -> None:
    """The request counter and, if `logged`, the access log line: one declaration for both paths in."""
    metrics.requests.labels(route=route, status=str(status)).inc()
    if logged:
        log.info("request.finished", method=scope["method"], route=route, path=scope["path"], status=status, **fields)


def routed(scope: Scope) -> bool:
    """Whether the middleware handles this request (it puts the context in the scope's state)."""
    return _CONTEXT in scope.get("state", {})


def _request_id(scope: Scope) -> str:
    raw = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"").decode("latin-1")
    return raw if _REQUEST_ID.match(raw) else uuid.uuid4().hex
