"""The Redis hub (``SSECHAT_HUB=redis``): every worker (and replica) can resume or cancel
every stream.

Same semantics as the in-process hub (``memory.py`` is the reference),
local-first: the worker that runs a generation keeps its events in memory
(the shared runner and ``EventLog``) and serves its own readers from there,
exactly as the memory hub does, while ``writer.py`` copies them to Redis in
batches (durability, resume and cancel from any worker). Readers on other
workers follow the stream through ``reader.py`` (one shared XREAD per
worker); ``signals.py`` carries cancel, the byte bound and abandonment
between workers. Once a finished stream is all in Redis, its worker drops
its copy (readers already attached keep it): later resumes, there too, read
Redis.

Keys (``P`` = key prefix, default ``ssechat``; ``{id}`` = stream id)
-----------------------------------------------------------------------
- ``P:stream:{id}:events``: a Redis Stream. Event seq N is the entry with
  the explicit id ``N-0``: a fragment as fields ``t`` (template index) and
  ``d`` (its part), a whole event as ``d`` (payload) and, when named, ``e``
  (SSE event name); after the last event N the entry ``N-1`` with field
  ``end`` (the end reason) marks the end. Explicit ids make Redis itself
  refuse a duplicate or out-of-order seq, make "everything after
  Last-Event-ID" a plain ``XREAD … {after}-0``, and make a retried write
  idempotent.
- ``P:stream:{id}:meta``: hash ``owner`` (the API-key tag, "" when open),
  ``worker`` (id of the worker that runs it), ``state`` (live | done),
  ``seq`` (last written seq), ``nt`` and ``t0``, ``t1`` … (its templates, as
  JSON ``[event, prefix, suffix]``), ``nn`` and ``n0``, ``n1`` … (the event
  names of its whole events, for the writer's batches), ``attached`` (1 once a reader on another
  worker subscribed), ``cancel`` (a stop request: ``cancelled``, or ``full``
  for the byte bound), ``orphan`` (JSON list of the payloads that end the
  stream if its worker dies: the Generation's closing events for "error").
- ``P:stream:{id}:subs``: sorted set, reader (on another worker than the
  stream's) → lease deadline (ms), renewed by its worker's heartbeat.
- ``P:streams``: sorted set, stream id → expiry deadline (ms), the index the
  bounds and the pruning use; ``P:started``: live stream → start time (the
  byte bound ends the newest); ``P:finished``: stream id → finish time (ms),
  the eviction order; ``P:sizes`` (hash id → bytes) and ``P:bytes`` (total);
  ``P:ending`` (hash: the live streams the byte bound is ending → the bytes
  each held then) and ``P:ending_bytes`` (their total).
- ``P:worker:{wid}``: a worker's liveness key (``PX`` lease), and, as a
  pub/sub channel of the same name, its control channel (``signals.py``).
  ``P:wake:{wid}``: a one-entry stream that interrupts its shared XREAD.

Every key of a stream carries the same ``PEXPIREAT`` as its score in
``P:streams``: while live, ``max(stream_ttl_s, 30 s)`` from the last
write or heartbeat; once finished, ``stream_ttl_s`` from the end. The index
keys have no TTL: every start and heartbeat prunes them by deadline. Every
multi-key change is one Lua script (``*.lua`` here; atomic; times from the
server's ``TIME``). ``max_buffered_bytes`` counts the bytes stored (parts,
payloads, names, templates) and holds while streams grow (``append.lua``).

Redis outages
-------------
Requests (start, a remote subscribe, cancel) retry connection errors for
``RETRY_S`` and then raise ``HubUnavailable`` (503 before the response
starts; mid-stream an error event). Readers on the stream's own worker read
memory and do not notice. Readers elsewhere fail with ``HubUnavailable``
once their worker's XREAD has failed for ``RETRY_S``. The generation goes on
while it still has readers on its worker (or runs in the background); without
them it is stopped (reason ``error``) after ``max(resume_grace_s, RETRY_S)``.
Its events wait in memory and are written, in order and exactly once, when
Redis is back, so a client that resumes gets everything. If Redis came back
empty (restart without persistence) the stream is gone: the generation is
stopped and resuming answers 404.

A crash loses what its worker had not yet written (at most one batch: the
writer sends every ``FLUSH_INTERVAL_S``): its own readers may have seen events that a resume
elsewhere then finds replaced by the stream's error ending (``probe.lua``);
ids a client claims are still never replayed.

Modules
-------
``hub.py`` (the ``StreamHub``), ``writer.py`` (this worker's streams into
Redis), ``reader.py`` (other workers' streams for this worker's readers),
``signals.py`` (control channel, heartbeat, abandonment), ``batch.py`` (the
requests' calls, pipelined), ``connection.py`` (connections, scripts, retries),
``owned.py`` (a generation this worker runs), ``*.lua`` (every multi-key change).
"""

from backend.hub.redis.hub import RedisHub

__all__ = ["RedisHub"]
