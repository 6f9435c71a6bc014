"""JSON Schemas checked and compiled once: the one place ``jsonschema`` is called.

Checking a schema against its metaschema costs far more than streaming the
answer, and the same tool definitions and response formats arrive again with
every turn of a conversation, so the outcome is kept per schema text (a
bounded cache, like ``get_settings``'s). Validators are read-only once built,
so one is shared by every request that brings the same schema.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for

_CACHED_SCHEMAS = 512


class InvalidSchema(ValueError):
    """Not a JSON Schema; the message says why."""


def schema_key(schema: Any) -> str:
    """The canonical text of a schema (the cache key)."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=_CACHED_SCHEMAS)
def _compile(text: str) -> Validator | str:
    schema: Any = json.loads(text)
    if not isinstance(schema, dict):
        return "it must be an object"
    validator_class = validator_for(schema, default=Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(part) for part in error.path)
        return error.message + (f" (at '{where}')" if where else "")
    return validator_class(schema)


def validator(schema: Any) -> Validator:
    """A validator for ``schema`` (checked against its own ``$schema`` dialect,
    Draft 2020-12 by default). Raises ``InvalidSchema``."""
    compiled = _compile(schema_key(schema))
    if isinstance(compiled, str):
        raise InvalidSchema(compiled)
    return compiled


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a JSON Schema; None when it is one."""
    try:
        validator(schema)
    except InvalidSchema as error:
        return str(error)
    return None
