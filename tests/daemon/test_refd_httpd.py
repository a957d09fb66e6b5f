"""refd's HTTP/1.1 server over real sockets: framing, keep-alive, Go net/http's answers to bad requests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import pytest

from harness.daemon.bootloop import BootLoop
from harness.daemon.httpd import Request, Response, handle_connection
from harness.daemon.httpproto import HttpProtocol

ERROR_HEADERS = b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
GO_400 = b"HTTP/1.1 400 Bad Request" + ERROR_HEADERS + b"400 Bad Request"
GO_501 = b"HTTP/1.1 501 Not Implemented" + ERROR_HEADERS + b"Unsupported transfer encoding"
GO_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n431 Request Header Fields Too Large"
)
GO_NO_HOST = (
    b"HTTP/1.1 400 Bad Request: missing required Host header"
    + ERROR_HEADERS
    + b"400 Bad Request: missing required Host header"
)
GO_505 = (
    b"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"505 HTTP Version Not Supported: unsupported protocol version"
)


async def echo(req: Request) -> Response:
    """Echo method, path, query and body; a few paths exercise other response kinds."""
    if req.path == "/stream":

        async def pieces() -> AsyncIterator[bytes]:
            yield b"a"
            yield b""
            yield b"bc"

        return Response(200, stream=pieces(), headers=[("Content-Type", "text/plain")])
    if req.path == "/nocontent":
        return Response(204, body=b"ignored")
    if req.path == "/odd":
        return Response(599, b"x")
    if req.path == "/ignore-body":
        return Response(200, b"ignored")
    if req.path == "/close":
        return Response(200, b"bye", close=True)
    body = await req.body()
    text = f"{req.method} {req.path} {req.arg('q')} {req.header('x-test')}|".encode() + body
    return Response(200, text, [("Content-Type", "text/plain")])


def fast_echo(req: Request) -> Response | None:
    """What ``echo`` answers, synchronously, for the requests it can answer without awaiting."""
    if req.path == "/stream":
        return None  # a stream: the async path
    if req.path == "/later":
        return None
    if req.path in ("/nocontent", "/odd", "/ignore-body", "/close"):
        return {
            "/nocontent": Response(204, body=b"ignored"),
            "/odd": Response(599, b"x"),
            "/ignore-body": Response(200, b"ignored"),
            "/close": Response(200, b"bye", close=True),
        }[req.path]
    text = f"{req.method} {req.path} {req.arg('q')} {req.header('x-test')}|".encode()
    return Response(200, text, [("Content-Type", "text/plain")])


@pytest.fixture(autouse=True, params=["streams", "protocol", "boot"])
def server_kind(request: pytest.FixtureRequest) -> str:
    """Every exchange runs on the three server paths: the streams loop, HttpProtocol's fast path, and refd's
    boot loop (no asyncio) handing the connection over to HttpProtocol when it needs the loop."""
    global _KIND
    _KIND = request.param
    return str(request.param)


_KIND = "streams"


async def _exchange(data: bytes, *, half_close: bool = True) -> bytes:
    server_sock, client_sock = socket.socketpair()
    protocol: HttpProtocol | None = None
    task: asyncio.Task[None] | None = None
    if _KIND == "protocol":
        made = HttpProtocol(echo, fast_echo)
        protocol = made
        await asyncio.get_running_loop().connect_accepted_socket(lambda: made, sock=server_sock)
    else:
        reader, writer = await asyncio.open_connection(sock=server_sock, limit=1 << 20)
        task = asyncio.create_task(handle_connection(reader, writer, echo))
    creader, cwriter = await asyncio.open_connection(sock=client_sock)
    try:
        cwriter.write(data)
        await cwriter.drain()
        if half_close:
            cwriter.write_eof()
        out = await asyncio.wait_for(creader.read(), 5)  # until refd closes the connection
        if protocol is not None:
            task = protocol.task
        if task is not None:
            await asyncio.wait_for(task, 5)
    finally:
        cwriter.close()
        await cwriter.wait_closed()
        await asyncio.sleep(0)
    return out


def _boot_exchange(data: bytes, *, half_close: bool) -> bytes:
    """The boot loop serves the connection until it needs more; then HttpProtocol adopts it, as refd does."""
    server_sock, client_sock = socket.socketpair()
    got = bytearray()

    def client() -> None:
        client_sock.settimeout(5)
        client_sock.sendall(data)
        if half_close:
            client_sock.shutdown(socket.SHUT_WR)
        while chunk := client_sock.recv(65536):  # until refd closes the connection
            got.extend(chunk)

    thread = threading.Thread(target=client)
    thread.start()
    boot = BootLoop([], fast_echo)
    boot.add_connection(server_sock)
    handover = boot.run()

    async def adopt() -> None:
        loop = asyncio.get_running_loop()
        protocols = []
        for adopted in handover.connections:
            protocol = HttpProtocol(echo, fast_echo, adopted=adopted)
            await loop.connect_accepted_socket(lambda p=protocol: p, sock=adopted.sock)  # type: ignore[misc]
            protocols.append(protocol)
        await asyncio.to_thread(thread.join, 5)
        for protocol in protocols:
            if protocol.task is not None:
                await asyncio.wait_for(protocol.task, 5)

    try:
        if handover.connections:
            asyncio.run(adopt())
        thread.join(5)
        assert not thread.is_alive(), "the client did not see the connection end"
    finally:
        client_sock.close()
    return bytes(got)


def exchange(data: bytes, *, half_close: bool = True) -> bytes:
    if _KIND == "boot":
        return _boot_exchange(data, half_close=half_close)
    return asyncio.run(_exchange(data, half_close=half_close))


def responses(raw: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Split a byte stream into (status line, headers, body) using each response's own framing."""
    out = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, _, v in (ln.partition(": ") for ln in lines[1:])}
        status = lines[0]
        if status.split(" ")[1].startswith("1") or status.split(" ")[1] in ("204", "304"):
            out.append((status, headers, b""))
            continue
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, raw = raw.partition(b"\r\n")
                size = int(size_line, 16)
                body, raw = body + raw[:size], raw[size + 2 :]
                if size == 0:
                    break
        elif "content-length" in headers:
            size = int(headers["content-length"])
            body, raw = raw[:size], raw[size:]
        else:
            body, raw = raw, b""
        out.append((status, headers, body))
    return out


