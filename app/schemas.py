"""Wire types: msgspec Structs for every request and response body. Every field is documented here,
and Litestar turns these descriptions into the OpenAPI schema behind /docs and /redoc."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from app.engine.params import LIMITS
from app.engine.stopping import FinishReason

# -- shared field types ------------------------------------------------------------------------------


def _limited(name: str, description: str) -> Meta:
    """A field's Meta with its range from the engine's one table of limits."""
    return Meta(**LIMITS[name].bounds(), description=description)


Temperature = Annotated[float, _limited("temperature", "Sampling temperature; 0 is greedy decoding.")]
TopP = Annotated[
    float,
    _limited("top_p", "Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."),
]
TopK = Annotated[int, _limited("top_k", "Keep only the k most likely tokens; 0 turns it off.")]
MinP = Annotated[float, _limited("min_p", "Drop tokens less likely than min_p times the best one.")]
RepetitionPenalty = Annotated[
    float,
    _limited("repetition_penalty", "HF-style penalty on tokens already in the prompt or output; 1 is off."),
]
Seed = Annotated[
    int,
    _limited(
        "seed",
        "Seed of this request's own random generator: same seed and parameters give the same text (on int8 "
        "variants, a prefix-cache hit can change it: send a distinct cache_salt for bit-reproducible runs).",
    ),
]
Stop = Annotated[
    str | list[str],
    Meta(
        description="Up to 16 strings that end generation; not included in the output. Matched across token boundaries."
    ),
]
MaxTokens = Annotated[int, _limited("max_new_tokens", "Maximum number of tokens to generate.")]
MinTokens = Annotated[int, _limited("min_new_tokens", "Generate at least this many tokens before any stop.")]
TokenIds = Annotated[list[int], Meta(description="Token ids that end generation.")]
CacheSalt = Annotated[
    str,
    Meta(
        max_length=256,
        description="Prefix-cache namespace: only requests with the same salt reuse each other's cached "
        "prompt KV (without it, every client of this model shares cached prefixes).",
    ),
]


class PromptTokensDetails(Struct):
    cached_tokens: Annotated[int, Meta(description="Prompt tokens whose KV came from the prefix cache.")] = 0


class Usage(Struct):
    prompt_tokens: Annotated[int, Meta(description="Tokens in the prompt.")]
    completion_tokens: Annotated[int, Meta(description="Tokens generated.")]
    total_tokens: Annotated[int, Meta(description="prompt_tokens + completion_tokens.")]
    prompt_tokens_details: Annotated[PromptTokensDetails, Meta(description="Where the prompt tokens came from.")] = (
        msgspec.field(default_factory=PromptTokensDetails)
    )


class ErrorDetail(Struct):
    message: Annotated[str, Meta(description="What went wrong and how to fix it.")]
    type: Annotated[
        str,
        Meta(
            description="invalid_request_error, authentication_error, rate_limit_error, "
            "server_error, service_unavailable_error or not_found_error."
        ),
    ]
    param: Annotated[str | None, Meta(description="The request field at fault, if any.")] = None
    code: Annotated[str | None, Meta(description="A machine-readable code, e.g. context_length_exceeded.")] = None


class ErrorBody(Struct):
    """Every error, on every route: the OpenAI error shape."""

    error: Annotated[ErrorDetail, Meta(description="What went wrong.")]


class Sampling(Struct, kw_only=True):
    """The sampling and stopping fields every generation route shares (read by `generation.sampling_params`),
    and the prefix-cache namespace (read by `generation.start`)."""

    temperature: Temperature = 0.0
    top_p: TopP = 1.0
    top_k: TopK = 0
    min_p: MinP = 0.0
    repetition_penalty: RepetitionPenalty = 1.0
    presence_penalty: Annotated[
        float, _limited("presence_penalty", "OpenAI-style presence penalty: penalise tokens that already appeared.")
    ] = 0.0
    frequency_penalty: Annotated[
        float,
        _limited("frequency_penalty", "OpenAI-style frequency penalty: penalise tokens by how often they appeared."),
    ] = 0.0
    stop: Stop | None = None
    stop_token_ids: TokenIds | None = None
    ignore_eos: Annotated[bool, Meta(description="Keep generating past the end-of-sequence token.")] = False
    seed: Seed | None = None
    cache_salt: CacheSalt | None = None


# -- native route ------------------------------------------------------------------------------------


class GenerateRequest(Sampling, kw_only=True):
    """POST /v1/generate: plain text in, text out (TGI-style). Greedy unless temperature > 0."""

    prompt: Annotated[str, Meta(description="The text to continue. Sent to the model as is (no chat template).")]
    max_new_tokens: MaxTokens | None = None
    max_length: Annotated[int, Meta(ge=1, description="Older name of max_new_tokens.")] | None = None
    min_new_tokens: MinTokens = 0
    json_schema: Annotated[
        dict[str, Any] | None, Meta(description="Constrain the output to JSON valid against this JSON schema.")
    ] = None
    regex: Annotated[str | None, Meta(description="Constrain the output to match this regular expression.")] = None
    grammar: Annotated[
        str | None, Meta(description="Constrain the output to this Lark grammar (llguidance dialect, `start` rule).")
    ] = None
    stream: Annotated[
        bool,
        Meta(
            description="Answer with Server-Sent Events: one event per text piece, then a "
            "final event with finish_reason and usage."
        ),
    ] = False


class Timings(Struct):
    queue_ms: Annotated[float, Meta(description="Time waiting for a batch slot.")]
    time_to_first_token_ms: Annotated[float, Meta(description="Arrival to first token.")]
    total_ms: Annotated[float, Meta(description="Arrival to last token.")]
    tokens_per_second: Annotated[float, Meta(description="Generated tokens over decode time (after the first).")]


class GenerateResponse(Struct):
    generated_text: Annotated[str, Meta(description="The generated text (stop strings removed).")]
    finish_reason: Annotated[FinishReason, Meta(description="stop, length, timeout, abort or error.")]
    usage: Usage
    timings: Timings


class GenerateChunk(Struct, omit_defaults=True):
    """One SSE event of /v1/generate with stream: true."""

    text: Annotated[str, Meta(description="The new text piece (whole UTF-8 characters).")]
    finish_reason: Annotated[FinishReason | None, Meta(description="Set on the final event only.")] = None
    generated_text: Annotated[str | None, Meta(description="The whole text, on the final event only.")] = None
    usage: Usage | None = None
    timings: Timings | None = None


# -- OpenAI-compatible routes --------------------------------------------------------------------------


class StreamOptions(Struct, kw_only=True):
    include_usage: Annotated[bool, Meta(description="Send a last chunk with usage and no choices.")] = False


class JsonSchemaFormat(Struct, kw_only=True):
    name: Annotated[str, Meta(description="A name for the schema.")] = "response"
    schema: Annotated[dict[str, Any] | None, Meta(description="The JSON schema the answer must satisfy.")] = None
    strict: Annotated[bool | None, Meta(description="Accepted; the schema is always enforced.")] = None
    description: Annotated[str | None, Meta(description="What the answer is for (not shown to the model).")] = None


class ResponseFormat(Struct, kw_only=True):
    type: Annotated[Literal["text", "json_object", "json_schema"], Meta(description="The kind of answer.")]
    json_schema: Annotated[JsonSchemaFormat | None, Meta(description="With type json_schema: the schema.")] = None


class FunctionDefinition(Struct, kw_only=True):
    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$", description="The function's name.")]
    description: Annotated[str | None, Meta(description="What it does; shown to the model.")] = None
    parameters: Annotated[
        dict[str, Any] | None,
        Meta(description="JSON schema of the arguments (an object); calls are checked against it."),
    ] = None
    strict: Annotated[bool | None, Meta(description="Accepted; arguments are always enforced.")] = None


class Tool(Struct, kw_only=True):
    type: Annotated[Literal["function"], Meta(description="Only function tools.")] = "function"
    function: Annotated[
        FunctionDefinition, Meta(description="The function: name, description and a JSON schema of its parameters.")
    ]


class FunctionName(Struct, kw_only=True):
    name: Annotated[str, Meta(description="The function that must be called.")]


class NamedToolChoice(Struct, kw_only=True):
    type: Annotated[Literal["function"], Meta(description="Always function.")] = "function"
    function: Annotated[FunctionName, Meta(description="Which function.")]


class FunctionCall(Struct, kw_only=True):
    name: Annotated[str, Meta(description="The function called.")]
    arguments: Annotated[str, Meta(description="Its arguments, as JSON text.")]


class ToolCall(Struct, kw_only=True):
    id: Annotated[str, Meta(description="Answer the call with a tool message carrying this tool_call_id.")]
    function: Annotated[FunctionCall, Meta(description="The function called and its JSON arguments.")]
    type: Annotated[Literal["function"], Meta(description="Always function.")] = "function"


class FunctionCallDelta(Struct, kw_only=True, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(Struct, kw_only=True, omit_defaults=True):
    index: Annotated[int, Meta(description="Which call of the message this piece belongs to.")]
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class OpenAIRequest(Sampling, kw_only=True):
    """What every OpenAI request (completions, chat, responses) adds to the shared sampling fields."""

    model: Annotated[str | None, Meta(description="The served model id (see GET /v1/models).")] = None
    temperature: Temperature = 1.0  # OpenAI's default; the native route's is greedy
    user: Annotated[str | None, Meta(description="Accepted and ignored.")] = None


class _OpenAISampling(OpenAIRequest, kw_only=True):
    max_tokens: MaxTokens | None = None
    n: Annotated[int, Meta(ge=1, le=16, description="Number of choices to generate.")] = 1
    stream: Annotated[bool, Meta(description="Stream chunks as Server-Sent Events, ending with data: [DONE].")] = False
    stream_options: Annotated[StreamOptions | None, Meta(description="Streaming options (include_usage).")] = None
    # extensions, as in vLLM
    min_tokens: MinTokens = 0
    logit_bias: Annotated[
        dict[str, float] | None,
        Meta(description="Token id (as a string) -> bias in [-100, 100] added to its logit before sampling."),
    ] = None
    response_format: Annotated[
        ResponseFormat | None,
        Meta(description="text (default), json_object (any JSON object) or json_schema (JSON valid against it)."),
    ] = None


class CompletionRequest(_OpenAISampling, kw_only=True):
    """POST /v1/completions (OpenAI legacy completions)."""

    prompt: Annotated[
        str | list[Any],
        Meta(
            description="Text, a list of token ids, or a list holding one of those "
            "(several prompts in one request are not supported)."
        ),
    ]
    logprobs: (
        Annotated[
            int,
            _limited("top_logprobs", "Return the log-probabilities of the chosen token and this many alternatives."),
        ]
        | None
    ) = None
    echo: Annotated[bool, Meta(description="Not supported: must be false.")] = False
    best_of: Annotated[int | None, Meta(description="Not supported: must be empty or equal to n.")] = None
    suffix: Annotated[str | None, Meta(description="Not supported: must be empty.")] = None


class ContentPart(Struct, kw_only=True):
    type: Annotated[str, Meta(description="Only text parts are supported.")]
    text: Annotated[str | None, Meta(description="The text of a text part.")] = None


class ChatMessage(Struct, kw_only=True):
    role: Annotated[str, Meta(description="system, user, assistant (or any role the chat template knows).")]
    content: Annotated[str | list[ContentPart] | None, Meta(description="Text, or a list of text parts.")] = None
    name: Annotated[str | None, Meta(description="Accepted and ignored.")] = None
    tool_calls: Annotated[list[ToolCall] | None, Meta(description="The calls an assistant message made.")] = None
    tool_call_id: Annotated[str | None, Meta(description="In a tool message: the call it answers.")] = None


class ChatCompletionRequest(_OpenAISampling, kw_only=True):
    """POST /v1/chat/completions. The messages go through the model's own chat template."""

    messages: Annotated[list[ChatMessage], Meta(min_length=1, description="The conversation so far.")]
    max_completion_tokens: Annotated[int, Meta(ge=1, description="Newer name of max_tokens.")] | None = None
    logprobs: Annotated[bool, Meta(description="Return the log-probability of each chosen token.")] = False
    top_logprobs: Annotated[int, _limited("top_logprobs", "Alternatives per token, with logprobs.")] | None = None
    tools: Annotated[list[Tool] | None, Meta(description="Functions the model may call.")] = None
    tool_choice: Annotated[
        Literal["none", "auto", "required"] | NamedToolChoice | None,
        Meta(description="none, auto (default with tools), required, or one named function."),
    ] = None
    parallel_tool_calls: Annotated[bool, Meta(description="Allow several calls in one answer.")] = True


