"""The native Responses relay: ``POST {base_url}/responses``, streamed, event by event.

When the upstream speaks the OpenAI Responses API itself, ``/v1/responses``
is relayed rather than rebuilt from its Chat Completions stream: its events,
output items and tool calls arrive as the upstream made them (hosted tools,
encrypted reasoning and fields ssechat does not model included). The route
and ``backend.generation.responses_proxy`` keep what is ssechat's: the
response id, background runs, the store, resume and the sequence numbers.

Whether the upstream speaks it (``SSECHAT_UPSTREAM_RESPONSES``): ``on``,
``off``, or ``auto``: asked once, on the first ``/v1/responses`` request,
with an empty ``POST /responses``. An API that has the route refuses the
empty request (400, 422); one that has not answers 404 (405, 501): that
settles it for the life of the process. Any other answer (auth, rate limit,
5xx, unreachable) settles nothing: that request is served from Chat
Completions and the next one asks again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final, Literal

from backend.engines.openai.faults import UpstreamError
from backend.engines.openai.transport import UpstreamHTTP

logger = logging.getLogger(__name__)

ResponsesMode = Literal["auto", "on", "off"]
TERMINAL_EVENTS: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})
_NO_ROUTE: Final = frozenset({404, 405, 501})
_HAS_ROUTE: Final = frozenset({400, 422})


class ResponsesRelay:
    """One upstream's ``/responses``: whether to use it, and its events."""

    def __init__(self, http: UpstreamHTTP, mode: ResponsesMode) -> None:
        self._http = http
        self._known: bool | None = {"on": True, "off": False}.get(mode)
        self._lock = asyncio.Lock()

    async def speaks(self) -> bool:
        """Whether ``/v1/responses`` goes to the upstream's ``/responses``."""
        if self._known is not None:
            return self._known
        async with self._lock:  # one probe, however many requests wait for it
            if self._known is None:
                self._known = await self._probe()
            return bool(self._known)

    async def _probe(self) -> bool | None:
        where = self._http.faults.where()
        try:
            status = await self._http.post_status("/responses", {})
        except UpstreamError as error:
            logger.warning("could not ask %s whether it speaks the Responses API: %s", where, error)
            return None
        if status in _NO_ROUTE or status in _HAS_ROUTE or 200 <= status < 300:
            speaks = status not in _NO_ROUTE
            logger.info(
                "upstream %s %s the Responses API (POST /responses: HTTP %d): /v1/responses is %s",
                where,
                "speaks" if speaks else "does not speak",
                status,
                "relayed natively" if speaks else "served from its Chat Completions stream",
            )
            return speaks
        logger.warning(
            "upstream %s answered HTTP %d when asked whether it speaks the Responses API; "
            "serving from Chat Completions and asking again next time",
            where,
            status,
        )
        return None

    async def events(self, body: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The upstream's events for ``body`` (which must ask for ``stream: true``),
        each a JSON object with its ``type``, up to and including the terminal one.

        Raises ``UpstreamError`` for an error status, a transport failure, a
        stall, an event that is not a typed JSON object, or a stream that ends
        before its terminal event. The upstream's own ``error`` events are
        events like any other.
        """
        faults = self._http.faults
        saw_event = False
        async with self._http.post_events("/responses", body) as reader:
            while True:
                sse = await reader.next()
                if sse is None:
                    raise faults.unfinished_response() if saw_event else faults.no_events()
                if sse.data.strip() == "[DONE]":  # not the Responses API's, but harmless
                    continue
                saw_event = True
                try:
                    event = json.loads(sse.data)
                except ValueError:
                    raise faults.not_an_event(sse.data) from None
                if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                    raise faults.not_an_event(sse.data)
                yield event
                if event["type"] in TERMINAL_EVENTS:
                    return
