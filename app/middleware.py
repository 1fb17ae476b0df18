"""The ASGI edge around the Litestar app: request ids, API keys, one log line and metrics per request.

Pure ASGI (no per-request objects beyond a dict) so that it also sees streamed responses to the end.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from typing import Any

import structlog

from app.config import Settings
from app.metrics import Metrics
from app.routes.pages import ASSETS, PAGE_PATHS
from app.schemas import ErrorBody, ErrorDetail, encode

log = structlog.get_logger("llm_gateway.access")

PUBLIC_PATHS = frozenset({"/v1/health", "/v1/ready"})
METRICS_PATHS = frozenset({"/metrics", "/v1/metrics"})
ROUTES = frozenset(
    {
        "/v1/generate",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/tokenize",
        "/v1/detokenize",
        "/v1/info",
        "/openapi.json",
        *PAGE_PATHS,
        *PUBLIC_PATHS,
        *METRICS_PATHS,
    }
)
_REQUEST_ID = re.compile(r"^[\w.:/+=-]{1,128}$")


class GatewayMiddleware:
    def __init__(self, app: Any, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.keys = [k.encode() for k in settings.accepted_keys()]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        fields: dict[str, Any] = {}
        scope.setdefault("state", {}).update(request_id=request_id, log=fields)
        path = scope["path"]
        route = path if path in ROUTES else "other"
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if self._needs_key(scope, path) and not self._authorized(headers):
                await _send_json(
                    send_with_id,
                    401,
                    ErrorBody(
                        ErrorDetail(
                            message="missing or invalid API key: send Authorization: Bearer <key>",
                            type="authentication_error",
                            code="invalid_api_key",
                        )
                    ),
                    extra=[(b"www-authenticate", b"Bearer")],
                )
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.request_duration.labels(route=route).observe(duration)
            if route not in PUBLIC_PATHS and route not in METRICS_PATHS:
                log.info(
                    "request.finished",
                    method=scope["method"],
                    route=route,
                    path=path,
                    status=status,
                    duration_ms=round(duration * 1000, 1),
                    **fields,
                )
            structlog.contextvars.unbind_contextvars("request_id")

    def _needs_key(self, scope: dict[str, Any], path: str) -> bool:
        if not self.keys or path in PUBLIC_PATHS or scope["method"] == "OPTIONS":
            return False
        if path in PAGE_PATHS or path.startswith(f"{ASSETS}/"):
            return False  # pages load without a key and ask for one; the API calls they make carry it
        return not (path in METRICS_PATHS and self.settings.metrics_public)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        value = headers.get(b"authorization", b"")
        scheme, _, token = value.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        # compare against every key, in constant time each, without stopping at a match
        matches = [hmac.compare_digest(token.strip(), key) for key in self.keys]
        return any(matches)


async def _send_json(send: Any, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = encode(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
