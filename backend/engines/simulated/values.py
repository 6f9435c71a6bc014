"""JSON values that validate against a JSON Schema, drawn from a seeded generator.

The simulated engine writes tool-call arguments and ``json_schema`` answers
with this. It understands what tool and structured-output schemas use:
``type`` (or a list of types), ``enum``/``const``, objects (``properties``,
``required``, ``additionalProperties``, ``minProperties``), arrays
(``items``, ``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems``),
strings (``minLength``/``maxLength``, common ``format``s, ``pattern`` by
walking the regular expression), numbers (bounds, exclusive bounds,
``multipleOf``), ``anyOf``/``oneOf``/``allOf`` and local ``$ref``s
(``#/$defs/…``, recursion bounded). Every value is checked with
``jsonschema`` and drawn again if it fails; a schema no draw satisfies
raises ``Unsatisfiable``, so the engine refuses it up front instead of
writing arguments that would not validate.
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from backend.engines.json_schema import InvalidSchema, schema_key, validator
from backend.engines.simulated.patterns import PatternError, string_matching

_DRAWS = 24  # attempts before a schema is declared unsatisfiable
_MAX_DEPTH = 6  # nesting (and $ref recursion) beyond which optional parts are left out

_WORDS = (
    "stream",
    "event",
    "token",
    "resume",
    "server",
    "client",
    "buffer",
    "café",
    "流式",
    "signal",
)
# Plausible strings for common property names.
_HINTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("city", "location", "place", "town"), ("Paris", "Tokyo", "São Paulo", "Nairobi", "Oslo")),
    (("country",), ("France", "Japan", "Brazil", "Kenya", "Norway")),
    (("name", "user", "author", "person"), ("Ada", "Grace", "Linus", "Zoë", "Ken")),
    (("query", "search", "question", "prompt", "text", "topic"), ("server-sent events",)),
    (("unit",), ("celsius", "fahrenheit")),
    (("language", "lang", "locale"), ("en", "fr", "ja")),
    (("currency",), ("EUR", "USD", "JPY")),
    (("color", "colour"), ("teal", "amber", "violet")),
)


class Unsatisfiable(ValueError):
    """No value was found that validates against the schema."""


class _Generator:
    def __init__(self, root: Mapping[str, Any] | bool, rng: random.Random) -> None:
        self._root = root
        self._rng = rng
        self._hints: dict[str, tuple[str, ...]] = {}  # property name -> the strings it suggests

    def value(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        if schema is True or schema == {}:
            return self._string({}, name)
        if schema is False or not isinstance(schema, Mapping):
            raise Unsatisfiable("a schema that accepts nothing")
        if "$ref" in schema:
            return self.value(self._resolve(schema["$ref"]), name, depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            if not schema["enum"]:
                raise Unsatisfiable("an empty enum")
            return self._rng.choice(list(schema["enum"]))
        if "allOf" in schema:
            return self.value(_merge(schema), name, depth)
        for key in ("oneOf", "anyOf"):
            if schema.get(key):
                branches = list(schema[key])
                branch = self._rng.choice(branches)
                rest = {k: v for k, v in schema.items() if k != key}
                merged = _merge({"allOf": [rest, branch]}) if rest else branch
                return self.value(merged, name, depth)
        kind = self._type(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self._rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name)

    def _type(self, schema: Mapping[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [item for item in kind if item != "null"]
            return str(concrete[0]) if concrete else "null"
        if isinstance(kind, str):
            return kind
        if any(key in schema for key in ("properties", "required", "additionalProperties")):
            return "object"
        if any(key in schema for key in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(key in schema for key in ("minimum", "maximum", "multipleOf")):
            return "number"
        if "not" in schema:  # what is excluded may be a string: vary the type between draws
            return self._rng.choice(("string", "integer", "boolean", "null", "object", "array"))
        return "string"

    def _resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise Unsatisfiable(f"only local $refs are followed, not {ref!r}")
        node: Any = self._root
        for raw in ref[1:].split("/")[1:]:
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise Unsatisfiable(f"$ref {ref!r} points at nothing")
        return node

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = [key for key in schema.get("required") or () if isinstance(key, str)]
        result: dict[str, Any] = {}
        least = int(schema.get("minProperties") or 0)
        for key, sub in properties.items():
            wanted = key in required or (depth < _MAX_DEPTH and self._rng.random() < 0.5)
            if wanted or len(result) + len(required) < least:
                result[key] = self.value(sub, key, depth + 1)
        for key in required:
            if key not in result:
                extra = schema.get("additionalProperties", True)
                result[key] = self.value(extra if extra is not False else {}, key, depth + 1)
        extra = schema.get("additionalProperties", True)
        while len(result) < least and extra is not False:
            key = f"{self._rng.choice(_WORDS[:6])}_{len(result)}"
            result[key] = self.value({} if extra is True else extra, key, depth + 1)
        return result

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        prefix = list(schema.get("prefixItems") or ())
        items = schema.get("items", {})
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        natural = self._rng.randint(1, 3) if depth < _MAX_DEPTH else 0
        count = max(low, natural, 0)
        if high is not None:
            count = min(count, int(high))
        result: list[Any] = []
        for position in range(count):
            sub = prefix[position] if position < len(prefix) else items
            if sub is False:
                break
            for _attempt in range(_DRAWS):
                candidate = self.value(sub, name, depth + 1)
                if not schema.get("uniqueItems") or candidate not in result:
                    break
            result.append(candidate)
        return result

    def _integer(self, schema: Mapping[str, Any]) -> int:
        bounds = _bounds(schema, integer=True)
        low, high = int(bounds[0]), int(bounds[1])
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            first, last = -(-low // step), high // step
            if first > last:
                raise Unsatisfiable("no multiple of multipleOf within the bounds")
            return self._rng.randint(first, last) * step
        return self._rng.randint(low, high)

    def _number(self, schema: Mapping[str, Any]) -> float | int:
        low, high = _bounds(schema, integer=False)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            first, last = math.ceil(low / step), math.floor(high / step)
            if first > last:
                raise Unsatisfiable("no multiple of multipleOf within the bounds")
            multiple = self._rng.randint(first, last) * step
            return multiple if isinstance(multiple, int) else round(multiple, 10)
        value = round(self._rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def _string(self, schema: Mapping[str, Any], name: str) -> str:
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                text = string_matching(pattern, self._rng)
            except PatternError as error:
                raise Unsatisfiable(f"pattern {pattern!r}: {error}") from None
        else:
            form = schema.get("format")
            text = (self._formatted(form) if form is not None else None) or self._plain(name)
        low = int(schema.get("minLength") or 0)
        high = schema.get("maxLength")
        while len(text) < low:
            text += self._rng.choice(string.ascii_lowercase)
        if high is not None and len(text) > int(high):
            text = text[: int(high)]
        return text

    def _plain(self, name: str) -> str:
        hinted = self._hints.get(name)
        if hinted is None:
            lowered = name.lower()
            hinted = next((v for keys, v in _HINTS if any(k in lowered for k in keys)), _WORDS)
            self._hints[name] = hinted
        if hinted is not _WORDS:
            return self._rng.choice(hinted)
        return " ".join(self._rng.choice(_WORDS) for _ in range(self._rng.randint(1, 3)))

    def _formatted(self, form: Any) -> str | None:
        """A string of a common ``format``; None for no format or another one."""
        rng = self._rng
        if form in ("date-time", "date", "time"):
            day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            return {"date-time": f"{day}T{clock}Z", "date": day, "time": f"{clock}Z"}[form]
        word = _WORDS[rng.randrange(6)]
        if form == "email":
            return f"{rng.choice(('ada', 'grace', 'ken'))}@example.com"
        if form in ("uri", "url"):
            return f"https://example.com/{word}"
        if form == "hostname":
            return f"{word}.example.com"
        if form == "ipv4":
            return f"192.0.2.{rng.randint(1, 254)}"
        if form == "ipv6":
            return f"2001:db8::{rng.randint(1, 0xFFFF):x}"
        if form == "uuid":
            digits = f"{rng.getrandbits(128):032x}"
            return "-".join((digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]))
        if form == "duration":
            return f"PT{rng.randint(1, 59)}M"
        return None


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
    """The closed range a number must fall in (exclusive bounds moved inward)."""

    def number(key: str) -> float | None:
        value = schema.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    nudge = 1.0 if integer else 0.01
    lows = [
        v for v in (number("minimum"), _shift(number("exclusiveMinimum"), nudge)) if v is not None
    ]
    highs = [
        v for v in (number("maximum"), _shift(number("exclusiveMaximum"), -nudge)) if v is not None
    ]
    low = max(lows) if lows else None
    high = min(highs) if highs else None
    if low is None:
        low = 0.0 if high is None else min(0.0, high - 100)
    if high is None:
        high = max(low + 100, 100.0)
    if integer:
        low, high = float(math.ceil(low)), float(math.floor(high))
    if low > high:
        raise Unsatisfiable("the bounds leave no number")
    return low, high


def _shift(value: float | None, by: float) -> float | None:
    return None if value is None else value + by


def _merge(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``allOf`` folded into one schema (properties and ``required`` joined; for
    other keywords the last word wins). Validation catches what this misses."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf") or ():
        if not isinstance(part, Mapping):
            continue
        part = _merge(part) if "allOf" in part else part
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
            else:
                merged[key] = value
    return merged


def value_for(schema: Any, rng: random.Random) -> Any:
    """A value valid against ``schema``; raises ``Unsatisfiable``."""
    try:
        checker = validator(schema)
    except InvalidSchema as error:
        raise Unsatisfiable(f"not a JSON Schema: {error}") from None
    generator = _Generator(schema, rng)
    problem = "no draw validated"
    for _attempt in range(_DRAWS):
        try:
            candidate = generator.value(schema)
        except RecursionError:
            raise Unsatisfiable("the schema recurses without end") from None
        failure = next(iter(checker.iter_errors(candidate)), None)
        if failure is None:
            return candidate
        problem = failure.message
    raise Unsatisfiable(problem)


def unsatisfiable(schema: Any) -> str | None:
    """Why no value for ``schema`` can be drawn (None: values can be), found by one
    trial draw and kept per schema, so an engine can refuse the schema up front
    without drawing for every request."""
    return _trial(schema_key(schema))


@lru_cache(maxsize=256)
def _trial(text: str) -> str | None:
    try:
        value_for(json.loads(text), random.Random(0))
    except Unsatisfiable as error:
        return str(error)
    return None
