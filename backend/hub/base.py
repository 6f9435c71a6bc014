"""The hub protocol, shared by the in-process and the Redis implementation.

A hub owns each generation as a task, independent of any HTTP connection.
Producers hand it an async iterator of events, each an (event name, payload)
pair: the name is the SSE ``event`` field ("" for none, as in Chat
Completions), the payload already JSON text. The hub numbers them 1, 2, 3 …
(the SSE ``id``), stores them, and lets any number of subscribers read from
any position; it never looks inside a payload. Only the encoder turns events
into SSE bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, NamedTuple, Protocol

EndReason = Literal["cancelled", "abandoned", "error", "shutdown"]


# (event name, payload): what a generation yields; "" = no ``event:`` field.
Event = tuple[str, str]


class StreamEvent(NamedTuple):
    """One numbered event (a tuple: built per event on the hot path)."""

    seq: int
    event: str
    data: str


class Generation(Protocol):
    """What a producer gives the hub: its events, and how to end early."""

    def events(self) -> AsyncIterator[Event]:
        """Events in order; the last one is the dialect's terminal event."""
        ...

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        """Events that end the stream when the hub stops it early (e.g. final chunk, [DONE])."""
        ...


class HubError(Exception):
    """Base of hub errors; each maps to one HTTP status."""

    status_code = 500
    error_type = "hub_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamNotFound(HubError):
    status_code = 404
    error_type = "not_found"


class HubFull(HubError):
    status_code = 503
    error_type = "overloaded"


class HubUnavailable(HubError):
    status_code = 503
    error_type = "hub_unavailable"


class Subscription(Protocol):
    """An open reader of one stream. Iterate batches; ``aclose`` detaches."""

    def __aiter__(self) -> AsyncIterator[Sequence[StreamEvent]]: ...

    async def aclose(self) -> None: ...


class StreamHub(Protocol):
    @property
    def kind(self) -> str: ...

    async def start(self, stream_id: str, owner: str | None, generation: Generation) -> None:
        """Register the stream and launch its generation task. Raises ``HubFull``."""
        ...

    async def subscribe(
        self,
        stream_id: str,
        after: int,
        owner: str | None,
    ) -> Subscription:
        """Attach a reader that gets every event with seq > ``after``.

        Raises ``StreamNotFound`` for an unknown, expired or foreign stream.
        Iterating yields non-empty batches of events (all that are ready, so a
        fast producer costs one write per batch, not per event) and empty
        batches when ``keepalive_s`` passes without events. Iteration ends
        after the terminal event.
        """
        ...

    async def cancel(self, stream_id: str, owner: str | None) -> bool:
        """Stop the generation now; subscribers receive the closing events.

        True if this stopped a live generation, False if it had already finished.
        """
        ...

    async def delete(self, stream_id: str, owner: str | None) -> None:
        """Stop the generation if live and forget the stream: resume answers 404 after."""
        ...

    async def readiness(self) -> str | None:
        """None when the hub can serve streams, else why not (for ``/readyz``)."""
        ...

    async def aclose(self) -> None:
        """Stop every generation (reason ``shutdown``) and release resources."""
        ...
