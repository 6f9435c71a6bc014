"""What a Responses store keeps, and the protocol both stores implement.

A record is the Response object as last recorded (the generation records
each snapshot: created, in progress, each finished item, the end) and the
conversation up to it: the input items of every earlier response in its
``previous_response_id`` chain and its own, so continuing a conversation is
one read. Records belong to the API key that created them: another key's
read, delete or continuation finds nothing (404), as for streams. A record
lives ``ttl_s`` from its last write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from backend.errors import APIError

JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: JSONObject
    context: list[JSONObject]  # the conversation's input items, earlier responses' included


def store_unavailable(detail: str) -> APIError:
    return APIError(
        503,
        f"The response store is unavailable ({detail}); retry shortly.",
        error_type="server_error",
        code="store_unavailable",
        headers={"Retry-After": "1"},
    )


class ResponseStore(Protocol):
    @property
    def kind(self) -> str: ...

    async def create(
        self, response_id: str, owner: str | None, response: JSONObject, context: list[JSONObject]
    ) -> None:
        """Store a new record (replacing none: ids are random)."""
        ...

    async def update(self, response_id: str, response: JSONObject) -> None:
        """Replace the Response object of an existing record; nothing if it is gone
        (deleted or expired), so a late write never brings a record back."""
        ...

    async def load(self, response_id: str, owner: str | None) -> StoredResponse | None:
        """The record, or None for an unknown, expired or foreign id."""
        ...

    async def delete(self, response_id: str, owner: str | None) -> bool:
        """Forget the record; False if there was none (or it is not the caller's)."""
        ...

    async def aclose(self) -> None: ...
