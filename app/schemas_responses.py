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
    """One item of `input`: a message, a function_call the model made, or the function_call_output answering it."""

    type: Annotated[
        str, Meta(description="message (the default), function_call or function_call_output; others are refused.")
    ] = "message"
    role: Annotated[str | None, Meta(description="user, system, developer or assistant.")] = None
    content: Annotated[str | list[InputContent] | None, Meta(description="Text, or a list of text parts.")] = None
    id: Annotated[str | None, Meta(description="The item's id (ignored on input).")] = None
    status: Annotated[str | None, Meta(description="Ignored on input.")] = None
    call_id: Annotated[str | None, Meta(description="function_call / function_call_output: the call's id.")] = None
    name: Annotated[str | None, Meta(description="function_call: the function's name.")] = None
    arguments: Annotated[str | None, Meta(description="function_call: the arguments as JSON text.")] = None
    output: Annotated[Any | None, Meta(description="function_call_output: what the function returned.")] = None


class TextFormat(Struct, kw_only=True, omit_defaults=True):
    type: Annotated[Literal["text", "json_object", "json_schema"], Meta(description="The kind of answer.")]
    name: Annotated[str | None, Meta(description="json_schema: a name for the schema.")] = None
    schema: Annotated[dict[str, Any] | None, Meta(description="json_schema: the schema the answer must satisfy.")] = (
        None
    )
    strict: Annotated[bool | None, Meta(description="Accepted; the schema is always enforced.")] = None
    description: Annotated[str | None, Meta(description="What the answer is for (not shown to the model).")] = None


class TextConfig(Struct, kw_only=True):
    format: Annotated[
        TextFormat | None,
        Meta(description="text (default), json_object (any JSON object) or json_schema (JSON valid against it)."),
    ] = None
    verbosity: Annotated[str | None, Meta(description="Accepted and ignored.")] = None


class FunctionTool(Struct, kw_only=True, omit_defaults=True):
    """A function the model may call, in the Responses API's flat shape."""

    type: Annotated[str, Meta(description="Only function tools.")]
    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$", description="The function's name.")] | None = None
    description: Annotated[str | None, Meta(description="What it does; shown to the model.")] = None
    parameters: Annotated[
        dict[str, Any] | None, Meta(description="JSON schema of the arguments; calls are checked against it.")
    ] = None
    strict: Annotated[bool | None, Meta(description="Accepted; arguments are always enforced.")] = None


class ToolChoiceFunction(Struct, kw_only=True):
    type: Annotated[Literal["function"], Meta(description="Always function.")]
    name: Annotated[str, Meta(description="The function that must be called.")]


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
    text: Annotated[TextConfig | None, Meta(description="Output format: text, json_object or json_schema.")] = None
    tools: Annotated[list[FunctionTool] | None, Meta(description="Functions the model may call.")] = None
    tool_choice: Annotated[
        Literal["none", "auto", "required"] | ToolChoiceFunction | None,
        Meta(description="none, auto (default with tools), required, or one named function."),
    ] = None
    parallel_tool_calls: Annotated[bool, Meta(description="Allow several calls in one answer.")] = True
    background: Annotated[bool | None, Meta(description="Not supported: must be false.")] = None
    truncation: Annotated[str | None, Meta(description="Only disabled: a too-long input is a 400.")] = None


# -- response ----------------------------------------------------------------------------------------


class OutputText(Struct, kw_only=True):
    text: Annotated[str, Meta(description="The generated text.")]
    annotations: Annotated[list[Any], Meta(description="Always empty (no citations).")] = []
    logprobs: Annotated[list[Any], Meta(description="Always empty.")] = []
    type: Annotated[Literal["output_text"], Meta(description="Always output_text.")] = "output_text"


class OutputMessage(Struct, kw_only=True, tag_field="type", tag="message"):
    id: Annotated[str, Meta(description="msg_...")]
    status: Annotated[str, Meta(description="in_progress, completed or incomplete.")]
    content: Annotated[list[OutputText], Meta(description="The text part of the answer.")]
    role: Annotated[Literal["assistant"], Meta(description="Always assistant.")] = "assistant"


class FunctionCallItem(Struct, kw_only=True, tag_field="type", tag="function_call"):
    """A call the model made (output), or gave back in `input` for the next turn."""

    id: Annotated[str, Meta(description="fc_...")]
    call_id: Annotated[str, Meta(description="Answer it with a function_call_output item carrying this call_id.")]
    name: Annotated[str, Meta(description="The function called.")]
    arguments: Annotated[str, Meta(description="Its arguments, as JSON text.")]
    status: Annotated[str, Meta(description="in_progress, completed or incomplete.")]


class FunctionCallOutputItem(Struct, kw_only=True, tag_field="type", tag="function_call_output"):
    id: Annotated[str, Meta(description="fco_... (or the id it was sent with).")]
    call_id: Annotated[str, Meta(description="The call this output answers.")]
    output: Annotated[str, Meta(description="What the function returned.")]
    status: Annotated[str, Meta(description="Always completed.")] = "completed"


OutputItem = OutputMessage | FunctionCallItem


class InputTokensDetails(Struct):
    cached_tokens: Annotated[int, Meta(description="Input tokens whose KV came from the prefix cache.")] = 0
    cache_write_tokens: Annotated[int, Meta(description="Always 0.")] = 0


class OutputTokensDetails(Struct):
    reasoning_tokens: Annotated[int, Meta(description="Always 0 (no reasoning model).")] = 0


