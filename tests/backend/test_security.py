"""Who gets in, what they may touch, what the browser may read, what the log may say.

Real servers on real sockets: ``serve_app`` for most, a ``python -m backend``
process where the log or the process boundary matters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.config import Settings
from backend.security import key_owner, owner_for_header
from tests.backend.engines.upstream_faults import ANSWER, API_KEY, FaultyUpstream
from tests.servers import backend_process, serve_app
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hello"}]
KEY_A = "sk-alice-4f9c2a7e1b"
KEY_B = "sk-bob-8d3e6c0a52"
ORIGIN = "https://chat.example.org"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"engine": "simulated", "sim_tokens_per_s": 0.0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def keyed() -> Iterator[str]:
    app = create_app(settings(api_keys=f"{KEY_A}, {KEY_B}", sim_tokens_per_s=20.0))
    with serve_app(app) as base_url:
        yield base_url


# --- API keys ------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/v1/models"),
    ("POST", CHAT),
    ("GET", f"{CHAT}/chatcmpl-{'0' * 32}/events"),
    ("POST", f"{CHAT}/chatcmpl-{'0' * 32}/cancel"),
    ("GET", "/metrics"),
    ("GET", "/v1/no-such-route"),  # 401, not 404: an anonymous caller learns nothing
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Basic {KEY_A}", f"{KEY_A}", "Bearer sk-wrong", f"Bearer {KEY_A}x"],
)
def test_every_api_route_needs_a_valid_key(
    keyed: str, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.request(
        method, keyed + path, headers=headers, json={"messages": MESSAGES}, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert set(error) == {"message", "type", "param", "code"}
    # never echoes what was sent
    assert "sk-wrong" not in response.text
    assert KEY_A not in response.text


def test_the_key_is_checked_before_the_body_is_read(keyed: str) -> None:
    """Anonymous callers get 401, not 400 or 413: we parse nothing of theirs."""
    bad_json = httpx.post(
        keyed + CHAT, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 401
    huge = httpx.post(keyed + CHAT, content=b"x" * 2_000_000)
    assert huge.status_code == 401


DOCS = ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]


def test_probes_stay_open(keyed: str) -> None:
    assert httpx.get(f"{keyed}/healthz").status_code == 200
    assert httpx.get(f"{keyed}/readyz").status_code == 200


@pytest.mark.parametrize("path", DOCS)
def test_docs_and_schema_need_the_key_when_keys_are_set(keyed: str, path: str) -> None:
    anonymous = httpx.get(keyed + path)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(keyed + path, headers=bearer(KEY_A)).status_code == 200
    assert httpx.get(keyed + path, headers={"x-api-key": KEY_B}).status_code == 200


@pytest.mark.parametrize("path", DOCS)
def test_open_docs_setting_serves_them_without_a_key(path: str) -> None:
    app = create_app(settings(api_keys=KEY_A, open_docs=True))
    with serve_app(app) as base_url:
        assert httpx.get(base_url + path).status_code == 200
        assert httpx.get(f"{base_url}/v1/models").status_code == 401  # the API stays closed


@pytest.mark.parametrize("key", ["", "sk-wrong", f"{KEY_A}x", f"Bearer {KEY_A}"])
def test_x_api_key_must_be_a_valid_key(keyed: str, key: str) -> None:
    response = httpx.get(f"{keyed}/v1/models", headers={"x-api-key": key})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_x_api_key_gets_in_on_every_protected_path(keyed: str) -> None:
    """The Anthropic SDK's header: the same keys, the same owner as a Bearer token."""
    for key in (KEY_A, KEY_B):
        header = {"x-api-key": key}
        assert httpx.get(f"{keyed}/v1/models", headers=header).status_code == 200
        assert httpx.get(f"{keyed}/metrics", headers=header).status_code == 200
    body = {"messages": MESSAGES, "max_tokens": 2}
    response = httpx.post(keyed + CHAT, headers={"x-api-key": KEY_A}, json=body)
    assert response.status_code == 200
    assert owner_for_header(None, [KEY_A, KEY_B], KEY_B) == key_owner(KEY_B)
    # Both sent: the Bearer token decides (a wrong one is not rescued by x-api-key).
    both = {"Authorization": "Bearer sk-wrong", "x-api-key": KEY_A}
    assert httpx.get(f"{keyed}/v1/models", headers=both).status_code == 401


