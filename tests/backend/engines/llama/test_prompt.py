"""The transcript the base model continues (backend/engines/llama/prompt.py)."""

from __future__ import annotations

from backend.engines.base import ChatMessage, ToolCall, ToolSpec
from backend.engines.llama.prompt import (
    ANSWER_CUE,
    DEFAULT_SYSTEM,
    AnswerTrimmer,
    build_prompt,
    call_cue,
)


def test_prompt_is_a_transcript_without_examples() -> None:
    prompt = build_prompt(
        (
            ChatMessage("system", "You are terse."),
            ChatMessage("user", "Hi"),
            ChatMessage("assistant", "Hello."),
            ChatMessage("user", " Why? "),
        )
    )
    assert prompt == "You are terse.\n\nUser: Hi\nAssistant: Hello.\n\nUser: Why?"
    assert (prompt + ANSWER_CUE).endswith("\nAssistant:")


def test_default_description_without_a_system_message() -> None:
    prompt = build_prompt((ChatMessage("user", "What is the boiling point of water?"),))
    assert prompt == DEFAULT_SYSTEM + "\n\nUser: What is the boiling point of water?"


def test_tools_calls_and_results_have_their_own_lines() -> None:
    weather = ToolSpec(
        "get_weather",
        "Current weather.",
        {"type": "object", "properties": {"city": {"type": "string"}}},
    )
    messages = (
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage(
            "assistant", "", tool_calls=(ToolCall("c1", "get_weather", '{"city":"Paris"}'),)
        ),
        ChatMessage("tool", "18 °C, sunny", tool_call_id="c1"),
        ChatMessage("assistant", "It is 18 °C."),
        ChatMessage("user", "And in Rome?"),
    )
    prompt = build_prompt(messages, (weather,)) + call_cue("get_weather")
    assert prompt == (
        DEFAULT_SYSTEM + "\n\nThe assistant can call these tools:\n"
        '- get_weather: Current weather. Arguments (JSON Schema): {"type": "object", '
        '"properties": {"city": {"type": "string"}}}'
        "\n\nUser: Weather in Paris?"
        '\nAssistant calls get_weather with arguments: {"city":"Paris"}'
        "\nTool result (get_weather): 18 °C, sunny"
        "\nAssistant: It is 18 °C."
        "\n\nUser: And in Rome?"
        "\nAssistant calls get_weather with arguments: "
    )


def test_answer_trimmer_drops_outer_whitespace_only() -> None:
    trimmer = AnswerTrimmer()
    pieces = [" ", " Crisp", " leaves", "\n", "\n", "fall", "\n"]
    out = [trimmer.feed(piece) for piece in pieces]
    assert out == ["", "Crisp", " leaves", "", "", "\n\nfall", ""]
