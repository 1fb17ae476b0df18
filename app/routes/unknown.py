"""Paths the app does not serve: a JSON 404 in the OpenAI error shape, whatever the method.

The router answers most unknown paths itself (NotFoundException, through app/errors.py). One-segment paths
are the exception: the docs router at "/" that OpenAPIConfig fills also gets Litestar's HTML 404 page for
`GET /{path:str}`. The guard of `docs_router` turns that into the JSON 404, and `unknown` answers the other
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

CATCH_ALL = "/{path:str}"
CATCH_ALL_TEMPLATE = "/{path}"  # as Litestar reports it in scope["path_template"]


@route(
    CATCH_ALL,
    http_method=["POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def unknown(path: FromPath[str]) -> NoReturn:
    raise NotFoundException()


def docs_router(pages: Collection[str]) -> Router:
    """The router for OpenAPIConfig(openapi_router=...): it serves `pages` and a JSON 404 for any other path."""

    def pages_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope["path"] not in pages:
            raise NotFoundException()

    return Router("/", route_handlers=[unknown], guards=[pages_only], include_in_schema=False)