def req(method: str = "GET", path: str = "/x", body: bytes = b"", *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: docker", *extra]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- keep-alive and framing --------------------------------------------------------------------------


def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    got = responses(exchange(req("GET", "/a?q=1") + req("POST", "/b", b"hello", "X-Test: t")))
    assert [(s, b) for s, _, b in got] == [
        ("HTTP/1.1 200 OK", b"GET /a 1 |"),
        ("HTTP/1.1 200 OK", b"POST /b  t|hello"),
    ]
    assert all("connection" not in h for _, h, _ in got)
    assert got[0][1]["content-length"] == str(len(b"GET /a 1 |"))
    assert "date" in got[0][1]


def test_content_length_body() -> None:
    [(status, _, body)] = responses(exchange(req("POST", "/p", b"x" * 70000)))
    assert status == "HTTP/1.1 200 OK" and body == b"POST /p  |" + b"x" * 70000


def test_chunked_request_body_with_extension_and_trailer() -> None:
    data = (
        b"POST /c HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    ) + req("GET", "/after")
    got = responses(exchange(data))
    assert [b for _, _, b in got] == [b"POST /c  |hello world", b"GET /after  |"]


def test_chunked_request_body_bad_size_is_400_and_close() -> None:
    data = b"POST /c HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    assert exchange(data) == GO_400


def test_head_has_no_body() -> None:
    raw = exchange(req("HEAD", "/h") + req("GET", "/g"))
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 10" in head  # len(b"HEAD /h  |")
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")  # the next response follows at once: no body was sent


def test_streaming_response_is_chunked() -> None:
    raw = exchange(req("GET", "/stream"))
    assert raw.endswith(b"\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n")
    [(_, headers, body)] = responses(raw)
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers and body == b"abc"


def test_no_content_has_no_body_and_no_length() -> None:
    raw = exchange(req("GET", "/nocontent") + req("GET", "/g"))
    [(status, headers, body), (status2, _, _)] = responses(raw)
    assert status == "HTTP/1.1 204 No Content" and "content-length" not in headers and body == b""
    assert status2 == "HTTP/1.1 200 OK"


def test_unknown_status_reason_is_go_style() -> None:
    assert exchange(req("GET", "/odd")).startswith(b"HTTP/1.1 599 status code 599\r\n")


def test_connection_close_is_honoured() -> None:
    raw = exchange(req("GET", "/a", b"", "Connection: close") + req("GET", "/never"), half_close=False)
    [(status, headers, body)] = responses(raw)
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close" and body == b"GET /a  |"


def test_handler_can_close() -> None:
    raw = exchange(req("GET", "/close") + req("GET", "/never"), half_close=False)
    assert [h.get("connection") for _, h, _ in responses(raw)] == ["close"]


def test_http10_closes_unless_keep_alive() -> None:
    raw = exchange(b"GET /a HTTP/1.0\r\n\r\n" + req("GET", "/never"), half_close=False)
    [(status, headers, _)] = responses(raw)
    assert status == "HTTP/1.0 200 OK" and "connection" not in headers
    raw = exchange(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + req("GET", "/b"))
    got = responses(raw)
    assert [s for s, _, _ in got] == ["HTTP/1.0 200 OK", "HTTP/1.1 200 OK"]
    assert got[0][1]["connection"] == "keep-alive"


def test_http10_stream_is_raw_then_close() -> None:
    raw = exchange(b"GET /stream HTTP/1.0\r\n\r\n", half_close=False)
    assert raw.endswith(b"\r\n\r\nabc") and b"Transfer-Encoding" not in raw


def test_expect_100_continue() -> None:
    raw = exchange(req("POST", "/p", b"data", "Expect: 100-continue"))
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert responses(raw)[1][2] == b"POST /p  |data"


def test_unknown_expectation_is_417() -> None:
    [(status, headers, body)] = responses(exchange(req("GET", "/p", b"", "Expect: magic"), half_close=False))
    assert status == "HTTP/1.1 417 Expectation Failed" and headers["connection"] == "close" and body == b""


def test_unread_large_body_ends_keep_alive() -> None:
    raw = exchange(req("POST", "/ignore-body", b"z" * (300 << 10)) + req("GET", "/never"), half_close=False)
    [(status, headers, _)] = responses(raw)
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"


def test_unread_small_body_is_drained_and_connection_kept() -> None:
    raw = exchange(req("POST", "/ignore-body", b"small") + req("GET", "/next"))
    assert [b for _, _, b in responses(raw)] == [b"ignored", b"GET /next  |"]


def test_obs_fold_header_continuation_is_joined() -> None:
    raw = exchange(b"GET /f HTTP/1.1\r\nHost: d\r\nX-Test: a\r\n  b\r\n\r\n")
    assert responses(raw)[0][2] == b"GET /f  a b|"


def test_stray_crlf_only_after_post() -> None:
    raw = exchange(req("POST", "/p", b"1") + b"\r\n" + req("GET", "/g"))
    assert [s for s, _, _ in responses(raw)] == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    assert exchange(b"\r\n" + req("GET", "/g")) == GO_400


# --- Go's answers to bad requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"GARBAGE",
        b"GET /",
        b"GET / HTTP/1.1 extra",
        b"GET  / HTTP/1.1",
        b"G(T / HTTP/1.1",
        b"GET / HTTP/1.x",
        b"GET / FTP/1.0",
        b"GET x HTTP/1.1",
        b"GET /a%zz HTTP/1.1",
    ],
)
def test_malformed_request_line_is_go_400_and_close(line: bytes) -> None:
    assert exchange(line + b"\r\nHost: d\r\n\r\n" + req("GET", "/never"), half_close=False) == GO_400


