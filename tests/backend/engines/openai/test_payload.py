"""The upstream request body (backend/engines/openai/payload.py), as a pure function."""

from __future__ import annotations

import dataclasses

from backend.engines.base import ChatMessage, ContentPart, ResponseFormat, ToolSpec
from backend.engines.openai.payload import build_payload, message_payload
from tests.backend.engines.openai.helpers import REQUEST


def test_fields_not_asked_for_are_left_out() -> None:
    payload = build_payload(REQUEST, include_usage=False)
    assert set(payload) == {
        "model",
        "messages",
        "stream",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
    }


def test_sampling_not_sent_is_not_sent_and_the_limit_keeps_the_client_s_spelling() -> None:
    bare = dataclasses.replace(REQUEST, temperature=None, top_p=None, seed=None, stop=())
    payload = build_payload(bare, include_usage=False)
    assert set(payload) == {"model", "messages", "stream", "max_tokens"}
    assert payload["max_tokens"] == REQUEST.max_tokens
    reasoning_model = dataclasses.replace(bare, max_tokens_field="max_completion_tokens")
    payload = build_payload(reasoning_model, include_usage=False)
    assert "max_tokens" not in payload
    assert payload["max_completion_tokens"] == REQUEST.max_tokens


def test_content_parts_keep_the_clients_order_when_text_parts_are_among_them() -> None:
    audio = ContentPart("input_audio", {"data": "AAAA", "format": "wav"})
    first = ContentPart("text", {"text": "Listen: "})
    last = ContentPart("text", {"type": "text", "text": " What is it?"})
    message = ChatMessage("user", "Listen:  What is it?", parts=(first, audio, last))
    assert message_payload(message)["content"] == [
        {"type": "text", "text": "Listen: "},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "text", "text": " What is it?"},
    ]


def test_a_part_given_whole_is_passed_as_is() -> None:
    whole = {"type": "file", "file": {"file_id": "file-1"}}
    message = ChatMessage("user", "", parts=(ContentPart("file", whole),))
    assert message_payload(message)["content"] == [whole]


def test_tool_choice_and_response_format_spellings() -> None:
    tools = (ToolSpec("f"),)
    for choice in ("none", "auto", "required"):
        request = dataclasses.replace(REQUEST, tools=tools, tool_choice=choice)
        assert build_payload(request, include_usage=False)["tool_choice"] == choice
    request = dataclasses.replace(
        REQUEST, tools=tools, response_format=ResponseFormat("json_object")
    )
    payload = build_payload(request, include_usage=False)
    assert payload["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert payload["response_format"] == {"type": "json_object"}


def test_modelled_fields_win_over_an_unknown_field_of_the_same_name() -> None:
    request = dataclasses.replace(REQUEST, extra={"stream": False, "n_probs": 3})
    payload = build_payload(request, include_usage=True)
    assert payload["stream"] is True
    assert payload["n_probs"] == 3
