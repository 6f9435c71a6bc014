"""The Redis hub (``SSECHAT_HUB=redis``): streams shared by every worker and replica.

``hub.py`` is the ``StreamHub``; ``writer.py`` copies a worker's streams
into Redis, ``reader.py`` follows other workers' streams (one XREAD per
worker), ``signals.py`` carries cancel, the byte bound and abandonment
between workers, ``connection.py`` holds the connections and scripts
(``*.lua``).
"""

from backend.hub.redis.hub import RedisHub

__all__ = ["RedisHub"]
