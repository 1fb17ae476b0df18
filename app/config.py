"""Settings: read once from the environment (LLM_GATEWAY_*), validated, frozen.

`load_settings()` is the only reader of os.environ in the service. A bad value stops startup with a
message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.engine.engine import EngineConfig

PREFIX = "LLM_GATEWAY_"
DEFAULT_MODEL_DIR = Path("models/SmolLM2-135M-Instruct-gqa-auto")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


class SettingsError(ValueError):
    """An environment variable holds a value we cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    # -- model and engine
    model_dir: Path = DEFAULT_MODEL_DIR
    """Exported model folder (written by `llm-gateway export`)."""
    model_name: str = ""
    """Model id shown by /v1/models and accepted in requests; default: the manifest's name."""
    threads: int = field(default_factory=lambda: available_cpus())
    """ONNX Runtime intra-op threads."""
    allow_spinning: bool = True
    """Let ORT worker threads spin between kernels of one step (faster decode, busier cores)."""
    max_running: int = 32
    """Most sequences decoded together in one batch (KV_BUDGET_MB decides how many fit)."""
    kv_budget_mb: int = 128
    """KV memory the running sequences may reserve, in MB: a request is admitted while its prompt + max new
    tokens fit beside the others' (fp32 SmolLM2-135M: 45 KB a token); 0: max_running alone bounds the batch."""
    max_waiting: int = 64
    """Requests queued beyond the running batch; more get 429."""
    max_model_len: int = 2048
    """Context per sequence (prompt + generated), at most the model's own."""
    prefill_chunk: int = 128
    """Prompt tokens per prefill call while other streams are decoding."""
    prefix_cache: bool = True
    """Reuse the KV of prompt prefixes already computed (gqa graphs; output unchanged)."""
    prefix_cache_mb: int = 64
    """KV of finished sequences kept for reuse, in MB (fp32 SmolLM2-135M: 46 KB a token)."""
    warmup: bool = True
    """Run one generation before reporting ready."""
    # -- HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 2_000_000
    """Request bodies above this get 413."""
    request_timeout: float = 600.0
    """Seconds a generation may run before it ends with finish_reason "timeout"."""
    default_max_tokens: int = 256
    """New tokens when a request does not say."""
    sse_keepalive: float = 15.0
    """Seconds between SSE keep-alive comments while a request waits."""
    responses_max_stored: int = 1000
    """Responses kept for GET /v1/responses/{id} and previous_response_id (in memory; the oldest go first)."""
    responses_ttl: float = 3600.0
    """Seconds a stored response is kept."""
    shutdown_grace: float = 30.0
    """On SIGTERM: seconds in-flight requests get to finish."""
    api_keys: tuple[str, ...] = ()
    """Accepted bearer keys, comma separated. Empty: no authentication."""
    api_key_file: Path | None = None
    """File with one accepted key per line (added to api_keys)."""
    metrics_public: bool = True
    """Serve /metrics without a key even when keys are set."""
    cors_origins: tuple[str, ...] = ()
    """Allowed CORS origins, comma separated ("*" for any). Empty: CORS off."""
    # -- logs
    log_level: str = "info"
    log_format: str = "json"
    """json or console."""
    log_prompts: bool = False
    """Include prompts in request logs."""
    debug: bool = False
    """Add tracebacks to 500 error bodies."""

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def engine_config(self) -> EngineConfig:
        """The engine's share of the settings: the server and the bench build their engines from it."""
        from app.engine.engine import EngineConfig

        return EngineConfig(
            model_dir=self.model_dir,
            threads=self.threads,
            allow_spinning=self.allow_spinning,
            max_running=self.max_running,
            max_waiting=self.max_waiting,
            max_len=self.max_model_len,
            prefill_chunk=self.prefill_chunk,
            prefix_cache_mb=self.prefix_cache_mb if self.prefix_cache else 0,
            kv_budget_mb=self.kv_budget_mb,
        )

    def accepted_keys(self) -> tuple[str, ...]:
        keys = list(self.api_keys)
        if self.api_key_file is not None:
            keys += [line.strip() for line in self.api_key_file.read_text().splitlines() if line.strip()]
        return tuple(keys)


def _parse(name: str, raw: str, default: Any) -> Any:
    key = PREFIX + name.upper()
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected true or false")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(default, Path) or name == "api_key_file":
            return Path(raw) if raw else None
        return raw
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r} is not valid: {exc}") from exc


def _check(settings: Settings) -> None:
    rules = [
        ("threads", settings.threads >= 1, "must be at least 1"),
        ("max_running", settings.max_running >= 1, "must be at least 1"),
        ("max_waiting", settings.max_waiting >= 0, "must be 0 or more"),
        ("max_model_len", settings.max_model_len >= 16, "must be at least 16"),
        ("prefill_chunk", settings.prefill_chunk >= 16, "must be at least 16"),
        ("prefix_cache_mb", settings.prefix_cache_mb >= 0, "must be 0 or more"),
        ("kv_budget_mb", settings.kv_budget_mb >= 0, "must be 0 (no budget) or a size in MB"),
        ("port", 0 <= settings.port <= 65535, "must be a TCP port"),
        ("max_body_bytes", settings.max_body_bytes >= 1024, "must be at least 1024"),
        ("request_timeout", settings.request_timeout > 0, "must be positive"),
        ("default_max_tokens", settings.default_max_tokens >= 1, "must be at least 1"),
        ("sse_keepalive", settings.sse_keepalive > 0, "must be positive"),
        ("responses_max_stored", settings.responses_max_stored >= 0, "must be 0 or more"),
        ("responses_ttl", settings.responses_ttl > 0, "must be positive"),
        ("shutdown_grace", settings.shutdown_grace >= 0, "must be 0 or more"),
        ("log_level", settings.log_level in {"debug", "info", "warning", "error"}, "debug, info, warning or error"),
        ("log_format", settings.log_format in {"json", "console"}, "json or console"),
        ("api_key_file", settings.api_key_file is None or settings.api_key_file.is_file(), "file not found"),
    ]
    for name, ok, message in rules:
        if not ok:
            raise SettingsError(f"{PREFIX}{name.upper()}={getattr(settings, name)!r}: {message}")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from LLM_GATEWAY_* variables, then apply explicit overrides (CLI flags)."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        key = PREFIX + f.name.upper()
        if key in env:
            values[f.name] = _parse(f.name, env[key], getattr(defaults, f.name))
    settings = replace(defaults, **values).with_overrides(**overrides)
    if isinstance(settings.log_level, str):
        settings = replace(settings, log_level=settings.log_level.lower())
    _check(settings)
    return settings
