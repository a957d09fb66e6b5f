"""The embedded DNS server's wire format: queries parsed, A and AAAA answers built, bad packets refused."""

from __future__ import annotations

import socket
import struct

import pytest

from harness.daemon.network.dns import answers_for, parse_query, reply


def _query(name: str, qtype: int = 1, qid: int = 0x1234) -> bytes:
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", qtype, 1)


def test_parse_query() -> None:
    qid, flags, name, qtype, qclass, end = parse_query(_query("web.net1"))
    assert (qid, flags, name, qtype, qclass) == (0x1234, 0x0100, "web.net1", 1, 1)
    assert end == len(_query("web.net1"))


@pytest.mark.parametrize(
    "data", [b"", b"\0" * 11, _query("x")[:-2], struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0)]
)
def test_malformed_queries_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_query(data)


def test_reply_echoes_question_and_carries_a_records() -> None:
    query = _query("web")
    *_, end = parse_query(query)
    answer = reply(query, end, ["10.0.0.2", "10.0.0.3"])
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", answer)
    assert (qid, qd, an, ns, ar) == (0x1234, 1, 2, 0, 0)
    assert flags & 0x8000 and flags & 0x0100 and not flags & 0x000F  # response, RD copied, NOERROR
    assert answer[12:end] == query[12:end]
    records = answer[end:]
    assert socket.inet_ntoa(records[12:16]) == "10.0.0.2" and socket.inet_ntoa(records[28:32]) == "10.0.0.3"


def test_servfail_has_no_answers() -> None:
    query = _query("elsewhere.example")
    *_, end = parse_query(query)
    answer = reply(query, end, [], rcode=2)
    assert struct.unpack_from("!H", answer, 6)[0] == 0 and struct.unpack_from("!H", answer, 2)[0] & 0xF == 2


def test_a_container_with_an_ipv6_address_answers_aaaa_queries() -> None:
    """libnetwork's resolver answers AAAA with an endpoint's IPv6 address (moby TestIsolated/ipv6)."""
    known = ["10.0.0.2", "fd00::2"]
    assert answers_for(1, known) == ["10.0.0.2"]
    assert answers_for(28, known) == ["fd00::2"]
    assert answers_for(16, known) == []  # TXT: the name is known, the answer empty
    query = _query("ctr1", qtype=28)
    *_, end = parse_query(query)
    answer = reply(query, end, answers_for(28, known))
    rtype, _, _, length = struct.unpack_from("!HHIH", answer, end + 2)
    assert (rtype, length) == (28, 16)
    assert socket.inet_ntop(socket.AF_INET6, answer[end + 12 : end + 28]) == "fd00::2"
