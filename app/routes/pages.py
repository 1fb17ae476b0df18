"""The pages a person opens: the chat playground at `/`, Swagger UI at `/docs`, ReDoc at `/redoc`.

Every script, style and icon is served by this server under `/assets/`, so the pages work without internet.
Swagger UI and ReDoc come from the `drf-spectacular-sidecar` wheel (monthly repackaged npm builds of
swagger-ui-dist and redoc, their LICENSE files beside them; NOTICE lists versions and licenses).
The playground is `app/static/`. With API keys on, the pages and their assets load without one
(`Access.PUBLIC`; the playground asks for the key and sends it with its API calls); `/openapi.json` needs it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
)
from litestar.static_files import create_static_files_router

from app.auth import Access

ASSETS = "/assets"
PLAYGROUND = Path(__file__).resolve().parent.parent / "static"
REDOC_JS = f"{ASSETS}/redoc/redoc.standalone.js"
REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
FAVICON = f"<link rel='icon' type='image/png' href='{ASSETS}/swagger-ui/favicon-32x32.png'>"


def _sidecar_dir() -> Path:
    # find_spec locates the wheel's files without importing it (its __init__ imports Django)
    spec = importlib.util.find_spec("drf_spectacular_sidecar")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("drf-spectacular-sidecar is not installed: it ships the /docs and /redoc assets")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "drf_spectacular_sidecar"


class PublicPage(OpenAPIRenderPlugin):
    """A render plugin whose page loads without an API key: it marks the route Litestar made for it public."""

    def receive_router(self, router: Router) -> None:
        for path in self.paths:
            for handler in router.route_handler_method_map[path].values():
                handler.opt["access"] = Access.PUBLIC


class Swagger(PublicPage, SwaggerRenderPlugin):
    pass


class Redoc(PublicPage, RedocRenderPlugin):
    pass


class PlaygroundPage(PublicPage):
    """The chat playground. A render plugin at `/` is how Litestar puts a page at the OpenAPI root."""

    def __init__(self) -> None:
        super().__init__(path="/")
        self.html = (PLAYGROUND / "playground.html").read_bytes()

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return self.html


def render_plugins() -> list[OpenAPIRenderPlugin]:
    swagger = f"{ASSETS}/swagger-ui"
    return [
        PlaygroundPage(),
        Swagger(
            path="/docs",
            js_url=f"{swagger}/swagger-ui-bundle.js",
            css_url=f"{swagger}/swagger-ui.css",
            standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
            favicon=FAVICON,
        ),
        Redoc(path="/redoc", js_url=REDOC_JS, google_fonts=False, favicon=FAVICON),
        JsonRenderPlugin(path="/openapi.json"),  # the schema needs a key, like the API it describes
    ]


def asset_handlers() -> list[Router | HTTPRouteHandler]:
    sidecar = _sidecar_dir()
    served = {"playground": PLAYGROUND, "swagger-ui": sidecar / "swagger-ui-dist"}
    routers = [
        create_static_files_router(
            f"{ASSETS}/{name}", directories=[folder], include_in_schema=False, opt={"access": Access.PUBLIC}
        )
        for name, folder in served.items()
    ]
    # the bundle's footer shows Redocly's logo from their CDN; "data:," fails to load and ReDoc then hides it
    bundle = (sidecar / "redoc" / "bundles" / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, b'"data:,"')

    @get(
        REDOC_JS,
        media_type="text/javascript",
        include_in_schema=False,
        sync_to_thread=False,
        opt={"access": Access.PUBLIC},
    )
    def redoc_bundle() -> bytes:
        return bundle

    return [*routers, redoc_bundle]
