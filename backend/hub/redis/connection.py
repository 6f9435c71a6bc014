"""Connections to Redis, the scripts, and riding out connection errors.

A worker holds four connections whatever its load: one for the pipelines of
its requests' calls (``batch.py``), one for the writer's batches, one for the
shared XREAD of the readers it serves, and one for its control channel
(pub/sub). Every connection is named ``ssechat-hub:{worker}`` (``CLIENT
LIST`` shows who holds what).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from importlib.resources import files
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.hub.base import HubUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long a request (start, subscribe, cancel) or the shared reader rides out
# connection errors before it answers "unavailable".
RETRY_S = 2.0
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
# Socket timeout for ordinary commands (a hung Redis, not a slow one).
COMMAND_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
# Connections of the command client: the batches' pipelines and the control channel.
COMMAND_CONNECTIONS = 2
UNAVAILABLE = "The stream store (Redis) is unavailable; retry shortly."


def transient(error: BaseException) -> bool:
    # BusyLoadingError (Redis still loading its data) is a ConnectionError.
    return isinstance(error, RedisConnectionError | RedisTimeoutError)


def redact(url: str) -> str:
    """The URL without credentials (user info, and a query that may hold ``password=``)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _options(worker_id: str) -> dict[str, Any]:
    return {
        # A lone surrogate from an engine becomes "?", as the SSE encoder would write it.
        "encoding_errors": "replace",
        "protocol": 2,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        # Retries are ours (they need to know what is idempotent and for how long).
        "retry": Retry(NoBackoff(), 0),
        "client_name": f"ssechat-hub:{worker_id}",
    }


def command_client(url: str, worker_id: str) -> Redis:
    """The worker's command client (text replies): the batches' pipelines take one
    connection at a time, the control channel another."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=COMMAND_CONNECTIONS,
        timeout=COMMAND_TIMEOUT_S,
        decode_responses=True,
        socket_timeout=COMMAND_TIMEOUT_S,
        **_options(worker_id),
    )
    return Redis(connection_pool=pool)


def dedicated_client(url: str, worker_id: str, *, socket_timeout: float) -> Redis:
    """One connection of its own, for one task at a time."""
    return Redis.from_url(
        url,
        single_connection_client=True,
        decode_responses=True,
        socket_timeout=socket_timeout,
        **_options(worker_id),
    )


def _lua(name: str) -> str:
    return files("backend.hub.redis").joinpath(name).read_text(encoding="utf-8")


class Scripts:
    """The hub's Lua scripts (``*.lua`` beside this module, each after ``common.lua``)."""

    def __init__(self, client: Redis) -> None:
        common = _lua("common.lua")

        def load(name: str) -> AsyncScript:
            return client.register_script(common + _lua(name))

        self.admit = load("admit.lua")
        self.append = load("append.lua")
        self.attach = load("attach.lua")
        self.templates = load("templates.lua")
        self.detach = load("detach.lua")
        self.count = load("count.lua")
        self.cancel = load("cancel.lua")
        self.delete = load("delete.lua")
        self.probe = load("probe.lua")
        self.heartbeat = load("heartbeat.lua")
        self.wake = load("wake.lua")
        self.all = [
            self.admit,
            self.append,
            self.attach,
            self.templates,
            self.detach,
            self.count,
            self.cancel,
            self.delete,
            self.probe,
            self.heartbeat,
            self.wake,
        ]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for their end. A task parked in a redis-py call can
    swallow a cancel that lands as the call completes (CPython gh-86296, in
    ``asyncio.wait_for``), so cancel again until it is really done."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.1)


async def retrying(
    operation: Callable[[], Awaitable[T]], what: str, *, window_s: float = RETRY_S
) -> T:
    """Run an idempotent Redis operation, riding out connection errors for ``window_s``;
    then ``HubUnavailable``."""
    deadline = time.monotonic() + window_s
    backoff = BACKOFF_MIN_S
    while True:
        try:
            return await operation()
        except RedisError as error:
            if not transient(error) or time.monotonic() + backoff > deadline:
                logger.warning("redis hub: %s failed: %s", what, error)
                raise HubUnavailable(UNAVAILABLE) from error
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
