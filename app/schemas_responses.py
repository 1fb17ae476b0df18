"""Wire types of the Responses API (POST /v1/responses and the stored-response routes), shaped as the
official `openai` client's `openai.types.responses` models expect them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, field

from app.schemas import MaxTokens, OpenAIRequest

# -- request -----------------------------------------------------------------------------------------


class InputContent(Struct, kw_only=True):
    type: Annotated[str, Meta(description="input_text or output_text (images and files are not supported).")]
    text: Annotated[str | None, Meta(description="The text of the part.")] = None


class InputItem(Struct, kw_only=True):
    """One item of `input`. Only messages are supported for now; the function-call fields are declared so
    that `function_call` and `function_call_output` items decode once tools are wired."""

    type: Annotated[str, Meta(description="message (the default); other item types are refused.")] = "message"
    role: Annotated[str | None, Meta(description="user, system, developer or assistant.")] = None
    content: Annotated[str | list[InputContent] | None, Meta(description="Text, or a list of text parts.")] = None
    id: Annotated[str | None, Meta(description="The item's id (ignored on input).")] = None
    status: Annotated[str | None, Meta(description="Ignored on input.")] = None
    call_id: Annotated[str | None, Meta(description="function_call / function_call_output: the call's id.")] = None
    name: Annotated[str | None, Meta(description="function_call: the function's name.")] = None
    arguments: Annotated[str | None, Meta(description="function_call: the arguments as JSON text.")] = None
    output: Annotated[Any | None, Meta(description="function_call_output: what the function returned.")] = None


class TextConfig(Struct, kw_only=True):
    format: Annotated[
        dict[str, Any] | None, Meta(description='Only {"type": "text"} for now (json_schema is refused).')
    ] = None
    verbosity: Annotated[str | None, Meta(description="Accepted and ignored.")] = None


class ResponseRequest(OpenAIRequest, kw_only=True):
    """POST /v1/responses. The input goes through the model's chat template, as on /v1/chat/completions.
    The sampling fields (temperature, top_p and the chat route's extensions) come from `Sampling`."""

    input: Annotated[str | list[InputItem], Meta(description="A user message as text, or a list of message items.")]
    instructions: Annotated[
        str | None,
        Meta(description="A system message put first; not carried over to a response chained by previous_response_id."),
    ] = None
    previous_response_id: Annotated[
        str | None, Meta(description="A stored response whose conversation (input and output) comes before `input`.")
    ] = None
    store: Annotated[
        bool, Meta(description="Keep the response for GET /v1/responses/{id} and previous_response_id (in memory).")
    ] = True
    max_output_tokens: MaxTokens | None = None
    stream: Annotated[bool, Meta(description="Stream the response as typed Server-Sent Events.")] = False
    metadata: Annotated[dict[str, str] | None, Meta(description="Up to 16 key/value pairs, returned as is.")] = None
    # refused for now (structured outputs and tools are wired after the constrained decoder lands)
    text: Annotated[TextConfig | None, Meta(description="Output format; only text.")] = None
    tools: Annotated[list[Any] | None, Meta(description="Not supported yet: must be empty.")] = None
    tool_choice: Annotated[Any | None, Meta(description="Not supported yet: none or auto without tools.")] = None
    parallel_tool_calls: Annotated[bool | None, Meta(description="Accepted and ignored (no tools).")] = None
    background: Annotated[bool | None, Meta(description="Not supported: must be false.")] = None
    truncation: Annotated[str | None, Meta(description="Only disabled: a too-long input is a 400.")] = None


# -- response ----------------------------------------------------------------------------------------


class OutputText(Struct, kw_only=True):
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []
    type: Literal["output_text"] = "output_text"


class OutputMessage(Struct, kw_only=True):
    id: Annotated[str, Meta(description="msg_...")]
    status: Annotated[str, Meta(description="in_progress, completed or incomplete.")]
    content: list[OutputText]
    role: Literal["assistant"] = "assistant"
    type: Literal["message"] = "message"


class InputTokensDetails(Struct):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(Struct):
    reasoning_tokens: int = 0


class ResponseUsage(Struct, kw_only=True):
    input_tokens: Annotated[int, Meta(description="Tokens in the rendered prompt.")]
    output_tokens: Annotated[int, Meta(description="Tokens generated.")]
    total_tokens: Annotated[int, Meta(description="input_tokens + output_tokens.")]
    input_tokens_details: InputTokensDetails = field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = field(default_factory=OutputTokensDetails)


class IncompleteDetails(Struct):
    reason: Annotated[str | None, Meta(description="max_output_tokens when the length limit stopped it.")]


class ResponseError(Struct, kw_only=True):
    code: Annotated[str, Meta(description="server_error when the model runner failed or timed out.")]
    message: str


class ResponseObject(Struct, kw_only=True):
    """A model response, as POST /v1/responses returns it and GET /v1/responses/{id} gives it back."""

    id: Annotated[str, Meta(description="resp_...")]
    created_at: int
    model: str
    status: Annotated[str, Meta(description="in_progress, completed, incomplete, failed or cancelled.")]
    output: list[OutputMessage]
    usage: ResponseUsage | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    completed_at: int | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    store: bool = True
    metadata: dict[str, str] = {}
    text: dict[str, Any] = field(default_factory=lambda: {"format": {"type": "text"}})
    tools: list[Any] = []
    tool_choice: str = "none"
    parallel_tool_calls: bool = False
    truncation: str = "disabled"
    user: str | None = None
    background: bool = False
    object: Literal["response"] = "response"


class ItemPart(Struct, kw_only=True, omit_defaults=True):
    type: Annotated[str, Meta(description="input_text, or output_text in assistant messages.")]
    text: str
    annotations: list[Any] | None = None


class InputMessageItem(Struct, kw_only=True):
    """One item of a stored response's input, as GET /v1/responses/{id}/input_items lists it."""

    id: Annotated[str, Meta(description="msg_...")]
    role: Annotated[str, Meta(description="user, system, developer or assistant, as sent.")]
    content: list[ItemPart]
    status: str = "completed"
    type: Literal["message"] = "message"


class InputItemList(Struct, kw_only=True):
    data: list[InputMessageItem]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"


class ResponseDeleted(Struct):
    id: str
    deleted: bool = True
    object: Literal["response"] = "response"


# -- stream events (each carries `type` and `sequence_number`; `type` is also the SSE event name) -----


class ResponseEvent(Struct, kw_only=True):
    """One SSE event of a streamed response. Which fields are set depends on `type`:
    response.created / in_progress / completed / incomplete / failed carry `response`;
    response.output_item.added / done carry `output_index` and `item`; response.content_part.added / done
    carry `item_id`, `output_index`, `content_index` and `part`; response.output_text.delta carries `delta`,
    response.output_text.done `text`; error carries `code`, `message` and `param`."""

    type: str
    sequence_number: int
    response: ResponseObject | UnsetType = UNSET
    output_index: int | UnsetType = UNSET
    item: OutputMessage | UnsetType = UNSET
    item_id: str | UnsetType = UNSET
    content_index: int | UnsetType = UNSET
    part: OutputText | UnsetType = UNSET
    delta: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    logprobs: list[Any] | UnsetType = UNSET
    code: str | UnsetType | None = UNSET
    message: str | UnsetType = UNSET
    param: str | UnsetType | None = UNSET