class TopLogprob(Struct):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatTokenLogprob(Struct):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChatLogprobs(Struct):
    content: list[ChatTokenLogprob] | None


class CompletionLogprobs(Struct):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(Struct):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None


class Completion(Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None
    system_fingerprint: str
    object: Literal["text_completion"] = "text_completion"


class AssistantMessage(Struct):
    role: str
    content: str | None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(Struct):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason | None


class ChatCompletion(Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str
    object: Literal["chat.completion"] = "chat.completion"


class ChatDelta(Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(Struct):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason | None


class ChatCompletionChunk(Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    system_fingerprint: str
    usage: Usage | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


# -- system routes -----------------------------------------------------------------------------------


class ModelCard(Struct):
    id: Annotated[str, Meta(description="The model id to send as `model`.")]
    created: Annotated[int, Meta(description="Unix time the server started serving it.")]
    owned_by: Annotated[str, Meta(description="Always llm-gateway.")]
    max_model_len: Annotated[int, Meta(description="Context per sequence: prompt plus generated tokens.")]
    object: Annotated[Literal["model"], Meta(description="Always model.")] = "model"


class ModelList(Struct):
    data: Annotated[list[ModelCard], Meta(description="The served model (one).")]
    object: Annotated[Literal["list"], Meta(description="Always list.")] = "list"


class TokenizeRequest(Struct, kw_only=True):
    prompt: Annotated[str | None, Meta(description="Text to tokenize (give this or messages).")] = None
    messages: Annotated[
        list[ChatMessage] | None, Meta(description="A conversation, rendered with the chat template first.")
    ] = None
    add_special_tokens: Annotated[
        bool | None, Meta(description="Add BOS as the model does for plain prompts (default: the model's own rule).")
    ] = None


class TokenizeResponse(Struct):
    tokens: Annotated[list[int], Meta(description="The token ids.")]
    count: Annotated[int, Meta(description="How many.")]
    max_model_len: Annotated[int, Meta(description="Context per sequence, for comparison.")]


class DetokenizeRequest(Struct, kw_only=True):
    tokens: Annotated[list[int], Meta(description="Token ids to turn back into text.")]


class DetokenizeResponse(Struct):
    prompt: Annotated[str, Meta(description="The text, special tokens included.")]


class Health(Struct):
    status: Annotated[str, Meta(description="ok, or loading / warming_up / draining / failed for readiness.")]
    detail: Annotated[str | None, Meta(description="Why the model is not ready, if it failed to load.")] = None


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def error_responses(*codes: int) -> dict[int, Any]:
    """OpenAPI entries for the error answers of a route, all in the OpenAI error shape."""
    from litestar.openapi.datastructures import ResponseSpec

    meaning = {
        400: "Invalid parameters (`param` names the field) or a prompt that does not fit the context.",
        401: "Missing or invalid API key.",
        404: "Another model was asked for.",
        413: "The request body is larger than the server accepts.",
        429: "The queue is full; retry after `Retry-After` seconds.",
        500: "The model runner failed (non-streamed requests).",
        503: "The model is not ready yet, failed to load, or the server is shutting down.",
    }
    return {code: ResponseSpec(data_container=ErrorBody, description=meaning[code]) for code in codes}
