"""The Responses store in Redis: every worker (and replica) reads every response.

One hash per response, ``P:response:{id}`` (``P`` = key prefix, default
``ssechat``): ``owner`` (the API-key tag, "" when open), ``response`` (the
Response object, JSON) and ``context`` (the conversation's input items,
JSON), expiring ``ttl_s`` after the last write. ``update`` and ``delete``
are scripts: an update of a deleted or expired record writes nothing, and a
delete checks the owner in the same step.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.generation.payload import dumps
from backend.store.base import JSONObject, StoredResponse, store_unavailable

# KEYS: record; ARGV: response JSON, ttl ms
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'response', ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# KEYS: record; ARGV: owner
_DELETE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner or owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


class RedisResponseStore:
    kind = "redis"

    def __init__(self, *, redis_url: str, ttl_s: float, key_prefix: str = "ssechat") -> None:
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._prefix = key_prefix + ":response:"
        self._redis: Redis = Redis.from_url(
            redis_url,
            decode_responses=True,
            encoding_errors="replace",
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
        )
        self._update = self._redis.register_script(_UPDATE)
        self._delete = self._redis.register_script(_DELETE)

    @classmethod
    async def connect(cls, *, redis_url: str, ttl_s: float) -> RedisResponseStore:
        store = cls(redis_url=redis_url, ttl_s=ttl_s)
        try:
            await store._redis.ping()
        except (RedisError, OSError) as error:
            await store.aclose()
            raise store_unavailable(f"Redis: {error}") from error
        return store

    def _key(self, response_id: str) -> str:
        return self._prefix + response_id

    async def create(
        self, response_id: str, owner: str | None, response: JSONObject, context: list[JSONObject]
    ) -> None:
        key = self._key(response_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={
                        "owner": owner or "",
                        "response": dumps(response),
                        "context": dumps(context),
                    },
                )
                pipe.pexpire(key, self._ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as error:
            raise store_unavailable(f"Redis: {error}") from error

    async def update(self, response_id: str, response: JSONObject) -> None:
        try:
            await self._update(keys=[self._key(response_id)], args=[dumps(response), self._ttl_ms])
        except (RedisError, OSError) as error:
            raise store_unavailable(f"Redis: {error}") from error

    async def load(self, response_id: str, owner: str | None) -> StoredResponse | None:
        try:
            values: list[Any] = await self._redis.hmget(
                self._key(response_id), ["owner", "response", "context"]
            )
        except (RedisError, OSError) as error:
            raise store_unavailable(f"Redis: {error}") from error
        stored_owner, response, context = values
        if stored_owner is None or stored_owner != (owner or "") or response is None:
            return None
        return StoredResponse(json.loads(response), json.loads(context or "[]"))

    async def delete(self, response_id: str, owner: str | None) -> bool:
        try:
            deleted = await self._delete(keys=[self._key(response_id)], args=[owner or ""])
        except (RedisError, OSError) as error:
            raise store_unavailable(f"Redis: {error}") from error
        return bool(deleted)

    async def aclose(self) -> None:
        await self._redis.aclose()
