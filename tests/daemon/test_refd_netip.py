"""Go's net/netip parsing in refd: the values Go accepts, and Go's exact refusal texts (as dockerd 28.5
prints them for a daemon.json ``default-address-pools`` base, seen on the dockerd-28 target)."""

from __future__ import annotations

import pytest

from harness.daemon.netip import NetipError, parse_addr, parse_prefix


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::", "::"),
        ("fd00:1::", "fd00:1::"),
        ("1:0:0:3:0:0:0:7", "1:0:0:3::7"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),  # a :: may stand for a single zero group
    ],
)
def test_parse_addr_accepts_what_go_does(text: str, shown: str) -> None:
    assert str(parse_addr(text)) == shown


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("x", 'ParseAddr("x"): unable to parse IP'),
        ("", 'ParseAddr(""): unable to parse IP'),
        ("%eth0", 'ParseAddr("%eth0"): missing IPv6 address'),
        ("300.1.1.1", 'ParseAddr("300.1.1.1"): IPv4 field has value >255'),
        ("10.0.0", 'ParseAddr("10.0.0"): IPv4 address too short'),
        ("1.2.3.4.5", 'ParseAddr("1.2.3.4.5"): IPv4 address too long'),
        ("01.2.3.4", 'ParseAddr("01.2.3.4"): IPv4 field has octet with leading zero'),
        ("1..2.3", 'ParseAddr("1..2.3"): IPv4 field must have at least one digit (at ".2.3")'),
        ("1.2.3.x", 'ParseAddr("1.2.3.x"): unexpected character (at "x")'),
        ("1:2", 'ParseAddr("1:2"): address string too short'),
        ("1::2::3", 'ParseAddr("1::2::3"): multiple :: in address (at ":3")'),
        ("12345::", 'ParseAddr("12345::"): each group must have 4 or less digits (at "12345::")'),
        ("1:", 'ParseAddr("1:"): colon must be followed by more characters (at ":")'),
        ("fe80::%", 'ParseAddr("fe80::%"): zone must be a non-empty string'),
        ("1:2:3:4:5:6:7:8:9", 'ParseAddr("1:2:3:4:5:6:7:8:9"): trailing garbage after address (at "9")'),
        (
            "1:2:3:4:5:6:7::8",
            'ParseAddr("1:2:3:4:5:6:7::8"): the :: must expand to at least one field of zeros',
        ),
        (
            "1:2:3:4:5:6:7:8::",
            'ParseAddr("1:2:3:4:5:6:7:8::"): the :: must expand to at least one field of zeros',
        ),
        (
            "1:2.3.4.5",
            'ParseAddr("1:2.3.4.5"): embedded IPv4 address must replace the final 2 fields of the '
            'address (at "2.3.4.5")',
        ),
        ("1:g::", 'ParseAddr("1:g::"): each colon-separated field must have at least one digit (at "g::")'),
        ("1:2x::", 'ParseAddr("1:2x::"): unexpected character, want colon (at "x::")'),
    ],
)
def test_parse_addr_refuses_with_gos_words(text: str, error: str) -> None:
    with pytest.raises(NetipError) as exc:
        parse_addr(text)
    assert str(exc.value) == error


def test_parse_prefix_keeps_the_address_as_written() -> None:
    prefix = parse_prefix("10.97.1.0/16")  # Go does not mask it (Masked() would)
    assert (str(prefix), prefix.bits, prefix.addr.is4) == ("10.97.1.0/16", 16, True)
    assert str(parse_prefix("fd00:1::/64")) == "fd00:1::/64"
    assert str(parse_prefix("::ffff:10.0.0.0/104")) == "::ffff:10.0.0.0/104"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # the first five as dockerd 28.5 printed them for a daemon.json pool base
        ("x", "no '/'"),
        ("1.2.3.4/40", "prefix length out of range"),
        ("300.1.1.1/8", 'ParseAddr("300.1.1.1"): IPv4 field has value >255'),
        ("10.0.0.0/8x", 'bad bits after slash: "8x"'),
        ("10.0.0.0/08", 'bad bits after slash: "08"'),
        ("fe80::1%eth0/64", "IPv6 zones cannot be present in a prefix"),
        ("10.0.0.0/", 'bad bits after slash: ""'),
        ("10.0.0.0/-1", 'bad bits after slash: "-1"'),
        ("10.0.0.0/+8", 'bad bits after slash: "+8"'),
        ("10.0.0.0/99999999999999999999", 'bad bits after slash: "99999999999999999999"'),
        ("fd00::/129", "prefix length out of range"),
        ("/8", 'ParseAddr(""): unable to parse IP'),
    ],
)
def test_parse_prefix_refuses_with_gos_words(text: str, error: str) -> None:
    with pytest.raises(NetipError) as exc:
        parse_prefix(text)
    assert str(exc.value) == f'netip.ParsePrefix("{text}"): {error}'
