"""Health, readiness, model list, info, tokenizer routes and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import onnxruntime
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from app.auth import Access
from app.engine.cpu import host_cpu
from app.errors import ApiError
from app.generation import check_token_ids
from app.metrics import CONTENT_TYPE
from app.routes.messages import to_template_messages
from app.schemas import (
    DetokenizeRequest,
    DetokenizeResponse,
    Health,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from app.state import Gateway, Status


@get(
    "/v1/health",
    summary="Liveness: 200 while the process serves HTTP",
    tags=["system"],
    opt={"access": Access.PUBLIC},
)
async def health() -> Health:
    return Health(status="ok")


@get(
    "/v1/ready",
    summary="Readiness: 200 once the model is loaded and warmed up, else 503",
    tags=["system"],
    opt={"access": Access.PUBLIC},
)
async def ready(gateway: NamedDependency[Gateway]) -> Response[Health]:
    ok = gateway.status is Status.READY
    return Response(
        Health(status=str(gateway.status), detail=gateway.error),
        status_code=200 if ok else 503,
        headers={} if ok else {"Retry-After": "1"},
    )


@get(
    ["/metrics", "/v1/metrics"],
    summary="Prometheus metrics (text format)",
    tags=["system"],
    media_type=CONTENT_TYPE,
    opt={"access": Access.METRICS},
)
async def metrics(gateway: NamedDependency[Gateway]) -> Response[bytes]:
    return Response(gateway.metrics.export(), media_type=CONTENT_TYPE)


@get("/v1/models", summary="The served model (OpenAI list shape)", tags=["openai"])
async def models(gateway: NamedDependency[Gateway]) -> ModelList:
    max_len = gateway.engine.max_len if gateway.engine else gateway.settings.max_model_len
    return ModelList(
        data=[ModelCard(id=gateway.model_id, created=gateway.created, owned_by="llm-gateway", max_model_len=max_len)]
    )


@get("/v1/info", summary="Model provenance, runtime and limits", tags=["system"])
async def info(gateway: NamedDependency[Gateway]) -> dict[str, Any]:
    m, s = gateway.manifest, gateway.settings
    return {
        "model_id": gateway.model_id,
        "status": str(gateway.status),
        "manifest": {
            "name": m.name,
            "variant": m.variant,
            "created_at": m.created_at,
            "source": m.source,
            "graph": str(m.graph),
            "quant": str(m.quant),
            "recipe": m.recipe,
            "opset": m.io.opset,
            "versions": m.versions,
            "size_bytes": m.size_bytes,
            "validation": m.validation,
            "selection": m.selection,
        },
        "runtime": {
            "onnxruntime_version": onnxruntime.__version__,
            "threads": s.threads,
            "allow_spinning": s.allow_spinning,
            "providers": ["CPUExecutionProvider"],
            "cpu": host_cpu(),
        },
        "limits": {
            "max_running": s.max_running,
            "kv_budget_mb": s.kv_budget_mb,
            "max_waiting": s.max_waiting,
            "max_model_len": gateway.engine.max_len if gateway.engine else s.max_model_len,
            "context_length": m.model.context_length,
            "max_body_bytes": s.max_body_bytes,
            "request_timeout_s": s.request_timeout,
            "default_max_tokens": s.default_max_tokens,
            "prefill_chunk": s.prefill_chunk,
        },
    }


@post("/v1/tokenize", summary="Text or chat messages to token ids", tags=["tokenizer"], status_code=200)
async def tokenize(gateway: NamedDependency[Gateway], data: JSONBody[TokenizeRequest]) -> TokenizeResponse:
    engine = gateway.require_engine()
    tok = engine.tokenizer
    if (data.prompt is None) == (data.messages is None):
        raise ApiError(400, "give exactly one of prompt or messages", param="prompt")
    if data.messages is not None:
        ids = tok.encode_chat(to_template_messages(data.messages))
    else:
        ids = tok.encode(data.prompt or "", add_special_tokens=data.add_special_tokens)
    return TokenizeResponse(tokens=ids, count=len(ids), max_model_len=engine.max_len)


@post("/v1/detokenize", summary="Token ids to text", tags=["tokenizer"], status_code=200)
async def detokenize(gateway: NamedDependency[Gateway], data: JSONBody[DetokenizeRequest]) -> DetokenizeResponse:
    engine = gateway.require_engine()
    check_token_ids(engine, data.tokens, "tokens")
    return DetokenizeResponse(prompt=engine.tokenizer.decode(data.tokens, skip_special_tokens=False))


ROUTES = [health, ready, metrics, models, info, tokenize, detokenize]
