"""The Litestar app factory and `serve()`: uvicorn with a graceful SIGTERM."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import structlog
import uvicorn
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from app.auth import ApiKeyGuard
from app.config import Settings
from app.engine.cpu import host_cpu
from app.engine.manifest import ManifestError, read_manifest
from app.engine.selection import chosen_elsewhere
from app.errors import handle_exception
from app.logging import configure_logging
from app.metrics import Metrics
from app.middleware import RequestMiddleware, provide_context, record_unrouted, routed
from app.responses import ResponseStore
from app.routes import native, openai, pages, responses, system, unknown
from app.schemas import ErrorBody
from app.state import Gateway

log = structlog.get_logger("llm_gateway.server")
VERSION = "0.1.0"


def create_app(settings: Settings) -> Litestar:
    """The app; its state holds the `Gateway`, which handlers receive as `gateway`. Raises ManifestError early."""
    manifest = read_manifest(settings.model_dir)
    if manifest.selection and (warning := chosen_elsewhere(manifest.selection.cpu, host_cpu())):
        log.warning("model.chosen_on_another_isa", model_dir=str(settings.model_dir), detail=warning)
    metrics = Metrics()
    metrics.describe_model(manifest.name, str(manifest.graph), str(manifest.quant), manifest.source.sha256)
    gateway = Gateway(
        settings=settings,
        metrics=metrics,
        manifest=manifest,
        responses=ResponseStore.from_settings(settings),
        model_id=settings.model_name or manifest.name,
        created=int(time.time()),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        gateway.start_loading()
        try:
            yield
        finally:
            await gateway.close()

    keys = settings.accepted_keys()
    render_plugins = pages.render_plugins()
    pages_served = [path for plugin in render_plugins for path in plugin.paths]
    return Litestar(
        route_handlers=[
            *system.ROUTES,
            native.generate,
            openai.completions,
            openai.chat_completions,
            *responses.ROUTES,
            *pages.asset_handlers(),
        ],
        lifespan=[lifespan],
        state=State({"gateway": gateway, "settings": settings}),
        dependencies={
            "gateway": Provide(provide_gateway, sync_to_thread=False),
            "context": Provide(provide_context, sync_to_thread=False),
        },
        middleware=[RequestMiddleware(metrics, catch_all=unknown.CATCH_ALL_TEMPLATE)],
        guards=[unknown.PagesOnly(pages_served), *([ApiKeyGuard(keys, settings.metrics_public)] if keys else [])],
        exception_handlers={Exception: partial(handle_app_exception, metrics)},
        request_max_body_size=settings.max_body_bytes,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins), allow_headers=["*"])
        if settings.cors_origins
        else None,
        openapi_config=OpenAPIConfig(
            title="llm-gateway",
            version=VERSION,
            description="CPU-first LLM serving on ONNX Runtime: native and OpenAI-compatible routes.",
            openapi_router=unknown.docs_router(),
            render_plugins=render_plugins,
        ),
        logging_config=None,
        debug=False,
    )


def handle_app_exception(metrics: Metrics, request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """The one exception handler: the error body (`app/errors.py`); a request the router refused before any
    route also gets what RequestMiddleware gives the others (request id, counter, log line)."""
    response = handle_exception(request, exc)
    if not routed(request.scope):
        response.headers["x-request-id"] = record_unrouted(request.scope, response.status_code, metrics)
    return response


def provide_gateway(state: State) -> Gateway:
    """The `gateway` dependency of every handler."""
    gateway: Gateway = state.gateway
    return gateway


class _Server(uvicorn.Server):
    """On SIGTERM/SIGINT: readiness goes 503 and no new generation is admitted, then uvicorn drains."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:
            log.info("server.draining", signal=sig, grace_s=self.gateway.settings.shutdown_grace)
            self.gateway.begin_drain()
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutting down; a drained shutdown is a clean exit (0)
        self._captured_signals.clear()


def serve(settings: Settings) -> int:
    configure_logging(settings)
    try:
        app = create_app(settings)
    except ManifestError as exc:
        print(f"llm-gateway serve: error: {exc}", file=sys.stderr)
        return 2
    gateway: Gateway = app.state.gateway
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
        loop="auto",
        http="auto",
        server_header=False,
    )
    log.info("server.starting", host=settings.host, port=settings.port, model_dir=str(settings.model_dir))
    _Server(config, gateway).run()
    return 0
