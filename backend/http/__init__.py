"""The HTTP layer in front of every route: our uvicorn protocol and server
config (header bytes, header and body read timeouts, connection cap),
ASGI middleware (body size), error replies, and disconnect-aware awaiting.

Nothing here knows a route or a dialect's payloads; it only decides whether
a request gets to the app at all, and how it is refused.
"""
