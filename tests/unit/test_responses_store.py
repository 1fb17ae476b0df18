"""The Responses store (count and age limits, owners) and the item conversion, on fixed values."""

from __future__ import annotations

import msgspec
import pytest

from app import response_items as items
from app.config import SettingsError, load_settings
from app.engine.stopping import FinishReason
from app.errors import ApiError
from app.responses import ResponseStore, owner_of
from app.schemas_responses import ResponseObject, ResponseRequest


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def response(rid: str) -> ResponseObject:
    return ResponseObject(id=rid, created_at=0, model="m", status="completed", output=[])


def test_the_oldest_go_beyond_the_count_and_every_one_goes_after_the_ttl():
    clock = Clock()
    store = ResponseStore(max_items=2, ttl_s=10.0, clock=clock)
    for rid in ("a", "b", "c"):
        store.put(response(rid), [], None)
        clock.now += 1
    assert len(store) == 2 and store.get("b", None, "p").response.id == "b"
    with pytest.raises(ApiError) as exc:
        store.get("a", None, "previous_response_id")
    assert (exc.value.status, exc.value.param) == (404, "previous_response_id")
    clock.now += 8.5  # b is 10.5 s old, c 9.5 s
    with pytest.raises(ApiError):
        store.get("b", None, "p")
    assert store.get("c", None, "p").response.id == "c"
    store.put(response("d"), [], None)  # a write drops what expired
    assert len(store) == 2


def test_an_owner_sees_only_its_own_and_delete_removes():
    store = ResponseStore(max_items=10, ttl_s=60.0, clock=Clock())
    store.put(response("a"), [{"role": "user", "content": "x"}], "alice")
    with pytest.raises(ApiError):
        store.get("a", "bob", "response_id")
    with pytest.raises(ApiError):
        store.delete("a", "bob")
    assert store.get("a", "alice", "response_id").conversation == [{"role": "user", "content": "x"}]
    store.delete("a", "alice")
    assert len(store) == 0


def test_owner_is_a_digest_of_the_bearer_key_only_when_keys_are_on():
    on, off = load_settings({"LLM_GATEWAY_API_KEYS": "k1"}), load_settings({})
    assert owner_of({"authorization": "Bearer k1"}, off) is None
    digest = owner_of({"authorization": "Bearer k1"}, on)
    assert digest and "k1" not in digest and digest != owner_of({"authorization": "Bearer k2"}, on)


def test_store_settings_are_checked():
    s = load_settings({"LLM_GATEWAY_RESPONSES_MAX_STORED": "5", "LLM_GATEWAY_RESPONSES_TTL": "2.5"})
    assert (s.responses_max_stored, s.responses_ttl) == (5, 2.5)
    with pytest.raises(SettingsError, match="LLM_GATEWAY_RESPONSES_TTL"):
        load_settings({"LLM_GATEWAY_RESPONSES_TTL": "0"})


def request(**fields) -> ResponseRequest:
    return msgspec.convert(fields, ResponseRequest)


def test_input_items_become_template_messages():
    data = request(
        input=[
            {"role": "developer", "content": "d"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
            },
            {  # an output item of an earlier response, sent back as input
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "c", "annotations": [], "logprobs": []}],
            },
        ]
    )
    assert items.input_messages(data.input) == [
        {"role": "system", "content": "d"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "c"},
    ]
    assert items.input_messages("hi") == [{"role": "user", "content": "hi"}]
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]
    assert items.prompt_messages("be brief", history, [{"role": "user", "content": "n"}]) == [
        {"role": "system", "content": "be brief"},
        *history,
        {"role": "user", "content": "n"},
    ]


@pytest.mark.parametrize(
    ("finish_reason", "status", "reason"),
    [
        (FinishReason.STOP, "completed", None),
        (FinishReason.LENGTH, "incomplete", "max_output_tokens"),
        (FinishReason.ABORT, "cancelled", None),
        (FinishReason.TIMEOUT, "failed", None),
        (FinishReason.ERROR, "failed", None),
        (None, "failed", None),  # a generation that never finished
    ],
)
def test_finish_sets_status_output_and_details(finish_reason, status, reason):
    r = items.finish(response("r"), "msg_1", "text", finish_reason, items.usage(5, 3, 2), error="boom")
    assert r.status == status and r.usage.total_tokens == 8 and r.usage.input_tokens_details.cached_tokens == 2
    assert (r.incomplete_details.reason if r.incomplete_details else None) == reason
    assert (r.error.message if r.error else None) == ("boom" if status == "failed" else None)
    assert items.output_messages(r.output) == [{"role": "assistant", "content": "text"}]
    assert r.output[0].status == ("completed" if status == "completed" else "incomplete")


def test_every_finish_reason_has_a_status():
    assert set(items.FINISHED) == set(FinishReason)


def test_input_items_page_in_either_order_after_an_id():
    listed = items.listed_items(request(input=[{"role": "user", "content": t} for t in "abc"]).input)
    store = ResponseStore(max_items=10, ttl_s=60.0, clock=Clock())
    store.put(response("r"), [], None, listed)
    stored = store.get("r", None, "response_id")
    page = stored.page(limit=2, order="desc", after=None)
    assert [i.content[0].text for i in page.data] == ["c", "b"] and page.has_more and page.last_id == listed[1].id
    rest = stored.page(limit=2, order="desc", after=page.last_id)
    assert [i.content[0].text for i in rest.data] == ["a"] and not rest.has_more
    with pytest.raises(ApiError) as exc:
        stored.page(limit=2, order="asc", after="msg_unknown")
    assert exc.value.param == "after"
