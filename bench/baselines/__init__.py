"""Baseline SSE servers the throughput and many-streams benchmarks compare ours against.

Each serves ``POST /v1/chat/completions`` with the same events (payloads
captured from our server, read from ``BENCH_PAYLOAD_FILE``) so only the
framework's streaming path differs. ``floor`` (bench.many_streams) also
paces them at our token rate: no framework at all, the least any server
streaming at that rate must do.
"""
