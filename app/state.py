"""What the app holds between requests: settings, metrics, the engine and the stored responses, plus readiness."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.config import Settings
from app.engine.engine import Engine
from app.engine.manifest import Manifest
from app.engine.params import SamplingParams
from app.errors import ApiError
from app.metrics import Metrics
from app.responses import ResponseStore

log = structlog.get_logger("llm_gateway.state")


class Status(enum.StrEnum):
    LOADING = "loading"
    WARMING_UP = "warming_up"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


@dataclass
class Gateway:
    settings: Settings
    metrics: Metrics
    manifest: Manifest
    responses: ResponseStore  # the Responses API's stored results (in memory)
    status: Status = Status.LOADING
    engine: Engine | None = None
    error: str | None = None
    model_id: str = ""
    created: int = 0
    _loader: asyncio.Task[Any] | None = field(default=None, repr=False)

    def require_engine(self) -> Engine:
        """The engine, or 503 while loading, warming up, draining or after a failed load."""
        if self.status is not Status.READY or self.engine is None:
            detail = f": {self.error}" if self.error else ""
            raise ApiError(
                503,
                f"the model is not ready ({self.status}{detail}); retry shortly",
                code=f"model_{self.status}",
                headers={"Retry-After": "1"},
            )
        return self.engine

    def check_model(self, requested: str | None) -> None:
        if requested and requested not in (self.model_id, self.manifest.variant):
            raise ApiError(
                404,
                f"model {requested!r} is not served here; this server serves {self.model_id!r}",
                param="model",
                code="model_not_found",
            )

    async def load(self) -> None:
        """Open the session, start the engine thread, run one warm-up generation; then READY."""
        s = self.settings
        config = s.engine_config()
        try:
            engine = await asyncio.to_thread(Engine, config, self.metrics)
            engine.start()
            engine.grammars.on_compiled = self.metrics.on_grammar_compiled
            self.engine = engine
            self.metrics.watch_engine(lambda: engine.stats)
            if s.warmup:
                self.status = Status.WARMING_UP
                ids = engine.tokenizer.encode("Hello")
                async for _ in engine.submit(ids, SamplingParams(max_new_tokens=4, ignore_eos=True), "warmup"):
                    pass
            self.status = Status.READY
            self.metrics.ready.set(1)
            log.info(
                "engine.ready",
                model=self.model_id,
                graph=str(self.manifest.graph),
                quant=str(self.manifest.quant),
                threads=s.threads,
                max_running=s.max_running,
                max_model_len=engine.max_len,
            )
        except Exception as exc:  # a broken model folder must not kill liveness; readiness tells
            self.status = Status.FAILED
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("engine.load_failed", error=self.error, exc_info=exc)

    def start_loading(self) -> None:
        self._loader = asyncio.create_task(self.load())

    def begin_drain(self) -> None:
        if self.status is Status.READY or self.status is Status.WARMING_UP:
            self.status = Status.DRAINING
            self.metrics.ready.set(0)
        if self.engine is not None:
            self.engine.stop_accepting()

    async def close(self) -> None:
        self.begin_drain()
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        if self.engine is not None:
            await self.engine.drain(self.settings.shutdown_grace)
            await self.engine.shutdown()
