"""A relayed response: an upstream's own ``response.*`` events on ssechat's hub.

When the engine's upstream speaks the Responses API (``ResponsesUpstream``),
``POST /v1/responses`` is relayed: the upstream's events go out unchanged —
their types and fields, output items and their ids, tool calls, reasoning,
usage, and anything ssechat does not model — except for what is ssechat's:

- ``sequence_number``: ssechat numbers the events it sends from 0, without
  gaps, so the SSE ``id`` is still ``sequence_number + 1`` and resume works as
  for any response;
- the Response object inside ``response.*`` events: its ``id`` is ssechat's
  (the response lives on ssechat's hub and in its store, owned by the caller's
  key: retrieve, resume, cancel and delete answer for that id; the upstream's
  id is never exposed), and ``background``, ``store`` and
  ``previous_response_id`` say what the client asked (the upstream ran it in
  the foreground, with the whole conversation as its input); a background
  response's ``response.created`` says ``queued``, as the object answered at
  once did.

What the generation adds, numbered after the upstream's events: when the hub
stops it (cancel, every reader gone, shutdown), each unfinished item's
``response.output_item.done`` (``incomplete``, with what it had) and
``response.incomplete`` with status ``cancelled``; when the upstream fails
(its HTTP status, the connection, a stream that ends before its terminal
event), an ``error`` event and ``response.failed`` with the partial output;
when the upstream streams more delta events than the token limit allows (it
ignores ``max_output_tokens``), ``response.incomplete`` (``max_output_tokens``).
The store gets the same snapshots as a rendered response: in progress, each
finished item, and the final object before the terminal event is yielded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from backend.engines.base import EngineError
from backend.engines.text import WholeChars, join_surrogates
from backend.generation.payload import dumps
from backend.generation.proxied_items import Body, OutputItems
from backend.generation.response_object import (
    Ending,
    Record,
    RecordedResponse,
    Status,
    error_event_body,
    snapshot_of,
)
from backend.generation.wrappers import close_iterator
from backend.hub.base import Event, Produced, Template

_TERMINAL_EVENTS = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}


class ProxiedResponsesGeneration(RecordedResponse):
    """One relayed response: the ``Generation`` the hub runs, or a non-streamed run."""

    _source = "upstream"

    def __init__(
        self,
        *,
        events: AsyncGenerator[dict[str, Any], None],
        base: Mapping[str, Any],
        record: Record | None = None,
        max_deltas: int,
    ) -> None:
        """``base``: ssechat's Response object as created (its id, the request's echo);
        ``max_deltas``: the token limit, counted in delta events."""
        self._upstream = events
        self._background = bool(base.get("background"))
        self._own = {
            "id": base["id"],
            "background": self._background,
            "store": base.get("store", True),
            "previous_response_id": base.get("previous_response_id"),
        }
        self._max_deltas = max_deltas
        self._items = OutputItems()
        self._chars: dict[tuple[Any, ...], WholeChars] = {}
        super().__init__(
            {**base, "status": "queued" if self._background else "in_progress"}, record
        )

    @property
    def templates(self) -> Sequence[Template]:
        return ()

    # -- the Response object ------------------------------------------------------------------
    def _owned(self, response: Mapping[str, Any]) -> dict[str, Any]:
        return {**response, **self._own}

    def snapshot(
        self,
        status: Status,
        output: Sequence[Body],
        *,
        error: Body | None = None,
        incomplete: str | None = None,
    ) -> dict[str, Any]:
        return snapshot_of(self.response, status, output, error=error, incomplete=incomplete)

    # -- events ---------------------------------------------------------------------------------
    def _payload(self, event: dict[str, Any], seq: int) -> Event:
        event["sequence_number"] = seq
        # A lone surrogate cannot be written as UTF-8: pairs are joined, strays become U+FFFD.
        return event["type"], join_surrogates(dumps(event))

    def _whole(self, event: dict[str, Any]) -> None:
        """Keep a surrogate pair split over two delta events together (the UTF-8 rule)."""
        delta = event.get("delta")
        if not isinstance(delta, str):
            return
        key = (
            event["type"],
            event.get("output_index"),
            event.get("content_index"),
            event.get("summary_index"),
        )
        chars = self._chars.get(key)
        if chars is None:
            if not delta or not (max(delta) >= "\ud800" and join_surrogates(delta) != delta):
                return  # the common case: no surrogate at all
            chars = self._chars[key] = WholeChars()
        event["delta"] = chars.feed(delta)

    def _ending(
        self, status: Status, *, error: Body | None = None, incomplete: str | None = None
    ) -> Ending:
        """The events that end the response from the current sequence number on, and its
        final object. Pure: the hub may ask for closing events before the end."""
        pending: list[dict[str, Any]] = []
        if self._seq == 0 and error is None:  # stopped before it began: say it had begun
            pending.append({"type": "response.created", "response": self.response})
        for index, item in self._items.unfinished():
            pending.append(
                {"type": "response.output_item.done", "output_index": index, "item": item}
            )
        final = self.snapshot(status, self._items.output(), error=error, incomplete=incomplete)
        if error is not None:
            pending.append({"type": "error", **error_event_body(error["message"], error["code"])})
        terminal = {"completed": "response.completed", "failed": "response.failed"}.get(
            status, "response.incomplete"
        )
        pending.append({"type": terminal, "response": final})
        events = [self._payload(event, self._seq + n) for n, event in enumerate(pending)]
        return events, final

    def _stopped(self, status: Status, error: Body | None) -> Ending:
        return self._ending(status, error=error)

    async def _relay(self, event: dict[str, Any]) -> Event | None:
        """One upstream event as ssechat sends it; None for the terminal one, which
        ``events`` stores before it sends it."""
        kind = event["type"]
        response = event.get("response")
        if isinstance(response, dict):
            response = event["response"] = self._owned(response)
            if kind == "response.created" and self._background:
                response["status"] = "queued"
            if kind in _TERMINAL_EVENTS:
                return None
            self.response = response
        finished_item = self._items.apply(event)
        payload = self._payload(event, self._seq)
        self._seq += 1
        if kind == "response.in_progress":
            await self._save(self.response)
        elif finished_item:
            await self._save(self.snapshot("in_progress", self._items.finished()))
        return payload

    async def events(self) -> AsyncGenerator[Produced, None]:
        deltas = 0
        try:
            ending: Ending | None = None
            try:
                async for event in self._upstream:
                    kind = event["type"]
                    if kind.endswith(".delta"):
                        deltas += 1
                        if deltas > self._max_deltas:  # the upstream ignores the limit
                            ending = self._ending("incomplete", incomplete="max_output_tokens")
                            break
                        self._whole(event)
                    relayed = await self._relay(event)
                    if relayed is not None:
                        yield relayed
                        continue
                    # The upstream's terminal event: stored, then sent, as it came.
                    final = event["response"]
                    ending = [self._payload(event, self._seq)], final
                    break
            except EngineError as error:
                ending = self._failure(error)
            if ending is None:
                ending = self._failure(EngineError("The upstream ended without a terminal event."))
            for item in await self._finish(*ending):
                yield item
        except (asyncio.CancelledError, Exception) as stop:
            await self._save_stopped(stop)
            raise
        finally:
            await close_iterator(self._upstream)
