"""Errors a request can meet in the engine. The HTTP layer maps each to one status code."""

from __future__ import annotations


class EngineError(Exception):
    """Base class; `field` names the request field at fault, when there is one."""

    field: str | None = None


class InvalidParams(EngineError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PromptTooLong(EngineError):
    def __init__(self, prompt_tokens: int, max_new_tokens: int, max_len: int) -> None:
        super().__init__(
            f"this model's context is {max_len} tokens, but the request needs {prompt_tokens + max_new_tokens} "
            f"({prompt_tokens} in the prompt, {max_new_tokens} to generate); shorten the prompt or lower the "
            "maximum number of new tokens"
        )
        self.field = "prompt"
        self.prompt_tokens = prompt_tokens
        self.max_len = max_len


class QueueFull(EngineError):
    def __init__(self, waiting: int) -> None:
        super().__init__(f"the server is at capacity ({waiting} requests waiting); retry shortly")
        self.waiting = waiting


class EngineStopped(EngineError):
    def __init__(self) -> None:
        super().__init__("the engine is shutting down and takes no new requests")


class EngineFailed(EngineError):
    """The model runner raised; the request that was running ends with this error."""
