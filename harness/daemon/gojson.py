"""Go's ``encoding/json`` syntax check (``checkValid``), so refd's syntax errors read as dockerd's.

A port of Go's scanner: one step function per scanner state, each taking a byte and either consuming
it, handing it back to the next state (Go's "redo": a number ends at the byte after it), or answering
the error. The texts are Go's (``invalid character 'b' looking for beginning of object key string``);
``NaN`` or ``01`` are refused as Go refuses them. Input that ends early reads ``eof_message``: what
``json.Unmarshal`` says (:data:`UNMARSHAL_EOF`) or a ``json.Decoder`` (:data:`DECODER_EOF`, what API
bodies get through ``httputils.ReadJSON``).
"""

from __future__ import annotations

from collections.abc import Callable

from .log import go_quote

__all__ = ["DECODER_EOF", "UNMARSHAL_EOF", "go_json_syntax_error"]

#: What Go says when JSON text ends early: json.Unmarshal vs a json.Decoder.
UNMARSHAL_EOF = "unexpected end of JSON input"
DECODER_EOF = "unexpected EOF"
_MAX_DEPTH = 10000

_SPACE = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'bfnrt\\/"')
_LITERALS = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}
_OBJ_KEY, _OBJ_VALUE, _ARRAY = 0, 1, 2
_NEXT, _REDO = 0, 1  # a step consumed the byte / the next state takes the same byte


def _quote_byte(byte: int) -> str:
    """encoding/json quoteChar: how a syntax error shows the offending byte."""
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    return "'" + go_quote(chr(byte))[1:-1] + "'"


def _error(byte: int, context: str) -> str:
    return f"invalid character {_quote_byte(byte)} {context}"


class _Scanner:
    __slots__ = ("hexleft", "literal", "litpos", "stack", "step")

    def __init__(self) -> None:
        self.stack: list[int] = []  # _OBJ_KEY, _OBJ_VALUE or _ARRAY per open container
        self.step: Step = _value
        self.hexleft = 0  # hex digits still due in a \u escape
        self.literal, self.litpos = b"", 0  # true/false/null being matched, and how far


Step = Callable[[_Scanner, int], "int | str"]


# -- values ------------------------------------------------------------------------------------------
def _value(s: _Scanner, byte: int) -> int | str:
    return _NEXT if byte in _SPACE else _begin_value(s, byte)


def _value_or_empty(s: _Scanner, byte: int) -> int | str:
    if byte in _SPACE:
        return _NEXT
    if byte == 0x5D:  # ]
        s.step = _end
        return _REDO
    return _begin_value(s, byte)


def _begin_value(s: _Scanner, byte: int) -> int | str:
    if byte in (0x7B, 0x5B):  # { [
        s.stack.append(_OBJ_KEY if byte == 0x7B else _ARRAY)
        if len(s.stack) > _MAX_DEPTH:
            return "exceeded max depth"
        s.step = _key_or_empty if byte == 0x7B else _value_or_empty
    elif byte in _BEGIN:
        s.step = _BEGIN[byte]
    elif byte in _LITERALS:
        s.literal, s.litpos, s.step = _LITERALS[byte], 1, _literal
    else:
        return _error(byte, "looking for beginning of value")
    return _NEXT


def _key_or_empty(s: _Scanner, byte: int) -> int | str:
    if byte in _SPACE:
        return _NEXT
    if byte == 0x7D:  # }
        s.stack[-1] = _OBJ_VALUE
        s.step = _end
        return _REDO
    return _begin_key(s, byte)


def _key(s: _Scanner, byte: int) -> int | str:
    return _NEXT if byte in _SPACE else _begin_key(s, byte)


def _begin_key(s: _Scanner, byte: int) -> int | str:
    if byte != 0x22:
        return _error(byte, "looking for beginning of object key string")
    s.step = _string
    return _NEXT


def _literal(s: _Scanner, byte: int) -> int | str:
    expected = s.literal[s.litpos]
    if byte != expected:
        return _error(byte, f"in literal {s.literal.decode()} (expecting {_quote_byte(expected)})")
    s.litpos += 1
    if s.litpos == len(s.literal):
        s.step = _end
    return _NEXT


# -- strings -----------------------------------------------------------------------------------------
def _string(s: _Scanner, byte: int) -> int | str:
    if byte == 0x22:
        s.step = _end
    elif byte == 0x5C:  # backslash
        s.step = _escape
    elif byte < 0x20:
        return _error(byte, "in string literal")
    return _NEXT


