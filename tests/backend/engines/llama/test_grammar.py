"""Grammars for constrained sampling (backend/engines/llama/grammar.py), as text."""

from __future__ import annotations

import pytest

from backend.engines.base import EngineError, ResponseFormat, ToolSpec
from backend.engines.llama.grammar import (
    SchemaError,
    check_grammars,
    content_grammar,
    names_grammar,
    schema_grammar,
)

pytest.importorskip("llama_cpp", reason="the converter ships with llama-cpp-python")


def test_names_grammar_is_one_literal_per_tool() -> None:
    assert names_grammar(["get_weather", 'we"ird']) == ('root ::= " get_weather" | " we\\"ird"')


def test_schema_strings_exclude_raw_control_characters() -> None:
    grammar = schema_grammar({"type": "object", "properties": {"city": {"type": "string"}}})
    char = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    # A raw newline inside a JSON string is not JSON.
    assert r"\x00-\x1F" in char
    assert "root ::=" in grammar


def test_json_object_is_any_object() -> None:
    assert content_grammar(ResponseFormat("json_object")) == content_grammar(
        ResponseFormat("json_schema", name="x", schema=None)
    )


def test_a_schema_the_converter_cannot_take_is_a_400_naming_the_field() -> None:
    bad = {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}}
    with pytest.raises(SchemaError):
        schema_grammar(bad)
    with pytest.raises(EngineError) as caught:
        check_grammars((ToolSpec("f", parameters=bad),), None, "llama")
    assert (caught.value.param, caught.value.code) == ("tools", "unsupported_parameter")
    with pytest.raises(EngineError) as caught:
        check_grammars((), ResponseFormat("json_schema", "x", bad), "llama")
    assert caught.value.param == "response_format"
