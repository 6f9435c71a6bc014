"""Baseline SSE servers the throughput benchmark compares ours against.

Each serves ``POST /v1/chat/completions`` with the same events (payloads
captured from our server, read from ``BENCH_PAYLOAD_FILE``) so only the
framework's streaming path differs.
"""
