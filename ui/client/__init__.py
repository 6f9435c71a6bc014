"""The UI's only way to the backend: an async httpx + httpx-sse client of the HTTP contract.

The backend and this package share nothing but the wire (DESIGN.md, "HTTP
contract"); only this package parses SSE on the UI side. ``models`` holds
the data, ``errors`` what is raised, ``chat`` / ``responses`` / ``messages``
parse one dialect each, ``stream`` is the one reconnect loop, ``api`` the
client itself.
"""

from ui.client.api import ChatClient, make_http_client
from ui.client.dialect import Dialect, dialect_for
from ui.client.errors import (
    BackendHTTPError,
    BackendUnreachableError,
    ChatClientError,
    ConnectionLostError,
    StreamEventError,
)
from ui.client.models import (
    DIALECT_NAMES,
    Answer,
    AnswerMetrics,
    ChatRequest,
    Delta,
    DeltaKind,
    DialectName,
    RawEvent,
    ToolCall,
    Usage,
)
from ui.client.stream import ChatStream

__all__ = [
    "DIALECT_NAMES",
    "Answer",
    "AnswerMetrics",
    "BackendHTTPError",
    "BackendUnreachableError",
    "ChatClient",
    "ChatClientError",
    "ChatRequest",
    "ChatStream",
    "ConnectionLostError",
    "Delta",
    "DeltaKind",
    "Dialect",
    "DialectName",
    "RawEvent",
    "StreamEventError",
    "ToolCall",
    "Usage",
    "dialect_for",
    "make_http_client",
]
