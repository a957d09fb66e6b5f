"""A closed-loop HTTP load generator over a unix socket: N keep-alive connections, one request in flight each.

Runs in its own process (``python -m bench.load SOCKET PATH``) with one thread and a ``selectors``
loop, so the client is as cheap as a Python client gets and the bench's own threads do not
steal its time slices. Prints one JSON object: requests per second, p50 and p99 latency in ms,
errors (non-2xx answers or closed connections). The same client measures every target.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time

__all__ = ["run_load"]


def _response_end(buf: bytes | bytearray) -> tuple[int, int]:
    """(bytes of the first complete response, its status) or (0, 0) while incomplete."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return 0, 0
    head = bytes(buf[:head_end]).lower()
    status = int(head[9:12])
    marker = head.find(b"\r\ncontent-length:")
    if marker >= 0:
        line_end = head.find(b"\r\n", marker + 2)
        length = int(head[marker + 17 : line_end if line_end >= 0 else None].strip())
        total = head_end + 4 + length
        return (total, status) if len(buf) >= total else (0, 0)
    if b"\r\ntransfer-encoding: chunked" in head:
        end = buf.find(b"\r\n0\r\n\r\n", head_end)
        return (end + 7, status) if end >= 0 else (0, 0)
    return head_end + 4, status


def run_load(sock_path: str, path: str, connections: int = 16, seconds: float = 2.0) -> dict[str, float]:
    request = f"GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: harness-bench\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    sent_at: dict[int, float] = {}
    bufs: dict[int, bytearray] = {}
    socks: dict[int, socket.socket] = {}
    latencies: list[float] = []
    errors = 0
    for _ in range(connections):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(sock_path)
        sock.setblocking(False)
        fd = sock.fileno()
        socks[fd], bufs[fd] = sock, bytearray()
        sel.register(sock, selectors.EVENT_READ)
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    for fd, sock in socks.items():
        sent_at[fd] = clock()
        sock.send(request)
    while socks:
        now = clock()
        if now >= deadline:
            break
        for key, _ in sel.select(deadline - now):
            sock = key.fileobj  # type: ignore[assignment]
            fd = key.fd
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                errors += 1
                sel.unregister(sock)
                sock.close()
                del socks[fd]
                continue
            buf = bufs[fd]
            buf += data
            end, status = _response_end(buf)
            if not end:
                continue
            t = clock()
            latencies.append(t - sent_at[fd])
            if not 200 <= status < 300:
                errors += 1
            del buf[:end]
            sent_at[fd] = t
            sock.send(request)
    elapsed = clock() - start
    for sock in socks.values():
        sock.close()
    latencies.sort()
    if not latencies:
        return {"req_per_s": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": float(errors)}
    return {
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "errors": float(errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("socket")
    parser.add_argument("path")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    opts = parser.parse_args(argv)
    print(json.dumps(run_load(opts.socket, opts.path, opts.connections, opts.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
