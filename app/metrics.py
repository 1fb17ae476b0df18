"""Prometheus metrics: every metric object, the engine observer that feeds them, and the text export.

Names carry their units; no request ids in labels. One registry per app, so tests can run several.
"""

from __future__ import annotations

from collections.abc import Callable

import onnxruntime
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.engine.stats import EngineStats
from app.engine.stopping import FinishReason

CONTENT_TYPE = CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")  # Litestar adds the charset of text/*
disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_LATENCY = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)
_BATCH = (1, 2, 4, 8, 12, 16, 24, 32, 64)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llm_requests_total", "HTTP requests by route and status code", ["route", "status"], registry=r
        )
        self.request_duration = Histogram(
            "llm_request_duration_seconds",
            "HTTP request duration, to the last byte",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds", "Arrival to first generated token", buckets=_LATENCY, registry=r
        )
        self.itl = Histogram(
            "llm_inter_token_latency_seconds",
            "Time between two tokens of one sequence",
            buckets=_TOKEN_LATENCY,
            registry=r,
        )
        self.queue_wait = Histogram(
            "llm_queue_wait_seconds", "Arrival to start of prefill", buckets=_LATENCY, registry=r
        )
        self.prompt_tokens = Counter("llm_prompt_tokens", "Prompt tokens prefilled", registry=r)
        self.completion_tokens = Counter("llm_completion_tokens", "Tokens generated", registry=r)
        self.finished = Counter(
            "llm_sequences_finished", "Sequences finished, by finish reason", ["finish_reason"], registry=r
        )
        self.prefix_queries = Counter(
            "llm_prefix_cache_queries_tokens", "Prompt tokens looked up in the prefix cache", registry=r
        )
        self.prefix_hits = Counter(
            "llm_prefix_cache_hits_tokens", "Prompt tokens whose KV came from the prefix cache", registry=r
        )
        self.prefix_cached = Gauge(
            "llm_prefix_cache_tokens", "KV positions held by the prefix cache for reuse", registry=r
        )
        self.kv_usage = Gauge(
            "llm_kv_cache_usage_ratio", "KV positions of live sequences over the slots' capacity (0..1)", registry=r
        )
        self.running = Gauge("llm_requests_running", "Sequences in the decode batch or prefilling", registry=r)
        self.waiting = Gauge("llm_requests_waiting", "Requests queued for a batch slot", registry=r)
        self.batch_size = Histogram("llm_batch_size", "Sequences per decode step", buckets=_BATCH, registry=r)
        self.step_duration = Histogram(
            "llm_engine_step_duration_seconds",
            "One ONNX Runtime call, by kind",
            ["kind"],
            buckets=(*_TOKEN_LATENCY, 2.5, 5.0),
            registry=r,
        )
        self.info = Gauge(
            "llm_model_info",
            "The served model (value is always 1)",
            ["model", "graph", "quant", "onnxruntime_version", "source_sha256"],
            registry=r,
        )
        self.constrained = Counter(
            "llm_constrained_requests", "Requests whose output a grammar constrains, by kind", ["kind"], registry=r
        )
        self.grammar_compile = Histogram(
            "llm_grammar_compile_seconds",
            "Compiling one grammar against the tokenizer (cache misses only)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.grammar_mask = Histogram(
            "llm_grammar_mask_seconds",
            "Filling the grammar bitmasks that the rows of one step needed (one call)",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
            registry=r,
        )
        self.ready = Gauge("llm_ready", "1 when the model is loaded and warmed up", registry=r)
        for reason in FinishReason:
            self.finished.labels(finish_reason=str(reason))

    def describe_model(self, name: str, graph: str, quant: str, source_sha256: str) -> None:
        self.info.labels(
            model=name,
            graph=graph,
            quant=quant,
            onnxruntime_version=onnxruntime.__version__,
            source_sha256=source_sha256,
        ).set(1)

    def watch_engine(self, stats: Callable[[], EngineStats]) -> None:
        self.running.set_function(lambda: (s := stats()).running + s.prefilling)
        self.waiting.set_function(lambda: stats().waiting)
        self.prefix_cached.set_function(lambda: stats().cached_tokens)
        self.kv_usage.set_function(lambda: stats().kv_usage)

    def export(self) -> bytes:
        return generate_latest(self.registry)

    # -- EngineObserver: called on the engine thread -----------------------------------------------------

    def on_step(self, kind: str, seconds: float, batch_size: int, tokens: int) -> None:
        self.step_duration.labels(kind=kind).observe(seconds)
        if kind == "decode":
            self.batch_size.observe(batch_size)

    def on_admitted(self, queue_seconds: float, prompt_tokens: int) -> None:
        self.queue_wait.observe(queue_seconds)
        self.prompt_tokens.inc(prompt_tokens)

    def on_prefix_lookup(self, prompt_tokens: int, hit_tokens: int) -> None:
        self.prefix_queries.inc(prompt_tokens)
        self.prefix_hits.inc(hit_tokens)

    def on_first_token(self, seconds: float) -> None:
        self.ttft.observe(seconds)
        self.completion_tokens.inc()

    def on_inter_token(self, seconds: float) -> None:
        self.itl.observe(seconds)
        self.completion_tokens.inc()

    def on_finished(self, reason: FinishReason, prompt_tokens: int, completion_tokens: int) -> None:
        self.finished.labels(finish_reason=str(reason)).inc()

    def on_mask(self, seconds: float, rows: int) -> None:
        self.grammar_mask.observe(seconds)

    # -- structured outputs: called from compile threads and handlers ----------------------------------

    def on_grammar_compiled(self, kind: str, seconds: float) -> None:
        self.grammar_compile.observe(seconds)
