"""Go's encoding/json syntax check: valid documents pass, each scanner state fails with Go's text.

daemon.json's messages end to end are in test_refd_config.py; these call the scanner directly.
"""

from __future__ import annotations

import json

import pytest

from harness.daemon.gojson import DECODER_EOF, UNMARSHAL_EOF, go_json_syntax_error


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "[]",
        "null",
        "true",
        "0",
        "-0.5e+10",
        '"\\u00e9\\n"',
        '{"a": [1, {"b": null}], "c": -12.5E-3}',
        '{"a":[]}',
        "[[[]]]",
        '{"a": "\u00e9 \\"q\\""}',
        " { } ",
    ],
)
def test_scanner_accepts_valid_json(text: str) -> None:
    assert go_json_syntax_error(text.encode()) is None
    json.loads(text)


def test_scanner_depth_limit() -> None:
    assert go_json_syntax_error(b"[" * 10001) == "exceeded max depth"
    assert go_json_syntax_error(b"[" * 100 + b"]" * 100) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{x", "invalid character 'x' looking for beginning of object key string"),
        (b"[1,?]", "invalid character '?' looking for beginning of value"),
        (b'"a\\q"', "invalid character 'q' in string escape code"),
        (b'"\\u00zz"', "invalid character 'z' in \\u hexadecimal character escape"),
        (b'"\\u00e9\\n"', None),
        (b'"a\x01b"', "invalid character '\\x01' in string literal"),
        (b'"abc', UNMARSHAL_EOF),
        (b"-x", "invalid character 'x' in numeric literal"),
        (b"-01", "invalid character '1' after top-level value"),
        (b"1.x", "invalid character 'x' after decimal point in numeric literal"),
        (b"1.5e+x", "invalid character 'x' in exponent of numeric literal"),
        (b"1.5e-7", None),
        (b"2E9", None),
        (b"fx", "invalid character 'x' in literal false (expecting 'a')"),
        (b'{"a":1]', "invalid character ']' after object key:value pair"),
        (b"[1}", "invalid character '}' after array element"),
        (b'{"a"}', "invalid character '}' after object key"),
        (b"[] []", "invalid character '[' after top-level value"),
        (b"'", "invalid character '\\'' looking for beginning of value"),
        (b'{"a":', UNMARSHAL_EOF),
        (b"", UNMARSHAL_EOF),
    ],
)
def test_each_state_fails_with_gos_text(text: bytes, message: str | None) -> None:
    assert go_json_syntax_error(text) == message


def test_early_end_reads_as_the_caller_asks() -> None:
    assert go_json_syntax_error(b"[1, 2", DECODER_EOF) == DECODER_EOF
    assert go_json_syntax_error(b'{"a": "b', DECODER_EOF) == DECODER_EOF
    assert go_json_syntax_error(b"{} ", DECODER_EOF) is None
