"""Go's ``net/netip`` parsing, with its error texts: dockerd 28 decodes daemon.json and flag values with it.

Python's ``ipaddress`` accepts what Go refuses (zones, masked-off bits are silently dropped with
``strict=False``) and words its refusals differently; users see dockerd's words, so refd parses as Go does:
``ParseAddr`` and ``ParsePrefix`` raise :class:`NetipError` whose text is Go's ``err.Error()``, and a
:class:`Prefix` keeps the address as written (Go does not mask it) and prints as Go's ``Prefix.String``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .log import go_quote

__all__ = ["NetipError", "Prefix", "parse_addr", "parse_prefix"]


class NetipError(ValueError):
    """A parse failure; ``str()`` is Go's error text."""


def _addr_error(text: str, msg: str, at: str = "") -> NetipError:
    if at:
        return NetipError(f"ParseAddr({go_quote(text)}): {msg} (at {go_quote(at)})")
    return NetipError(f"ParseAddr({go_quote(text)}): {msg}")


@dataclass(frozen=True)
class Addr:
    """A parsed address: 4 or 16 bytes, and the zone Go keeps for IPv6."""

    raw: bytes
    zone: str = ""

    @property
    def is4(self) -> bool:
        return len(self.raw) == 4

    @property
    def bit_len(self) -> int:
        return 32 if self.is4 else 128

    def __str__(self) -> str:
        if self.is4:
            return str(ipaddress.IPv4Address(self.raw))
        if self.raw[:12] == b"\x00" * 10 + b"\xff\xff":  # Is4In6: Go prints the IPv4 tail dotted
            text = "::ffff:" + str(ipaddress.IPv4Address(self.raw[12:]))
        else:
            text = ipaddress.IPv6Address(self.raw).compressed
        return f"{text}%{self.zone}" if self.zone else text


def _ipv4_fields(text: str, part: str) -> bytes:
    """Go's parseIPv4Fields over ``part`` (all of ``text``, or its embedded IPv4 tail)."""
    fields = [0, 0, 0, 0]
    val = pos = digits = 0
    for i, ch in enumerate(part):
        if "0" <= ch <= "9":
            if digits == 1 and val == 0:
                raise _addr_error(text, "IPv4 field has octet with leading zero")
            val = val * 10 + ord(ch) - 48
            digits += 1
            if val > 255:
                raise _addr_error(text, "IPv4 field has value >255")
        elif ch == ".":
            if i == 0 or i == len(part) - 1 or part[i - 1] == ".":
                raise _addr_error(text, "IPv4 field must have at least one digit", part[i:])
            if pos == 3:
                raise _addr_error(text, "IPv4 address too long")
            fields[pos] = val
            pos += 1
            val = digits = 0
        else:
            raise _addr_error(text, "unexpected character", part[i:])
    if pos < 3:
        raise _addr_error(text, "IPv4 address too short")
    fields[3] = val
    return bytes(fields)


_HEX = "0123456789abcdefABCDEF"


def _ipv6(text: str) -> Addr:
    """Go's parseIPv6, step by step, so each refusal is the one Go reports."""
    s, zone = text, ""
    if "%" in s:
        s, _, zone = s.partition("%")
        if not zone:
            raise _addr_error(text, "zone must be a non-empty string")
    ip = bytearray(16)
    ellipsis = -1
    if s.startswith("::"):
        ellipsis = 0
        s = s[2:]
        if not s:
            return Addr(bytes(ip), zone)
    i = 0
    while i < 16:
        off = acc = 0
        while off < len(s) and s[off] in _HEX:
            acc = (acc << 4) + int(s[off], 16)
            if off > 3:
                raise _addr_error(text, "each group must have 4 or less digits", s)
            if acc > 0xFFFF:
                raise _addr_error(text, "IPv6 field has value >=2^16", s)
            off += 1
        if off == 0:
            raise _addr_error(text, "each colon-separated field must have at least one digit", s)
        if off < len(s) and s[off] == ".":
            if ellipsis < 0 and i != 12:
                raise _addr_error(
                    text, "embedded IPv4 address must replace the final 2 fields of the address", s
                )
            if i + 4 > 16:
                raise _addr_error(
                    text, "too many hex fields to fit an embedded IPv4 at the end of the address", s
                )
            ip[i : i + 4] = _ipv4_fields(text, s)
            s = ""
            i += 4
            break
        ip[i], ip[i + 1] = acc >> 8, acc & 0xFF
        i += 2
        s = s[off:]
        if not s:
            break
        if s[0] != ":":
            raise _addr_error(text, "unexpected character, want colon", s)
        if len(s) == 1:
            raise _addr_error(text, "colon must be followed by more characters", s)
        s = s[1:]
        if s[0] == ":":
            if ellipsis >= 0:
                raise _addr_error(text, "multiple :: in address", s)
            ellipsis = i
            s = s[1:]
            if not s:
                break
    if s:
        raise _addr_error(text, "trailing garbage after address", s)
    if i < 16:
        if ellipsis < 0:
            raise _addr_error(text, "address string too short")
        n = 16 - i
        ip[ellipsis + n : 16] = ip[ellipsis:i]
        ip[ellipsis : ellipsis + n] = bytes(n)
    elif ellipsis >= 0:
        raise _addr_error(text, "the :: must expand to at least one field of zeros")
    return Addr(bytes(ip), zone)


def parse_addr(text: str) -> Addr:
    """Go's ``netip.ParseAddr``."""
    for ch in text:
        if ch == ".":
            return Addr(_ipv4_fields(text, text))
        if ch == ":":
            return _ipv6(text)
        if ch == "%":
            raise _addr_error(text, "missing IPv6 address")
    raise _addr_error(text, "unable to parse IP")


@dataclass(frozen=True)
class Prefix:
    """Go's ``netip.Prefix``: the address as written (not masked) and the prefix length."""

    addr: Addr
    bits: int

    def __str__(self) -> str:
        return f"{self.addr}/{self.bits}"


def parse_prefix(text: str) -> Prefix:
    """Go's ``netip.ParsePrefix``."""

    def error(msg: str) -> NetipError:
        return NetipError(f"netip.ParsePrefix({go_quote(text)}): {msg}")

    head, slash, bits_text = text.rpartition("/")
    if not slash:
        raise error("no '/'")
    try:
        addr = parse_addr(head)
    except NetipError as exc:
        raise error(str(exc)) from None
    if addr.zone:
        raise error("IPv6 zones cannot be present in a prefix")
    # strconv.Atoi takes a sign and leading zeros; ParsePrefix does not
    if len(bits_text) > 1 and not "1" <= bits_text[0] <= "9":
        raise error(f"bad bits after slash: {go_quote(bits_text)}")
    if not bits_text or any(ch not in "0123456789" for ch in bits_text):
        raise error(f"bad bits after slash: {go_quote(bits_text)}")
    bits = int(bits_text)
    if bits >= 1 << 63:  # strconv.Atoi: value out of range
        raise error(f"bad bits after slash: {go_quote(bits_text)}")
    if bits > addr.bit_len:
        raise error("prefix length out of range")
    return Prefix(addr, bits)
