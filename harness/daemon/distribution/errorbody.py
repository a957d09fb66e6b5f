"""Registry error responses read as docker/distribution's ``client.HandleErrorResponse`` reads them.

A 4xx answer is, in order: the OAuth error of a bearer challenge, the first ``errors`` entry of a JSON
body (``ErrcodeError``), or, for a body that is not one, the status's errcode with the body as its
detail; a 401 whose body cannot be parsed is ``authentication required``. Any other status is
``UnexpectedStatus``. ``Unexpected`` is a body that could not be read as an error document.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .challenges import challenge_error
from .errors import DistributionError, ErrcodeError, UnexpectedStatus

if TYPE_CHECKING:
    from .transport import Response

__all__ = ["Unexpected", "error_from_response"]


def error_from_response(resp: Response) -> DistributionError:
    """client.HandleErrorResponse (the body is read here)."""
    if 400 <= resp.status < 500:
        found = challenge_error(resp.headers.get_all("WWW-Authenticate") or [])
        body = resp.read()
        if found is not None:
            return found
        err = _parse_error_body(resp.status, resp.header("Content-Type"), body)
        if resp.status == 401 and isinstance(err, Unexpected):
            return ErrcodeError("UNAUTHORIZED", "authentication required", body.decode(errors="replace"))
        return err
    return UnexpectedStatus(resp.status_line)


class Unexpected(DistributionError):
    pass


def _make_error(status: int, details: str) -> ErrcodeError:
    code = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}.get(status, "UNKNOWN")
    return ErrcodeError(code, details)


def _parse_error_body(status: int, content_type: str, body: bytes) -> DistributionError:
    text = body.decode(errors="replace")
    if not content_type:
        return _make_error(status, text)
    media = content_type.split(";")[0].strip().lower()
    if media not in ("application/json", "application/vnd.api+json"):
        return _make_error(status, text)
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return Unexpected(f"error parsing HTTP {status} response body: {exc}: {json.dumps(text)}")
    if isinstance(doc, dict) and isinstance(doc.get("details"), str) and doc["details"]:
        return _make_error(status, doc["details"])
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not errors:
        return Unexpected(
            f"error parsing HTTP {status} response body: no error details found in HTTP response body: "
            f"{json.dumps(text)}"
        )
    first = errors[0] if isinstance(errors[0], dict) else {}
    return ErrcodeError(
        str(first.get("code") or "UNKNOWN"), str(first.get("message") or ""), first.get("detail")
    )
