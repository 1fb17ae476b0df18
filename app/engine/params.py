"""Per-request sampling and stopping parameters, checked once at submit time."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.engine.errors import InvalidParams

MAX_TOP_LOGPROBS = 20
MAX_STOP_STRINGS = 16
MAX_SEED = 2**63 - 1  # JSON clients (and msgspec) carry signed 64-bit integers
MAX_LOGIT_BIAS = 100.0  # OpenAI's range: -100 bans a token, +100 all but forces it


class GrammarKind(enum.Enum):
    JSON_SCHEMA = "json_schema"  # source: the schema as JSON text
    REGEX = "regex"
    LARK = "lark"  # llguidance's Lark dialect (may embed `%json {...}`)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Grammar:
    """What a request constrains its output to (compiled by app.engine.grammar); `field` is the request
    field to blame when it does not compile."""

    kind: GrammarKind
    source: str
    field: str = "grammar"


@dataclass(frozen=True, slots=True)
class Limit:
    """The range of one numeric request field: the wire schema (msgspec `Meta`) and `validate` both read it."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    hint: str = ""

    def allows(self, value: float) -> bool:
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
        )

    def bounds(self) -> dict[str, float]:
        """The bounds as msgspec.Meta keywords."""
        return {k: v for k, v in (("ge", self.ge), ("gt", self.gt), ("le", self.le)) if v is not None}


LIMITS = {  # the one table of ranges, by SamplingParams field name
    "max_new_tokens": Limit(ge=1, hint="must be at least 1"),
    "min_new_tokens": Limit(ge=0, hint="must be 0 or more"),
    "temperature": Limit(ge=0.0, le=100.0, hint="must be between 0 and 100 (0 is greedy)"),
    "top_k": Limit(ge=0, hint="must be 0 (off) or positive"),
    "top_p": Limit(gt=0.0, le=1.0, hint="must be in (0, 1]"),
    "min_p": Limit(ge=0.0, le=1.0, hint="must be in [0, 1]"),
    "repetition_penalty": Limit(gt=0.0, le=10.0, hint="must be in (0, 10]"),
    "presence_penalty": Limit(ge=-2.0, le=2.0, hint="must be between -2 and 2"),
    "frequency_penalty": Limit(ge=-2.0, le=2.0, hint="must be between -2 and 2"),
    "top_logprobs": Limit(ge=0, le=MAX_TOP_LOGPROBS, hint=f"must be between 0 and {MAX_TOP_LOGPROBS}"),
    "seed": Limit(ge=0, le=MAX_SEED, hint=f"must be between 0 and {MAX_SEED}"),
}


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    temperature: float = 0.0  # 0 means greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0  # HF style, over prompt and output
    presence_penalty: float = 0.0  # OpenAI style, over output
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    grammar: Grammar | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias added to its logit)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    @property
    def penalized(self) -> bool:
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    @property
    def shaped(self) -> bool:
        """Something other than penalties changes the logits row: a grammar mask or a logit bias."""
        return self.grammar is not None or bool(self.logit_bias)

    def validate(self, vocab_size: int) -> None:
        """Raise InvalidParams naming the first field out of range."""
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not limit.allows(value):
                raise InvalidParams(name, limit.hint)
        checks = [
            ("min_new_tokens", self.min_new_tokens <= self.max_new_tokens, "must be between 0 and max_new_tokens"),
            ("stop", len(self.stop) <= MAX_STOP_STRINGS, f"at most {MAX_STOP_STRINGS} stop strings"),
            ("stop", all(self.stop), "stop strings must not be empty"),
            (
                "stop_token_ids",
                all(0 <= t < vocab_size for t in self.stop_token_ids),
                f"token ids must be in [0, {vocab_size})",
            ),
            (
                "logit_bias",
                all(0 <= t < vocab_size for t, _ in self.logit_bias),
                f"token ids must be in [0, {vocab_size})",
            ),
            (
                "logit_bias",
                all(-MAX_LOGIT_BIAS <= b <= MAX_LOGIT_BIAS for _, b in self.logit_bias),
                f"biases must be between -{MAX_LOGIT_BIAS:g} and {MAX_LOGIT_BIAS:g}",
            ),
        ]
        for field, ok, message in checks:
            if not ok:
                raise InvalidParams(field, message)
