"""Field types every dialect's request schema shares (pydantic, validated on entry)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: any number without a fractional part (``1.0`` too),
    but not a boolean or a numeric string, which pydantic's lax mode would coerce
    (``"seed": false`` was accepted; found by schemathesis)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


JSONInt = Annotated[int, BeforeValidator(_json_integer)]
# strict: a JSON number for a float (an int is fine), true/false for a boolean.
StrictFloat = Annotated[float, Field(strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]
