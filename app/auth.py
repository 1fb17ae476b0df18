"""API keys as a Litestar guard: a bearer key on every route but the public ones, refused through the one
exception handler (app/errors.py) like every other error."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from app.errors import ApiError


class Access(enum.StrEnum):
    """Who may call a route: set on a handler as `opt={"access": Access.PUBLIC}`; the default is KEY."""

    KEY = "key"  # a valid API key, when keys are configured
    PUBLIC = "public"  # anyone (liveness and readiness probes)
    METRICS = "metrics"  # anyone while LLM_GATEWAY_METRICS_PUBLIC is true


def access_of(handler: BaseRouteHandler) -> Access:
    return Access(handler.opt.get("access", Access.KEY))


def bearer_token(header: str) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None when the header is anything else."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiKeyGuard:
    def __init__(self, keys: Sequence[str], metrics_public: bool) -> None:
        self.keys = [key.encode() for key in keys]
        self.metrics_public = metrics_public

    def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        needed = access_of(handler)
        if connection.scope["method"] == "OPTIONS" or needed is Access.PUBLIC:
            return
        if needed is Access.METRICS and self.metrics_public:
            return
        if not self._authorized(connection.headers.get("authorization", "")):
            raise ApiError(
                401,
                "missing or invalid API key: send Authorization: Bearer <key>",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def _authorized(self, header: str) -> bool:
        token = bearer_token(header)
        if token is None:
            return False
        presented = token.encode("latin-1")
        # compare against every key, in constant time each, without stopping at a match
        matches = [hmac.compare_digest(presented, key) for key in self.keys]
        return any(matches)