class ResponseUsage(Struct, kw_only=True):
    input_tokens: Annotated[int, Meta(description="Tokens in the rendered prompt.")]
    output_tokens: Annotated[int, Meta(description="Tokens generated.")]
    total_tokens: Annotated[int, Meta(description="input_tokens + output_tokens.")]
    input_tokens_details: Annotated[
        InputTokensDetails, Meta(description="cached_tokens: prompt tokens served from the prefix cache.")
    ] = field(default_factory=InputTokensDetails)
    output_tokens_details: Annotated[OutputTokensDetails, Meta(description="reasoning_tokens (always 0).")] = field(
        default_factory=OutputTokensDetails
    )


class IncompleteDetails(Struct):
    reason: Annotated[str | None, Meta(description="max_output_tokens when the length limit stopped it.")]


class ResponseError(Struct, kw_only=True):
    code: Annotated[str, Meta(description="server_error when the model runner failed or timed out.")]
    message: Annotated[str, Meta(description="What went wrong.")]


class ResponseObject(Struct, kw_only=True):
    """A model response, as POST /v1/responses returns it and GET /v1/responses/{id} gives it back."""

    id: Annotated[str, Meta(description="resp_...")]
    created_at: Annotated[int, Meta(description="Unix time the response was created.")]
    model: Annotated[str, Meta(description="The model that answered.")]
    status: Annotated[str, Meta(description="in_progress, completed, incomplete, failed or cancelled.")]
    output: Annotated[list[OutputItem], Meta(description="The answer: a message, or function_call items.")]
    usage: Annotated[ResponseUsage | None, Meta(description="Token counts.")] = None
    error: Annotated[ResponseError | None, Meta(description="Set when status is failed.")] = None
    incomplete_details: Annotated[
        IncompleteDetails | None, Meta(description="Set when status is incomplete (max_output_tokens).")
    ] = None
    completed_at: Annotated[int | None, Meta(description="Unix time the answer completed.")] = None
    instructions: Annotated[str | None, Meta(description="The instructions sent with this request.")] = None
    previous_response_id: Annotated[str | None, Meta(description="The response this one continues.")] = None
    max_output_tokens: Annotated[int | None, Meta(description="As requested.")] = None
    temperature: Annotated[float | None, Meta(description="As requested.")] = None
    top_p: Annotated[float | None, Meta(description="As requested.")] = None
    store: Annotated[bool, Meta(description="Whether GET /v1/responses/{id} can fetch it.")] = True
    metadata: Annotated[dict[str, str], Meta(description="As sent.")] = {}
    text: Annotated[dict[str, Any], Meta(description="The output format used.")] = field(
        default_factory=lambda: {"format": {"type": "text"}}
    )
    tools: Annotated[list[Any], Meta(description="The tools offered.")] = []
    tool_choice: Annotated[str | dict[str, Any], Meta(description="none, auto, required or the named function.")] = (
        "none"
    )
    parallel_tool_calls: Annotated[bool, Meta(description="As requested.")] = False
    truncation: Annotated[str, Meta(description="Always disabled.")] = "disabled"
    user: Annotated[str | None, Meta(description="As sent.")] = None
    background: Annotated[bool, Meta(description="Always false.")] = False
    object: Annotated[Literal["response"], Meta(description="Always response.")] = "response"


class ItemPart(Struct, kw_only=True, omit_defaults=True):
    type: Annotated[str, Meta(description="input_text, or output_text in assistant messages.")]
    text: Annotated[str, Meta(description="The part's text.")]
    annotations: Annotated[list[Any] | None, Meta(description="Always empty on output_text parts.")] = None


class InputMessageItem(Struct, kw_only=True, tag_field="type", tag="message"):
    """One message of a stored response's input, as GET /v1/responses/{id}/input_items lists it."""

    id: Annotated[str, Meta(description="msg_...")]
    role: Annotated[str, Meta(description="user, system, developer or assistant, as sent.")]
    content: Annotated[list[ItemPart], Meta(description="The message's text parts.")]
    status: Annotated[str, Meta(description="Always completed.")] = "completed"


ListedItem = InputMessageItem | FunctionCallItem | FunctionCallOutputItem


class InputItemList(Struct, kw_only=True):
    data: Annotated[list[ListedItem], Meta(description="The input items, in the requested order.")]
    has_more: Annotated[bool, Meta(description="More items after last_id.")]
    first_id: Annotated[str | None, Meta(description="The first item's id.")]
    last_id: Annotated[str | None, Meta(description="The last item's id (pass as after).")]
    object: Annotated[Literal["list"], Meta(description="Always list.")] = "list"


class ResponseDeleted(Struct):
    id: Annotated[str, Meta(description="The deleted response.")]
    deleted: Annotated[bool, Meta(description="Always true.")] = True
    object: Annotated[Literal["response"], Meta(description="Always response.")] = "response"


# -- stream events (each carries `type` and `sequence_number`; `type` is also the SSE event name) -----


class ResponseEvent(Struct, kw_only=True):
    """One SSE event of a streamed response. Which fields are set depends on `type`:
    response.created / in_progress / completed / incomplete / failed carry `response`;
    response.output_item.added / done carry `output_index` and `item`; response.content_part.added / done
    carry `item_id`, `output_index`, `content_index` and `part`; response.output_text.delta carries `delta`,
    response.output_text.done `text`; response.function_call_arguments.delta / done carry `item_id`,
    `output_index` and `delta` / `arguments`; error carries `code`, `message` and `param`."""

    type: str
    sequence_number: int
    response: ResponseObject | UnsetType = UNSET
    output_index: int | UnsetType = UNSET
    item: OutputItem | UnsetType = UNSET
    item_id: str | UnsetType = UNSET
    content_index: int | UnsetType = UNSET
    part: OutputText | UnsetType = UNSET
    delta: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET
    logprobs: list[Any] | UnsetType = UNSET
    code: str | UnsetType | None = UNSET
    message: str | UnsetType = UNSET
    param: str | UnsetType | None = UNSET