def test_a_stream_started_with_x_api_key_belongs_to_that_key(keyed: str) -> None:
    body = {"messages": MESSAGES, "stream": True, "max_tokens": 3}
    with httpx.stream("POST", keyed + CHAT, headers={"x-api-key": KEY_A}, json=body) as response:
        assert response.status_code == 200
        stream_id = response.headers["x-stream-id"]
        response.read()
    events = f"{keyed}{CHAT}/{stream_id}/events"
    assert httpx.get(events, headers={"x-api-key": KEY_B}).status_code == 404
    assert httpx.get(events, headers=bearer(KEY_A)).status_code == 200


def test_valid_keys_get_in(keyed: str) -> None:
    for key in (KEY_A, KEY_B):
        assert httpx.get(f"{keyed}/v1/models", headers=bearer(key)).status_code == 200
        assert httpx.get(f"{keyed}/metrics", headers=bearer(key)).status_code == 200
    # RFC 6750: the scheme is case-insensitive
    lower = httpx.get(f"{keyed}/v1/models", headers={"Authorization": f"bearer {KEY_B}"})
    assert lower.status_code == 200
    body = {"messages": MESSAGES, "max_tokens": 2}
    response = httpx.post(keyed + CHAT, headers=bearer(KEY_A), json=body)
    assert response.status_code == 200


def test_owner_tags_are_per_key_and_compare_whole_keys() -> None:
    keys = [KEY_A, KEY_B]
    assert owner_for_header(f"Bearer {KEY_A}", keys) == key_owner(KEY_A)
    assert owner_for_header(f"Bearer {KEY_B}", keys) != key_owner(KEY_A)
    assert owner_for_header(None, []) is None  # open API: no owner
    for near_miss in (KEY_A[:-1], KEY_A + " x", KEY_A.upper(), f"{KEY_A},{KEY_B}"):
        with pytest.raises(Exception, match="Incorrect API key"):
            owner_for_header(f"Bearer {near_miss}", keys)


def test_a_stream_belongs_to_the_key_that_started_it(keyed: str) -> None:
    body = {"messages": MESSAGES, "stream": True, "max_tokens": 500}
    with (
        httpx.Client(base_url=keyed, timeout=30) as http,
        http.stream("POST", CHAT, json=body, headers=bearer(KEY_A)) as response,
    ):
        stream_id = response.headers["x-stream-id"]
        events = f"{CHAT}/{stream_id}/events"
        unknown = f"{CHAT}/chatcmpl-{'f' * 32}/events"
        # another key: exactly what an unknown id gets (ids are not an oracle)
        foreign = http.get(events, headers=bearer(KEY_B))
        missing = http.get(unknown, headers=bearer(KEY_B))
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["error"]["type"] == missing.json()["error"]["type"]
        assert http.post(f"{CHAT}/{stream_id}/cancel", headers=bearer(KEY_B)).status_code == 404
        # the owner can resume it; its stream was not cancelled by B
        with http.stream("GET", events, headers=bearer(KEY_A)) as resumed:
            assert resumed.status_code == 200
        own_cancel = http.post(f"{CHAT}/{stream_id}/cancel", headers=bearer(KEY_A))
        assert own_cancel.status_code == 200
        chunks = [
            event.data for event in parse_stream(response.read())[0] if event.data != "[DONE]"
        ]
    assert json.loads(chunks[-1])["choices"][0]["finish_reason"] == "cancelled"


# --- CORS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cors() -> Iterator[str]:
    app = create_app(settings(cors_origins=f"{ORIGIN}, https://other.example", api_keys=KEY_A))
    with serve_app(app) as base_url:
        yield base_url


def test_allowed_origin_may_read_the_stream_and_its_id(cors: str) -> None:
    body = {"messages": MESSAGES, "stream": True, "max_tokens": 3}
    headers = {"Origin": ORIGIN, **bearer(KEY_A)}
    with httpx.stream("POST", cors + CHAT, json=body, headers=headers) as response:
        response.read()
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-stream-id" in response.headers["access-control-expose-headers"].lower()
    # API keys travel in a header, not cookies: credentials mode is never enabled
    assert "access-control-allow-credentials" not in response.headers
    # an error is readable too (the page can show why)
    denied = httpx.get(f"{cors}/v1/models", headers={"Origin": ORIGIN})
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == ORIGIN


def test_preflight_from_an_allowed_origin(cors: str) -> None:
    preflight = httpx.options(
        cors + CHAT,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, last-event-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "last-event-id"} <= {
        name.strip() for name in allowed.split(",")
    }
    assert "access-control-allow-credentials" not in preflight.headers


