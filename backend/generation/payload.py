"""JSON text for payloads: the one serializer every renderer uses.

Compact separators and real UTF-8 (no ``\\uXXXX`` for non-ASCII): the
smallest wire form, and what OpenAI and Anthropic send. ``escape`` is the
JSON string literal of one text, the hot path of every content delta.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

# encode_basestring is json.dumps(text, ensure_ascii=False) minus building an
# encoder per call: the same bytes at a third of the cost.
escape = encode_basestring


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
