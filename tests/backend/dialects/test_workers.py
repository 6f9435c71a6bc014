"""Two ``python -m backend --hub redis`` workers on one Redis: a response started on A is
followed, read, continued and cancelled on B; a Messages stream started on A resumes on B."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from tests.backend.dialects.helpers import QUESTION, read_sse
from tests.servers import backend_process

pytestmark = pytest.mark.redis


def test_responses_and_messages_across_workers(redis_url: str) -> None:
    env = {
        "SSECHAT_HUB": "redis",
        "SSECHAT_REDIS_URL": redis_url,
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "40",
    }
    with (
        backend_process(env) as a,
        backend_process(env) as b,
        httpx.Client(timeout=30) as http,
        OpenAI(base_url=f"{a.url}/v1", api_key="unused", max_retries=0) as on_a,
        OpenAI(base_url=f"{b.url}/v1", api_key="unused", max_retries=0) as on_b,
    ):
        started = on_a.responses.create(input=QUESTION, max_output_tokens=30, background=True)
        # B follows it live from sequence number 3; A replays all of it once it ends.
        tail = list(on_b.responses.retrieve(started.id, stream=True, starting_after=3))
        full = list(on_a.responses.retrieve(started.id, stream=True))
        assert [e.model_dump() for e in tail] == [e.model_dump() for e in full[4:]]
        assert [e.sequence_number for e in full] == list(range(len(full)))
        url = f"/v1/responses/{started.id}"
        _, raw_b, _ = read_sse(
            http, "GET", b.url + url, params={"stream": "true", "starting_after": "3"}
        )
        _, raw_a, _ = read_sse(http, "GET", a.url + url, params={"stream": "true"})
        assert [(e.type, e.data, e.last_event_id) for e in raw_b] == [
            (e.type, e.data, e.last_event_id) for e in raw_a[4:]
        ]
        text = "".join(e.delta for e in full if e.type == "response.output_text.delta")
        stored = on_b.responses.retrieve(started.id)
        assert stored.status == "incomplete"  # 30 tokens: cut by max_output_tokens
        assert stored.output_text == text

        # B continues A's conversation, and the whole chain is read from Redis.
        continued = on_b.responses.create(
            previous_response_id=started.id, input="Shorter, please.", max_output_tokens=3
        )
        assert continued.previous_response_id == started.id
        assert on_a.responses.retrieve(continued.id).output_text == continued.output_text

        # Cancel on B what runs on A.
        live = on_a.responses.create(input=QUESTION, max_output_tokens=400, background=True)
        events = on_a.responses.retrieve(live.id, stream=True)
        for event in events:
            if event.type == "response.output_text.delta":
                break
        assert on_b.responses.cancel(live.id).status == "cancelled"
        rest = list(events)
        assert rest[-1].type == "response.incomplete"
        assert rest[-1].response.status == "cancelled"
        assert on_a.responses.retrieve(live.id).status == "cancelled"
        on_b.responses.delete(live.id)
        assert http.get(f"{a.url}/v1/responses/{live.id}").status_code == 404

        # Anthropic Messages: start on A, resume on B after event 3.
        body = {"max_tokens": 10, "messages": [{"role": "user", "content": QUESTION}]}
        response, events_a, _ = read_sse(
            http, "POST", f"{a.url}/v1/messages", json={**body, "stream": True}
        )
        stream_id = response.headers["x-stream-id"]
        _, events_b, _ = read_sse(
            http,
            "GET",
            f"{b.url}/v1/messages/{stream_id}/events",
            headers={"Last-Event-ID": "3"},
        )
        assert [(e.type, e.data, e.last_event_id) for e in events_b] == [
            (e.type, e.data, e.last_event_id) for e in events_a[3:]
        ]
        assert json.loads(events_b[-1].data) == {"type": "message_stop"}
