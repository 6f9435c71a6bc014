"""``/v1/responses``: the OpenAI Responses API on the shared hub.

- ``POST /v1/responses``: streamed (typed ``response.*`` events), not
  streamed (the Response object), or in the background (the generation runs
  on the hub with no connection attached; the object answers at once).
- ``GET /v1/responses/{id}``: the stored object; with ``stream=true`` its
  events after ``starting_after`` (a sequence number; ``Last-Event-ID``, one
  more, wins when sent), then live, on any worker with the Redis hub.
- ``POST /v1/responses/{id}/cancel`` (background responses, and streamed
  ones still running) and ``DELETE /v1/responses/{id}``.

Every engine serves this API from its delta stream (the renderer in
``backend.generation.responses``), except an engine whose upstream speaks
the Responses API itself (``ResponsesUpstream``, ``SSECHAT_UPSTREAM_RESPONSES``):
its upstream's events are relayed (``backend.generation.responses_proxy``)
under ssechat's id, hub and store. ``responses_input`` turns the body into
the ``GenerationRequest``, the Response object's echo and the upstream's body.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from backend.errors import APIError
from backend.generation.response_object import TERMINAL, run_to_end
from backend.generation.responses import ResponsesGeneration, hub_error_events, new_response_id
from backend.generation.responses_proxy import ProxiedResponsesGeneration
from backend.hub.base import StreamNotFound
from backend.routes.common import (
    STREAM_ID_PATTERN,
    Admission,
    LastEventIdHeader,
    LimitsDep,
    ServicesDep,
    caller_owner,
    open_stream,
    parse_last_event_id,
)
from backend.routes.responses_input import (
    conversation,
    generation_request_for,
    previous_response,
    raw_input_items,
    refuse_conflicts,
    refuse_unknown,
    response_base,
    upstream_body,
)
from backend.schemas.responses import ResponsesRequest, input_items
from backend.store import get_response_store
from backend.store.base import ResponseStore

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/responses", tags=["responses"])

StoreDep = Annotated[ResponseStore, Depends(get_response_store)]
ResponseIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=STREAM_ID_PATTERN)]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The Response object, or with `stream: true` an SSE stream of "
        "`response.*` events",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    400: {"description": "Invalid request (OpenAI-style error body)"},
    401: {"description": "Missing or wrong API key"},
    404: {"description": "Unknown model, response, or previous response"},
    429: {"description": "Rate limit or concurrent-stream cap reached (see Retry-After)"},
    503: {"description": "At capacity, or shutting down"},
}


@router.post("", responses=_RESPONSES)
async def create_response(
    body: ResponsesRequest,
    request: Request,
    services: ServicesDep,
    limits: LimitsDep,
    store: StoreDep,
) -> Response:
    admission = Admission(request, services, limits)
    await admission.check_rate()
    refuse_conflicts(body)
    previous = await previous_response(body, store, admission.owner)
    earlier = conversation(previous)
    generation_request, engine = generation_request_for(body, earlier, services)
    upstream = services.engines.responses_upstream(generation_request.model)
    relayed = upstream is not None and await upstream.speaks_responses()
    if not relayed:
        refuse_unknown(body)
    response_id = new_response_id()
    if services.settings.log_content:
        logger.info("%s prompt: %r", response_id, generation_request.messages)
    stored = body.store is not False
    base = response_base(body, response_id, generation_request)
    record = (lambda response: store.update(response_id, response)) if stored else None
    generation: ResponsesGeneration | ProxiedResponsesGeneration
    if upstream is not None and relayed:
        # The body as sent (fields unknown to ssechat included), for the upstream.
        raw: dict[str, Any] = await request.json()
        generation = ProxiedResponsesGeneration(
            events=admission.upstream_events(
                upstream, upstream_body(raw, earlier, generation_request)
            ),
            base=base,
            record=record,
            max_deltas=generation_request.max_tokens,
        )
        context = [*earlier, *raw_input_items(raw)]
    else:
        generation = ResponsesGeneration(
            deltas=admission.deltas(engine, generation_request, response_id),
            base=base,
            reasoning_as_summary=bool(
                body.reasoning and (body.reasoning.summary or body.reasoning.generate_summary)
            ),
            record=record,
        )
        context = [*earlier, *input_items(body)]
    if stored:
        await store.create(response_id, admission.owner, generation.response, context)
    try:
        if body.background or body.stream:
            await admission.start(response_id, generation, background=bool(body.background))
        else:
            result = await admission.run(lambda: run_to_end(generation))
            return JSONResponse(result)
    except BaseException:
        if stored and not generation.started:
            await store.delete(response_id, admission.owner)  # refused before it began
        raise
    if body.stream:
        return await admission.stream(response_id, 0, hub_error_events)
    return JSONResponse(generation.response)


@router.get(
    "/{response_id}",
    responses={
        200: {
            "description": "The Response object, or with `stream=true` its events",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        204: {"description": "No event after starting_after / Last-Event-ID: stop reconnecting"},
        404: {"description": "Unknown, expired, deleted, or another key's"},
    },
)
async def retrieve_response(
    response_id: ResponseIdPath,
    request: Request,
    services: ServicesDep,
    store: StoreDep,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id_header: LastEventIdHeader = "",
) -> Response:
    """The stored Response object; with ``stream=true`` its events after
    ``starting_after`` (then live). The SDK's ``include`` and
    ``include_obfuscation`` are accepted and change nothing: the object holds
    what the request included, and events are never padded."""
    owner = caller_owner(request, services)
    if not stream:
        record = await store.load(response_id, owner)
        if record is None:
            raise APIError(
                404,
                f"No response with id '{response_id}' (unknown, expired, deleted, or not yours).",
                code="not_found",
                param="response_id",
            )
        return JSONResponse(record.response)
    # Sequence numbers start at 0 and SSE ids at 1: starting_after=N is Last-Event-ID N+1.
    query = None if starting_after is None else str(starting_after + 1)
    after = parse_last_event_id(last_event_id_header, query)
    try:
        return await open_stream(
            services, response_id, after, owner, hub_error_events=hub_error_events
        )
    except StreamNotFound:
        raise APIError(
            404,
            f"No events for response '{response_id}': unknown, not yours, neither streamed "
            "nor run in the background, or expired.",
            code="not_found",
            param="response_id",
        ) from None


@router.post("/{response_id}/cancel", responses={404: {"description": "Unknown response"}})
async def cancel_response(
    response_id: ResponseIdPath, request: Request, services: ServicesDep, store: StoreDep
) -> JSONResponse:
    """Stop a response now; the object answers with status ``cancelled``.

    As OpenAI's: a background response can be cancelled, and cancelling one
    that has finished answers it unchanged. Beyond OpenAI's: a streamed
    response still running can be cancelled too (it runs on the hub like a
    background one; the UI's Stop uses this), and cancelling it again answers
    it unchanged. A response answered as a whole, or a foreground one that
    finished by itself, cannot (400)."""
    owner = caller_owner(request, services)
    record = await store.load(response_id, owner)
    if record is None:
        raise APIError(
            404, f"No response with id '{response_id}'.", code="not_found", param="response_id"
        )
    background = bool(record.response.get("background"))
    status = record.response.get("status")
    # Cancelling again answers the same object, as cancelling a finished background
    # response does (a UI's Stop may race the stream's end).
    if status in TERMINAL and (background or status == "cancelled"):
        return JSONResponse(record.response)
    not_cancellable = APIError(
        400,
        "Only responses created with background=true (or still streaming) can be cancelled.",
        code="invalid_value",
        param="response_id",
    )
    if record.response.get("status") in TERMINAL:
        raise not_cancellable
    try:
        await services.hub.cancel(response_id, owner)
    except StreamNotFound:
        raise not_cancellable from None  # not on the hub: answered as a whole
    record = await store.load(response_id, owner)
    if record is None:
        raise APIError(404, f"Response '{response_id}' was deleted.", code="not_found")
    response = record.response
    if response.get("status") not in TERMINAL:
        # Stopped before its generation ever ran (so it recorded nothing).
        response = {**response, "status": "cancelled", "completed_at": int(time.time())}
        await store.update(response_id, response)
    return JSONResponse(response)


@router.delete("/{response_id}", responses={404: {"description": "Unknown response"}})
async def delete_response(
    response_id: ResponseIdPath, request: Request, services: ServicesDep, store: StoreDep
) -> dict[str, Any]:
    """Forget the response (stopping it if it still runs): GET answers 404 after."""
    owner = caller_owner(request, services)
    deleted = await store.delete(response_id, owner)
    try:
        await services.hub.delete(response_id, owner)
        deleted = True
    except StreamNotFound:
        pass
    if not deleted:
        raise APIError(
            404, f"No response with id '{response_id}'.", code="not_found", param="response_id"
        )
    return {"id": response_id, "object": "response.deleted", "deleted": True}
