"""GBNF grammars for llama.cpp's grammar-constrained sampling (llama-cpp-python's
``LlamaGrammar``): a JSON answer, a JSON Schema, or one of a few tool names.

Grammars are built as text here (pure, testable without a model); the worker
turns the text into a ``LlamaGrammar``. Schemas go through llama-cpp-python's
port of llama.cpp's json-schema-to-grammar converter, with one fix: its string
characters admit raw control characters (a newline inside a string), which
is not JSON; they are excluded as in llama.cpp's own JSON grammar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from backend.engines.base import EngineError, ResponseFormat, ToolSpec

# The converter's string character rule, and the JSON one (no raw control characters).
_LOOSE_CHAR: Final = (
    r'char ::= [^"\\] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)
_JSON_CHAR: Final = (
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] '
    r"[0-9a-fA-F] [0-9a-fA-F])"
)
# Any JSON object (json_object mode, or a tool without parameters).
_ANY_OBJECT: Final[Mapping[str, Any]] = {"type": "object"}


class SchemaError(ValueError):
    """A JSON Schema the converter cannot turn into a grammar."""


def schema_grammar(schema: Mapping[str, Any]) -> str:
    """The grammar of the JSON documents ``schema`` accepts."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        text: str = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises whatever it meets (KeyError, …)
        raise SchemaError(f"{type(exc).__name__}: {exc}") from exc
    return text.replace(_LOOSE_CHAR, _JSON_CHAR)


def content_grammar(response_format: ResponseFormat) -> str:
    """The grammar of an answer in ``response_format`` (json_object or json_schema)."""
    if response_format.type == "json_schema" and response_format.schema is not None:
        return schema_grammar(response_format.schema)
    # json_object, or json_schema without a schema: any JSON object.
    return schema_grammar(_ANY_OBJECT)


def arguments_grammar(tool: ToolSpec) -> str:
    """The grammar of the arguments of ``tool`` (a JSON object)."""
    return schema_grammar(tool.parameters or _ANY_OBJECT)


def names_grammar(names: Sequence[str]) -> str:
    """One of ``names``, each after a space (``Assistant calls NAME``)."""
    # A JSON string literal (ASCII, \\uXXXX escapes) is a valid GBNF literal.
    return "root ::= " + " | ".join(json.dumps(" " + name) for name in names)


def check_grammars(
    tools: Sequence[ToolSpec], response_format: ResponseFormat | None, engine: str
) -> None:
    """Raise a 400 naming the field whose schema cannot become a grammar."""
    for tool in tools:
        try:
            arguments_grammar(tool)
        except SchemaError as exc:
            raise _bad_schema("tools", engine, f"tool {tool.name!r}: {exc}") from None
    if response_format is not None and response_format.type != "text":
        try:
            content_grammar(response_format)
        except SchemaError as exc:
            raise _bad_schema("response_format", engine, str(exc)) from None


def _bad_schema(param: str, engine: str, why: str) -> EngineError:
    return EngineError(
        f"the {engine} engine cannot constrain generation to this JSON Schema ({why})",
        error_type="invalid_request_error",
        code="unsupported_parameter",
        param=param,
    )
