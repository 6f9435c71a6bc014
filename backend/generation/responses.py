"""The OpenAI Responses renderer: engine deltas into typed ``response.*`` events.

One ``ResponsesGeneration`` is the ``Generation`` the hub runs for a
``POST /v1/responses`` (streamed, or in the background), and the thing a
non-streamed request runs to its end. Every event carries ``event:`` = its
``type`` and ``sequence_number`` from 0; the hub numbers the same events
from 1, so an SSE ``id`` is always ``sequence_number + 1``: the generation
yields exactly one hub event per sequence number, closing events included.

Lifecycle: ``response.created`` (status ``queued`` for a background
response, else ``in_progress``), ``response.in_progress``, then output items
as the deltas ask for them (see ``response_items``), then one terminal event:
``response.completed``; ``response.incomplete`` (max tokens or content
filter, with ``incomplete_details``; or stopped early by a cancel, a
shutdown, or every reader leaving: status ``cancelled``, no details);
``response.failed`` after an ``error`` event (an engine failure).

The stored Response object (``GET /v1/responses/{id}``) follows the same
snapshots: the generation hands each to ``record`` (created, in progress,
each finished item, and the terminal one *before* the terminal event is
yielded, so a client that has seen ``response.completed`` reads a completed
object on any worker).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

from backend.engines.base import EngineError, FinishReason, TokenDelta, ToolCallDelta, Usage
from backend.generation.payload import dumps, escape
from backend.generation.response_items import (
    Body,
    FunctionCallItem,
    ItemStatus,
    MessageItem,
    OpenItem,
    Pending,
    ReasoningItem,
    close_all,
    logprobs_of,
)
from backend.generation.response_object import (
    FAILED_CODE,
    Ending,
    Record,
    RecordedResponse,
    Status,
    error_event_body,
    snapshot_of,
)
from backend.hub.base import Event, Fragment, HubError, Produced, Template


def new_response_id() -> str:
    """``resp_`` + 128 random bits: unguessable, so it can double as a capability."""
    return "resp_" + secrets.token_hex(16)


def hub_error_events(error: HubError) -> Sequence[Event]:
    """A hub failure mid-stream: an ``error`` event (outside the numbering: the route
    does not know where the stream stood; the client may resume later)."""
    body = {"type": "error", "code": error.error_type, "message": error.message, "param": None}
    return [("error", dumps(body))]


_INCOMPLETE_REASONS: dict[str, str] = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}


class ResponsesGeneration(RecordedResponse):
    """One response: the ``Generation`` the hub runs, or a non-streamed run."""

    def __init__(
        self,
        *,
        deltas: AsyncGenerator[TokenDelta, None],
        base: Mapping[str, Any],
        reasoning_as_summary: bool = False,
        record: Record | None = None,
    ) -> None:
        self._deltas = deltas
        self._base = dict(base)
        self._hex = str(base["id"]).removeprefix("resp_")
        self._as_summary = reasoning_as_summary
        self._templates: list[Template] = []
        self._output: list[Body] = []  # finished items, in output order
        self._open: list[OpenItem] = []
        self._calls: dict[int, FunctionCallItem] = {}  # tool-call index -> its open item
        self._items = 0  # output indexes handed out
        self._text_item: MessageItem | None = None  # the open output_text part, if last
        self.output_tokens = 0
        super().__init__(
            self.snapshot("queued" if base.get("background") else "in_progress"), record
        )

    @property
    def templates(self) -> Sequence[Template]:
        return self._templates

    # -- the Response object ------------------------------------------------------------------
    def snapshot(
        self,
        status: Status,
        output: Sequence[Body] | None = None,
        *,
        usage: Usage | None = None,
        error: Body | None = None,
        incomplete: str | None = None,
    ) -> dict[str, Any]:
        output = self._output if output is None else output
        return snapshot_of(
            self._base, status, output, usage=usage, error=error, incomplete=incomplete
        )

    # -- numbering ------------------------------------------------------------------------------
    def _number(self, pending: Sequence[Pending], start: int | None = None) -> list[Event]:
        """Whole events for ``pending``, numbered from ``start`` (default: the next)."""
        seq = self._seq if start is None else start
        events: list[Event] = []
        for offset, (event_type, body) in enumerate(pending):
            payload = {"type": event_type, **body, "sequence_number": seq + offset}
            events.append((event_type, dumps(payload)))
        return events

    def _emit(self, pending: Sequence[Pending]) -> list[Event]:
        events = self._number(pending)
        self._seq += len(events)
        return events

    def _fragment(self, template: int, text: str) -> Fragment:
        fragment = Fragment(template, f'{self._seq},"delta":{escape(text)}')
        self._seq += 1
        return fragment

    def _add_template(self, template: Template) -> int:
        self._templates.append(template)
        return len(self._templates) - 1

    def _item_id(self, prefix: str) -> str:
        self._items += 1
        return f"{prefix}_{self._hex}{self._items - 1}"

    # -- items ----------------------------------------------------------------------------------
    def _close_open(self, keep: type[OpenItem] | None = None) -> list[Pending]:
        """Close every open item not of type ``keep``."""
        closing = [item for item in self._open if keep is None or not isinstance(item, keep)]
        if not closing:
            return []
        events, finished = close_all(closing, "completed")
        self._open = [item for item in self._open if item not in closing]
        for item in closing:
            if isinstance(item, FunctionCallItem):
                self._calls = {i: call for i, call in self._calls.items() if call is not item}
        self._output.extend(finished)
        return events

    def _current(self, kind: type[OpenItem]) -> OpenItem | None:
        return self._open[-1] if self._open and isinstance(self._open[-1], kind) else None

    def _reasoning(self) -> tuple[list[Pending], ReasoningItem]:
        current = self._current(ReasoningItem)
        if isinstance(current, ReasoningItem):
            return [], current
        pending = self._close_open()
        item = ReasoningItem(self._item_id("rs"), self._items - 1, self._as_summary)
        opening, template = item.opening()
        item.template = self._add_template(template)
        self._open.append(item)
        return [*pending, *opening], item

    def _message(
        self, part_type: Literal["output_text", "refusal"]
    ) -> tuple[list[Pending], MessageItem]:
        current = self._current(MessageItem)
        pending: list[Pending] = []
        if isinstance(current, MessageItem):
            if current.part_type == part_type:
                return [], current
            pending.extend(current.close_part())
            item = current
        else:
            pending.extend(self._close_open())
            item = MessageItem(self._item_id("msg"), self._items - 1)
            pending.extend(item.opening())
            self._open.append(item)
        item.part_type = part_type
        opening, template = item.part_opening()
        item.template = self._add_template(template)
        return [*pending, *opening], item

    def _call(self, delta: ToolCallDelta) -> tuple[list[Pending], FunctionCallItem]:
        existing = self._calls.get(delta.index)
        if existing is not None:
            return [], existing
        pending = self._close_open(keep=FunctionCallItem)
        item = FunctionCallItem(
            self._item_id("fc"),
            self._items - 1,
            call_id=delta.id or "call_" + secrets.token_hex(12),
            name=delta.name or "",
        )
        opening, template = item.opening()
        item.template = self._add_template(template)
        self._open.append(item)
        self._calls[delta.index] = item
        return [*pending, *opening], item

    # -- events ---------------------------------------------------------------------------------
    def _delta_events(self, delta: TokenDelta) -> list[Produced]:
        out: list[Produced] = []
        if delta.reasoning:
            pending, reasoning = self._reasoning()
            out.extend(self._emit(pending))
            reasoning.text.append(delta.reasoning)
            out.append(self._fragment(reasoning.template, delta.reasoning))
        if delta.refusal:
            pending, message = self._message("refusal")
            out.extend(self._emit(pending))
            message.text.append(delta.refusal)
            out.append(self._fragment(message.template, delta.refusal))
        if delta.text:
            pending, message = self._message("output_text")
            out.extend(self._emit(pending))
            message.text.append(delta.text)
            if delta.logprobs:
                logprobs = logprobs_of(delta.logprobs)
                message.logprobs.extend(logprobs)
                body = {
                    "item_id": message.id,
                    "output_index": message.output_index,
                    "content_index": len(message.parts),
                    "delta": delta.text,
                    "logprobs": logprobs,
                }
                out.extend(self._emit([("response.output_text.delta", body)]))
            else:
                out.append(self._fragment(message.template, delta.text))
        for call in delta.tool_calls:
            pending, item = self._call(call)
            out.extend(self._emit(pending))
            if call.name and not item.name:
                item.name = call.name
            if call.arguments:
                item.arguments.append(call.arguments)
                out.append(self._fragment(item.template, call.arguments))
        return out

    def _ending(
        self,
        status: Status,
        item_status: ItemStatus,
        *,
        seq: int,
        usage: Usage | None = None,
        error: Body | None = None,
        incomplete: str | None = None,
    ) -> Ending:
        """The events that end the response from sequence ``seq`` on, and its final
        object. Pure: the hub may ask for closing events before the end."""
        pending: list[Pending] = []
        if seq == 0 and error is None:  # stopped before it began: say it had begun
            pending.append(("response.created", {"response": self.response}))
        closing, finished = close_all(self._open, item_status)
        pending.extend(closing)
        final = self.snapshot(
            status,
            [*self._output, *finished],
            usage=usage,
            error=error,
            incomplete=incomplete,
        )
        if error is not None:
            pending.append(("error", error_event_body(error["message"], error["code"])))
        terminal = {
            "completed": "response.completed",
            "failed": "response.failed",
        }.get(status, "response.incomplete")
        pending.append((terminal, {"response": final}))
        return self._number(pending, seq), final

    def _stopped(self, status: Status, error: Body | None) -> Ending:
        return self._ending(status, "incomplete", seq=self._seq, error=error)

    def _ending_for(self, final_delta: TokenDelta) -> Ending:
        reason: FinishReason = final_delta.finish_reason or "stop"
        usage = final_delta.usage or Usage(0, self.output_tokens)
        if reason in ("stop", "tool_calls"):
            return self._ending("completed", "completed", seq=self._seq, usage=usage)
        if reason in _INCOMPLETE_REASONS:
            return self._ending(
                "incomplete",
                "incomplete",
                seq=self._seq,
                usage=usage,
                incomplete=_INCOMPLETE_REASONS[reason],
            )
        if reason == "cancelled":
            return self._ending("cancelled", "incomplete", seq=self._seq, usage=usage)
        error = {"code": FAILED_CODE, "message": "The engine reported an error."}
        return self._ending("failed", "incomplete", seq=self._seq, usage=usage, error=error)

    async def events(self) -> AsyncGenerator[Produced, None]:
        # The route stored the object as created; from here on it is in progress.
        for event in self._emit([("response.created", {"response": self.response})]):
            yield event
        in_progress = self.snapshot("in_progress")
        for event in self._emit([("response.in_progress", {"response": in_progress})]):
            yield event
        await self._save(in_progress)
        final_delta: TokenDelta | None = None
        saved_items = 0
        try:
            try:
                async for delta in self._deltas:
                    text_item = self._text_item
                    if (
                        text_item is not None
                        and delta.text
                        and not (delta.reasoning or delta.refusal or delta.tool_calls)
                        and delta.logprobs is None
                    ):
                        # The hot path: more text for the part that is open.
                        self.output_tokens += 1
                        text_item.text.append(delta.text)
                        yield Fragment(
                            text_item.template, f'{self._seq},"delta":{escape(delta.text)}'
                        )
                        self._seq += 1
                    elif delta.text or delta.reasoning or delta.refusal or delta.tool_calls:
                        self.output_tokens += 1
                        for item in self._delta_events(delta):
                            yield item
                        last = self._open[-1] if self._open else None
                        self._text_item = (
                            last
                            if isinstance(last, MessageItem) and last.part_type == "output_text"
                            else None
                        )
                        if len(self._output) > saved_items:
                            saved_items = len(self._output)
                            await self._save(self.snapshot("in_progress"))
                    if delta.finish_reason is not None:
                        final_delta = delta
                        break
            except EngineError as error:
                ending = self._failure(error)
            else:
                if final_delta is None:
                    ending = self._failure(EngineError("The engine ended without a finish reason."))
                else:
                    ending = self._ending_for(final_delta)
            for event in await self._finish(*ending):
                yield event
        except (asyncio.CancelledError, Exception) as stop:
            await self._save_stopped(stop)
            raise