@pytest.mark.parametrize("uri", ["*", "http://docker/x", "/x%20y?a=%zz"])
def test_unusual_but_valid_targets(uri: str) -> None:
    assert exchange(req("OPTIONS", uri)).startswith(b"HTTP/1.1 200 OK")


def test_method_is_any_token() -> None:
    assert responses(exchange(req("get", "/lower")))[0][2] == b"get /lower  |"


def test_http2_request_line_is_505() -> None:
    assert exchange(b"GET / HTTP/2.0\r\nHost: d\r\n\r\n", half_close=False) == GO_505
    assert exchange(b"GET / HTTP/1.2\r\nHost: d\r\n\r\n").startswith(b"HTTP/1.1 200 OK")


def test_missing_host_on_http11() -> None:
    assert exchange(b"GET / HTTP/1.1\r\n\r\n", half_close=False) == GO_NO_HOST
    assert exchange(b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 OK")
    assert exchange(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", half_close=False) == GO_400


@pytest.mark.parametrize("header", [b"Bad Header: x", b"NoColon", b": empty", b"X: a\x01b"])
def test_malformed_header_is_400(header: bytes) -> None:
    assert exchange(b"GET / HTTP/1.1\r\nHost: d\r\n" + header + b"\r\n\r\n", half_close=False) == GO_400


def test_header_too_large_is_431() -> None:
    big = b"X-Big: " + b"a" * ((1 << 20) + 5000) + b"\r\n"
    assert exchange(b"GET / HTTP/1.1\r\nHost: d\r\n" + big + b"\r\n", half_close=False) == GO_431


def test_many_headers_just_under_the_limit_are_fine() -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(1000))
    assert exchange(b"GET / HTTP/1.1\r\nHost: d\r\n" + headers + b"\r\n").startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+5", b"1_0", b"", b"5, 5", b"0x5"])
def test_bad_content_length_is_400(value: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: " + value + b"\r\n\r\n12345"
    assert exchange(data, half_close=False) == GO_400


def test_duplicate_content_length() -> None:
    same = b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    assert responses(exchange(same))[0][2] == b"POST /  |abc"
    differ = b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    assert exchange(differ, half_close=False) == GO_400


@pytest.mark.parametrize("te", [b"gzip", b"chunked, gzip", b"identity"])
def test_unsupported_transfer_encoding_is_501(te: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
    assert exchange(data, half_close=False) == GO_501


def test_transfer_encoding_ignored_on_http10() -> None:
    data = b"POST /t HTTP/1.0\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok"
    assert responses(exchange(data))[0][2] == b"POST /t  |ok"


def test_truncated_request_head_is_400_and_clean_eof_is_silent() -> None:
    assert exchange(b"GET / HTTP/1.1\r\nHost: d\r\n") == GO_400
    assert exchange(b"") == b""


def test_hijack_hands_over_the_connection() -> None:
    async def app(request: Request) -> Response:
        async def take_over(r: Request) -> None:
            r.writer.write(b"HTTP/1.1 101 UPGRADED\r\n\r\n" + await r.reader.readexactly(4))
            await r.writer.drain()
            r.writer.close()

        return Response(hijack=take_over)

    async def run() -> bytes:
        server_sock, client_sock = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=server_sock)
        task = asyncio.create_task(handle_connection(reader, writer, app))
        creader, cwriter = await asyncio.open_connection(sock=client_sock)
        try:
            cwriter.write(req("POST", "/attach") + b"ping")
            out = await asyncio.wait_for(creader.read(), 5)
            await task
        finally:
            cwriter.close()
            await cwriter.wait_closed()
        return out

    assert asyncio.run(run()) == b"HTTP/1.1 101 UPGRADED\r\n\r\nping"


# --- the fast path (HttpProtocol) ---------------------------------------------------------------------


def test_pipelined_fast_and_async_requests_answer_in_order() -> None:
    data = req("GET", "/a?q=1") + req("GET", "/later") + req("GET", "/b?q=2") + req("POST", "/c", b"x")
    got = responses(exchange(data))
    assert [b for _, _, b in got] == [b"GET /a 1 |", b"GET /later  |", b"GET /b 2 |", b"POST /c  |x"]


def test_fast_requests_need_no_task(server_kind: str) -> None:
    if server_kind != "protocol":
        pytest.skip("HttpProtocol only")

    async def run() -> tuple[bytes, object]:
        server_sock, client_sock = socket.socketpair()
        protocol = HttpProtocol(echo, fast_echo)
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: protocol, sock=server_sock)
        creader, cwriter = await asyncio.open_connection(sock=client_sock)
        cwriter.write(req("GET", "/a") + req("GET", "/b") + req("GET", "/close"))
        out = await asyncio.wait_for(creader.read(), 5)
        cwriter.close()
        await cwriter.wait_closed()
        return out, protocol.task

    out, task = asyncio.run(run())
    assert task is None
    assert [s for s, _, _ in responses(out)] == ["HTTP/1.1 200 OK"] * 3


def test_repeated_heads_are_parsed_once_but_each_request_is_its_own(server_kind: str) -> None:
    """The fast path caches parsed heads by their bytes; a handler changing its request changes no other."""
    if server_kind != "protocol":
        pytest.skip("HttpProtocol only")
    seen: list[tuple[str, str]] = []

    def meddler(r: Request) -> Response:
        seen.append((r.header("x-test"), r.arg("q")))
        r.headers["x-test"] = "changed"
        r.query["q"] = ["changed"]
        return Response(200, b"ok", close=r.path == "/last")

    async def run() -> bytes:
        server_sock, client_sock = socket.socketpair()
        protocol = HttpProtocol(echo, meddler)
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock=server_sock)
        creader, cwriter = await asyncio.open_connection(sock=client_sock)
        same = req("GET", "/a?q=1", b"", "X-Test: t")
        cwriter.write(same + same + req("GET", "/last", b"", "X-Test: t"))
        out = await asyncio.wait_for(creader.read(), 5)
        cwriter.close()
        await cwriter.wait_closed()
        return out

    assert len(responses(asyncio.run(run()))) == 3
    assert seen == [("t", "1"), ("t", "1"), ("t", "")]


def test_a_query_argument_given_twice_is_its_first_value() -> None:
    """Go's r.FormValue: docker-py sends ``dockerfile`` twice (the generated name, then the text)."""
    req = Request(
        "POST", "/build", "HTTP/1.1", {}, None, None, query={"dockerfile": [".dockerfile.ab", "FROM x"]}
    )  # type: ignore[arg-type]
    assert (req.arg("dockerfile"), req.arg("missing", "d")) == (".dockerfile.ab", "d")