def test_other_origins_get_no_cors_headers(cors: str) -> None:
    evil = "https://evil.example"
    response = httpx.get(f"{cors}/v1/models", headers={"Origin": evil, **bearer(KEY_A)})
    assert response.status_code == 200  # CORS is the browser's job: it will not let evil read
    assert "access-control-allow-origin" not in response.headers
    preflight = httpx.options(
        cors + CHAT, headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


def test_no_origins_configured_means_same_origin_only() -> None:
    with serve_app(create_app(settings())) as base_url:
        response = httpx.get(f"{base_url}/v1/models", headers={"Origin": ORIGIN})
        preflight = httpx.options(
            base_url + CHAT, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


def test_wildcard_origin_never_comes_with_credentials() -> None:
    with serve_app(create_app(settings(cors_origins="*"))) as base_url:
        response = httpx.get(f"{base_url}/v1/models", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


# --- the open-API warning ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "keys", "warned"),
    [
        ("0.0.0.0", "", True),
        ("10.1.2.3", "", True),
        ("::", "", True),
        ("example.org", "", True),
        ("0.0.0.0", KEY_A, False),
        ("127.0.0.1", "", False),
        ("127.0.0.2", "", False),
        ("::1", "", False),
        ("localhost", "", False),
    ],
)
def test_open_api_on_a_public_address_is_logged_loudly(
    caplog: pytest.LogCaptureFixture, host: str, keys: str, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="backend.app")
    with serve_app(create_app(settings(host=host, api_keys=keys))):
        pass
    warnings = [r for r in caplog.records if "API is open" in r.getMessage()]
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].levelno == logging.WARNING
        assert host in warnings[0].getMessage()


# --- what the log may say ------------------------------------------------------------------

PROMPT_CANARY = "my-secret-prompt-7c1f0e"
WRONG_UPSTREAM_KEY = "sk-wrong-upstream-key-93ab17"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_app(FaultyUpstream()) as base_url:
        yield base_url


def _exchange(base_url: str) -> tuple[str, str]:
    """One streamed and one whole answer; returns everything the client received."""
    body = {"messages": [{"role": "user", "content": PROMPT_CANARY}], "max_tokens": 50}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        streamed = http.post(CHAT, json={**body, "stream": True}).text
        whole = http.post(CHAT, json=body).text
        extra = http.get("/v1/models").text + http.get("/healthz").text + http.get("/metrics").text
    return streamed + whole, extra


def test_upstream_key_and_content_never_reach_the_log_or_a_response(upstream: str) -> None:
    env = {
        "SSECHAT_ENGINE": "openai",
        "SSECHAT_UPSTREAM_URL": f"{upstream}/ok/v1",
        "SSECHAT_UPSTREAM_API_KEY": API_KEY,
        "SSECHAT_LOG_LEVEL": "debug",  # the chattiest the log can be
    }
    with backend_process(env) as backend:
        answers, extra = _exchange(backend.url)
        log = backend.log()
    assert "流式" in answers  # the upstream's answer came through (both ways)
    for secret in (API_KEY, API_KEY[-10:]):
        assert secret not in answers + extra
        assert secret not in log
    assert PROMPT_CANARY not in log
    assert "流式" not in log  # no answer text either
    assert "POST /v1/chat/completions" in log  # the log is not simply empty


def test_a_rejected_upstream_key_is_not_echoed(upstream: str) -> None:
    env = {
        "SSECHAT_ENGINE": "openai",
        "SSECHAT_UPSTREAM_URL": f"{upstream}/auth/v1",  # echoes a wrong key, like OpenAI
        "SSECHAT_UPSTREAM_API_KEY": WRONG_UPSTREAM_KEY,
        "SSECHAT_LOG_LEVEL": "debug",
    }
    with backend_process(env) as backend:
        answers, extra = _exchange(backend.url)
        log = backend.log()
    assert "upstream_auth_failed" in answers  # the failure is reported ...
    assert WRONG_UPSTREAM_KEY not in answers + extra + log  # ... without the key
    assert WRONG_UPSTREAM_KEY[-8:] not in answers + extra + log


def test_content_is_logged_only_when_asked(upstream: str) -> None:
    env = {
        "SSECHAT_ENGINE": "openai",
        "SSECHAT_UPSTREAM_URL": f"{upstream}/ok/v1",
        "SSECHAT_UPSTREAM_API_KEY": API_KEY,
        "SSECHAT_LOG_CONTENT": "1",
    }
    with backend_process(env) as backend:
        _exchange(backend.url)
        log = backend.log()
    assert PROMPT_CANARY in log
    # One line per answer, streamed and not alike (logged from the engine's deltas).
    answers = [line for line in log.splitlines() if "answer (stop)" in line]
    assert len(answers) == 2
    assert all(repr(ANSWER)[1:-1][:20] in line for line in answers)
    assert API_KEY not in log  # content yes, the key still never
