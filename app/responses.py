"""The in-process store of Responses API results: bounded in count and age, lost on restart.

A stored response keeps what a later `previous_response_id` needs: the conversation it ended (chat
template messages, instructions excluded) and the key that created it, so that one key cannot read,
chain or delete another key's responses.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.auth import bearer_token
from app.config import Settings
from app.errors import ApiError
from app.schemas_responses import InputItemList, ListedItem, ResponseObject


@dataclass(slots=True)
class StoredResponse:
    response: ResponseObject
    conversation: list[dict[str, Any]]  # template messages: the chain's inputs and outputs, oldest first
    owner: str | None  # sha256 of the creating request's bearer key; None when keys are off
    stored_at: float  # clock() value
    input_items: list[ListedItem]  # this response's own input, oldest first

    def page(self, limit: int, order: str, after: str | None) -> InputItemList:
        """The input items in `order` (asc or desc), `limit` of them, starting after the item `after`."""
        listed = self.input_items if order == "asc" else self.input_items[::-1]
        ids = [item.id for item in listed]
        if after is not None:
            if after not in ids:
                raise ApiError(400, f"after: no input item {after!r} in this response", param="after")
            listed = listed[ids.index(after) + 1 :]
        data = listed[:limit]
        return InputItemList(
            data=data,
            has_more=len(listed) > limit,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )


class ResponseStore:
    """Responses by id, oldest first. A put beyond `max_items` drops the oldest; entries older than
    `ttl_s` are gone for every read and are dropped on the next write."""

    def __init__(self, max_items: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_items = max_items
        self.ttl_s = ttl_s
        self.clock = clock
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> ResponseStore:
        return cls(settings.responses_max_stored, settings.responses_ttl)

    def __len__(self) -> int:
        return len(self._items)

    def put(
        self,
        response: ResponseObject,
        conversation: list[dict[str, Any]],
        owner: str | None,
        input_items: list[ListedItem] | None = None,
    ) -> None:
        self._expire()
        self._items[response.id] = StoredResponse(response, conversation, owner, self.clock(), input_items or [])
        self._items.move_to_end(response.id)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def get(self, response_id: str, owner: str | None, param: str) -> StoredResponse:
        """The stored response, or a 404 naming `param` (unknown, expired, or another key's)."""
        item = self._items.get(response_id)
        if item is None or item.owner != owner or self._expired(item):
            raise ApiError(
                404,
                f"no stored response with id {response_id!r} (responses are kept in memory for "
                f"{self.ttl_s:g} s, at most {self.max_items}, and only when created with store: true)",
                param=param,
                code="response_not_found",
            )
        return item

    def delete(self, response_id: str, owner: str | None) -> None:
        self.get(response_id, owner, "response_id")
        del self._items[response_id]

    def _expired(self, item: StoredResponse) -> bool:
        return self.clock() - item.stored_at > self.ttl_s

    def _expire(self) -> None:
        while self._items:
            oldest = next(iter(self._items.values()))
            if not self._expired(oldest):
                return
            self._items.popitem(last=False)


def owner_of(headers: Mapping[str, str], settings: Settings) -> str | None:
    """Who owns what this request stores: a digest of its bearer key when API keys are on, else nobody.

    Authentication has already accepted the key by the time a handler runs; this only tells keys apart.
    """
    if not (settings.api_keys or settings.api_key_file):
        return None
    token = bearer_token(headers.get("authorization", ""))
    return None if token is None else hashlib.sha256(token.encode()).hexdigest()