def _escape(s: _Scanner, byte: int) -> int | str:
    if byte in _ESCAPES:
        s.step = _string
    elif byte == 0x75:  # u
        s.step, s.hexleft = _unicode, 4
    else:
        return _error(byte, "in string escape code")
    return _NEXT


def _unicode(s: _Scanner, byte: int) -> int | str:
    if byte not in _HEX:
        return _error(byte, "in \\u hexadecimal character escape")
    s.hexleft -= 1
    if not s.hexleft:
        s.step = _string
    return _NEXT


# -- numbers -----------------------------------------------------------------------------------------
def _negative(s: _Scanner, byte: int) -> int | str:
    if byte == 0x30:
        s.step = _zero
    elif 0x31 <= byte <= 0x39:
        s.step = _integer
    else:
        return _error(byte, "in numeric literal")
    return _NEXT


def _integer(s: _Scanner, byte: int) -> int | str:
    if byte in _DIGITS:
        return _NEXT
    s.step = _zero
    return _REDO


def _zero(s: _Scanner, byte: int) -> int | str:
    if byte == 0x2E:  # .
        s.step = _dot
        return _NEXT
    return _fraction_end(s, byte)


def _dot(s: _Scanner, byte: int) -> int | str:
    if byte not in _DIGITS:
        return _error(byte, "after decimal point in numeric literal")
    s.step = _fraction
    return _NEXT


def _fraction(s: _Scanner, byte: int) -> int | str:
    return _NEXT if byte in _DIGITS else _fraction_end(s, byte)


def _fraction_end(s: _Scanner, byte: int) -> int | str:
    if byte in (0x65, 0x45):  # e E
        s.step = _exponent
        return _NEXT
    s.step = _end
    return _REDO


def _exponent(s: _Scanner, byte: int) -> int | str:
    s.step = _exponent_sign
    return _NEXT if byte in (0x2B, 0x2D) else _REDO


def _exponent_sign(s: _Scanner, byte: int) -> int | str:
    if byte not in _DIGITS:
        return _error(byte, "in exponent of numeric literal")
    s.step = _exponent_digits
    return _NEXT


def _exponent_digits(s: _Scanner, byte: int) -> int | str:
    if byte in _DIGITS:
        return _NEXT
    s.step = _end
    return _REDO


_BEGIN: dict[int, Step] = {0x22: _string, 0x2D: _negative, 0x30: _zero}
_BEGIN.update({digit: _integer for digit in b"123456789"})


# -- after a value -----------------------------------------------------------------------------------
def _end(s: _Scanner, byte: int) -> int | str:
    if not s.stack:
        s.step = _top
        return _REDO
    if byte in _SPACE:
        return _NEXT
    return _AFTER[s.stack[-1]](s, byte)


def _after_key(s: _Scanner, byte: int) -> int | str:
    if byte != 0x3A:  # :
        return _error(byte, "after object key")
    s.stack[-1], s.step = _OBJ_VALUE, _value
    return _NEXT


def _after_member(s: _Scanner, byte: int) -> int | str:
    if byte == 0x2C:  # ,
        s.stack[-1], s.step = _OBJ_KEY, _key
        return _NEXT
    if byte == 0x7D:  # }
        return _close(s)
    return _error(byte, "after object key:value pair")


def _after_element(s: _Scanner, byte: int) -> int | str:
    if byte == 0x2C:
        s.step = _value
        return _NEXT
    if byte == 0x5D:  # ]
        return _close(s)
    return _error(byte, "after array element")


def _close(s: _Scanner) -> int:
    s.stack.pop()
    s.step = _end if s.stack else _top
    return _NEXT


_AFTER: dict[int, Step] = {_OBJ_KEY: _after_key, _OBJ_VALUE: _after_member, _ARRAY: _after_element}


def _top(s: _Scanner, byte: int) -> int | str:
    """Only white space may follow the top-level value."""
    return _NEXT if byte in _SPACE else _error(byte, "after top-level value")


def go_json_syntax_error(data: bytes, eof_message: str = UNMARSHAL_EOF) -> str | None:
    """Go's ``checkValid``: the syntax error text, or None if ``data`` is valid JSON."""
    s = _Scanner()
    for byte in (*data, 0x20):  # Go's eof(): one more space, then "unexpected end" if still not done
        result = s.step(s, byte)
        while result == _REDO:
            result = s.step(s, byte)
        if isinstance(result, str):
            return result
    return None if s.step is _top else eof_message
