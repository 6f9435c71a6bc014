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

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, TypedDict

if TYPE_CHECKING:
    from backend.config import Settings

EndReason = Literal["cancelled", "abandoned", "error", "shutdown"]


class HubBounds(TypedDict):
    """What every hub is built with, whatever its kind."""

    keepalive_s: float
    stream_ttl_s: float
    resume_grace_s: float
    max_streams: int
    max_buffered_bytes: int
    flush_window_s: float


def hub_bounds(settings: Settings) -> HubBounds:
    return HubBounds(
        keepalive_s=settings.keepalive_s,
        stream_ttl_s=settings.stream_ttl_s,
        resume_grace_s=settings.resume_grace_s,
        max_streams=settings.max_streams,
        max_buffered_bytes=settings.max_buffered_bytes,
        flush_window_s=settings.flush_window_ms / 1000,
    )


# (event name, payload): a whole event; "" = no ``event:`` field.
Event = tuple[str, str]


class Template(NamedTuple):
    """A payload shape many events of one stream share: such an event's payload is
    ``prefix + part + suffix``, and only its ``part`` varies (e.g. a chunk's text)."""

    event: str
    prefix: str
    suffix: str


class Fragment(NamedTuple):
    """An event given by its variable part and the index of its template in the
    generation's ``templates``. A hub may store it compactly (the part only) as
    long as every reader, on any worker, gets the byte-identical payload."""

    template: int
    part: str


# What a generation yields: whole events, or fragments of a template.
Produced = Event | Fragment


def expand(templates: Sequence[Template], item: Produced) -> Event:
    """The whole event for a produced item."""
    if isinstance(item, Fragment):
        template = templates[item.template]
        return template.event, template.prefix + item.part + template.suffix
    return item


class StreamEvent(NamedTuple):
    """One numbered event (a tuple: built per event on the hot path)."""

    seq: int
    event: str
    data: str


class Generation(Protocol):
    """What a producer gives the hub: its events, and how to end early."""

    @property
    def templates(self) -> Sequence[Template]:
        """Payload templates the ``Fragment``s refer to. Append-only: it may grow
        while events are produced, and a fragment only refers to a template
        added before it was yielded (else the hub ends the stream with the
        generation's "error" closing events). Each stream keeps its templates
        once, with the stream (in Redis too)."""
        ...

    def events(self) -> AsyncGenerator[Produced, None]:
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

    @classmethod
    def for_id(cls, stream_id: str) -> StreamNotFound:
        # A foreign stream looks exactly like a missing one: ids are not an oracle.
        return cls(f"No stream {stream_id!r} (unknown, expired, or not yours).")


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

    # Gauges for /metrics (this worker's view).
    @property
    def live_streams(self) -> int:
        """Generations running in this worker."""
        ...

    @property
    def stored_streams(self) -> int:
        """Streams kept for resume (this worker's, or the deployment's where shared)."""
        ...

    @property
    def buffered_bytes(self) -> int:
        """Bytes of events kept for resume."""
        ...

    async def start(
        self,
        stream_id: str,
        owner: str | None,
        generation: Generation,
        *,
        background: bool = False,
    ) -> None:
        """Register the stream and launch its generation task. Raises ``HubFull``.

        A ``background`` generation runs to its end with or without readers
        (never abandoned); it stops only on cancel, delete or shutdown."""
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
        after the terminal event. ``after`` is never clamped: a reader at or
        beyond the final event gets no batch at all (the response turns that
        into a 204), and a reader ahead of a live stream waits for seq
        ``after + 1`` and never sees an id at or below ``after``.
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

    async def drain(self) -> None:
        """On shutdown: refuse new streams and end every live generation (reason
        ``shutdown``), while still serving readers until they have the closing
        events."""
        ...

    async def aclose(self) -> None:
        """Stop every generation (reason ``shutdown``) and release resources."""
        ...
