"""Paths the app does not serve: a JSON 404 in the OpenAI error shape, whatever the method.

The router answers most unknown paths itself (NotFoundException, through app/errors.py). One-segment paths
are the exception: the docs router at "/" that OpenAPIConfig fills also gets Litestar's HTML 404 page for
`GET /{path:str}`. The app guard `PagesOnly` turns that into the JSON 404, and `unknown` answers the other
methods there (otherwise they would be a 405 from that GET-only route).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NoReturn

from litestar import Router, route
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from app.auth import Access

CATCH_ALL = "/{path:str}"
CATCH_ALL_TEMPLATE = "/{path}"  # as Litestar reports it in scope["path_template"]


@route(
    CATCH_ALL,
    http_method=["POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    opt={"access": Access.PUBLIC},  # a 404 reveals nothing a key would protect: same answer with or without one
)
async def unknown(path: FromPath[str]) -> NoReturn:
    raise NotFoundException()


def docs_router() -> Router:
    """The router for OpenAPIConfig(openapi_router=...): its pages, and `unknown` for the other methods."""
    return Router("/", route_handlers=[unknown], include_in_schema=False)


class PagesOnly:
    """App guard, ahead of the key guard: the docs router's GET catch-all answers a JSON 404 for any path
    that is not one of its `pages`, with or without an API key (a 404 reveals nothing a key protects)."""

    def __init__(self, pages: Collection[str]) -> None:
        self.pages = frozenset(pages)

    def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if CATCH_ALL in handler.paths and connection.scope["path"] not in self.pages:
            raise NotFoundException()
