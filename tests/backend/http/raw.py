"""Raw-socket clients for hostile-input tests: what httpx will not send.

Header bombs, trickled headers and bodies, silent connections, and the
server's resident memory (``/proc/<pid>/status``).
"""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

__all__ = [
    "address",
    "connect",
    "metric",
    "read_one",
    "read_response",
    "resident_kib",
    "send_until_answered",
    "status_of",
    "wait_closed",
    "wait_until",
]


def address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def connect(base_url: str, timeout_s: float = 10.0) -> socket.socket:
    return socket.create_connection(address(base_url), timeout=timeout_s)


def resident_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def read_response(sock: socket.socket, timeout_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout_s``)."""
    sock.settimeout(timeout_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def read_one(sock: socket.socket, timeout_s: float = 10.0) -> bytes:
    """One whole response with a Content-Length, leaving the connection open."""
    sock.settimeout(timeout_s)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed mid-response: {received[:200]!r}")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length, f"no content-length: {head!r}"
    while len(body) < int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("closed mid-body")
        body += chunk
    return head + b"\r\n\r\n" + body


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3})", response)
    assert match, f"not an HTTP response: {response[:200]!r}"
    return int(match.group(1))


def send_until_answered(
    sock: socket.socket, head: bytes, filler: int, chunk: int = 1 << 20, timeout_s: float = 30.0
) -> bytes:
    """Send ``head`` then up to ``filler`` bytes of ``a``, stopping as soon as the
    server answers (as a careful client does); return the whole answer."""
    sock.sendall(head)
    block = b"a" * chunk
    sent = 0
    deadline = time.monotonic() + timeout_s
    while sent < filler and time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sent += sock.send(block[: min(chunk, filler - sent)])
        except (BrokenPipeError, ConnectionResetError):
            break
    return read_response(sock, max(0.1, deadline - time.monotonic()))


def wait_closed(sock: socket.socket, timeout_s: float) -> float:
    """Seconds until the server closes ``sock`` (reading and dropping what it sends)."""
    started = time.monotonic()
    sock.settimeout(timeout_s)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def metric(base_url: str, name: str, headers: dict[str, str] | None = None) -> float:
    """One unlabelled series of ``/metrics``."""
    text = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10).text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))
