"""The ``openai`` engine: stream from any OpenAI-compatible upstream (OpenAI, vLLM,
Ollama, llama.cpp server, TGI) through httpx + httpx-sse, with nothing lost.

- ``payload``: ``GenerationRequest`` → request body (every field, unknown ones too);
- ``chunks``: ``chat.completion.chunk`` → ``TokenDelta`` (content, reasoning,
  tool calls, refusal, logprobs, finish reason, usage);
- ``faults``: every upstream fault as an ``UpstreamError`` with a stable code;
- ``transport``: the HTTP both streams share (streamed POSTs read as events);
- ``engine``: ``OpenAIUpstreamEngine``, the stream itself;
- ``responses``: the native Responses relay, for an upstream that speaks that API.
"""

from backend.engines.openai.engine import (
    DEFAULT_MODEL,
    OpenAIUpstreamEngine,
    estimate_prompt_tokens,
)
from backend.engines.openai.faults import UpstreamError

__all__ = ["DEFAULT_MODEL", "OpenAIUpstreamEngine", "UpstreamError", "estimate_prompt_tokens"]
