"""JSON values drawn for a JSON Schema: valid for every seed, or refused up front."""

from __future__ import annotations

import random
import re
from typing import Any

import jsonschema
import pytest

from backend.engines.simulated.patterns import PatternError, string_matching
from backend.engines.simulated.values import Unsatisfiable, value_for

SCHEMAS: list[dict[str, Any]] = [
    {"type": "string", "minLength": 12, "maxLength": 14},
    {"type": "string", "format": "date-time"},
    {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
    {"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 3},
    {"type": "integer", "minimum": 10, "multipleOf": 7},
    {"type": "number", "minimum": 0.1, "maximum": 0.2},
    {"type": "number", "multipleOf": 0.25, "maximum": 2},
    {"type": ["null", "boolean"]},
    {"enum": ["a", 1, None, {"k": [1]}]},
    {"const": {"fixed": True}},
    {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": False},
    {"type": "array", "items": {"enum": [1, 2, 3]}, "uniqueItems": True, "minItems": 3},
    {"type": "object", "minProperties": 3, "additionalProperties": {"type": "integer"}},
    {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    {"oneOf": [{"type": "integer", "maximum": 5}, {"type": "integer", "minimum": 3}]},
    {"allOf": [{"properties": {"x": {"type": "integer"}}, "required": ["x"]}, {"required": ["y"]}]},
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["label"],
            }
        },
        "$ref": "#/$defs/node",
    },
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"d": {"type": "string", "format": "email"}},
        "type": "object",
        "properties": {"e": {"$ref": "#/definitions/d"}},
        "required": ["e"],
    },
    {"not": {"type": "string"}},
    {},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_values_validate_for_every_seed(schema: dict[str, Any]) -> None:
    for seed in range(25):
        value = value_for(schema, random.Random(seed))
        jsonschema.validate(value, schema)
        assert value_for(schema, random.Random(seed)) == value  # deterministic


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": 5, "maximum": 4},
        {"type": "integer", "minimum": 1, "maximum": 2, "multipleOf": 5},
        {"type": "string", "pattern": "(?<=a)b"},
        {"$ref": "https://example.com/remote.json"},
        {"$ref": "#/$defs/missing"},
        {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]},
        {"enum": []},
        {"type": "strnig"},
    ],
)
def test_unsatisfiable_schemas_are_reported(schema: dict[str, Any]) -> None:
    with pytest.raises(Unsatisfiable):
        value_for(schema, random.Random(0))


@pytest.mark.parametrize(
    "pattern",
    [
        r"^\d{3}-\d{2}-\d{4}$",
        r"^(?:[a-z0-9]+\.)+[a-z]{2,}$",
        r"^(ab|cd)\1$",
        r"^[^\W\d]+$",
        r"^\S+@\S+$",
        r"^[\u4e00-\u9fff]{2}$",
        r"colou?r",
        r"^(?i:yes|no)$",
    ],
)
def test_strings_match_their_pattern(pattern: str) -> None:
    for seed in range(20):
        assert re.search(pattern, string_matching(pattern, random.Random(seed)))


def test_patterns_beyond_the_generator_are_refused() -> None:
    for pattern in (r"(?=x)y", r"[", r"(a)(?(1)b|c)"):
        with pytest.raises(PatternError):
            string_matching(pattern, random.Random(0))
