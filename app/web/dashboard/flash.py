"""The one-line message a dashboard action leaves for the page it redirects to (Post/Redirect/Get).

It travels in a short-lived cookie signed with the service's secret key, so nobody can make the dashboard
show words of their choosing by crafting a link, and it is shown once: the page that renders it clears it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

FLASH_COOKIE = "outbound_flash"
FLASH_MAX_AGE_SECONDS = 60
MAX_TEXT_LENGTH = 500


@dataclass(frozen=True)
class Flash:
    """What happened, in a sentence: `ok` after an action that worked, `error` after one that was refused."""

    kind: Literal["ok", "error"]
    text: str


def _signature(payload: str, secret_key: str) -> str:
    digest = hmac.new(secret_key.encode("utf-8"), b"flash:" + payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def encode(flash: Flash, secret_key: str) -> str:
    """The cookie value for `flash`: base64 JSON and its HMAC, joined by a dot."""
    body = json.dumps({"k": flash.kind, "t": flash.text[:MAX_TEXT_LENGTH]}, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{payload}.{_signature(payload, secret_key)}"


def decode(value: str, secret_key: str) -> Flash | None:
    """The flash a cookie value carries, or None if it is malformed or not signed with `secret_key`."""
    payload, _, signature = value.partition(".")
    if not payload or not hmac.compare_digest(signature, _signature(payload, secret_key)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    kind, text = data.get("k") if isinstance(data, dict) else None, data.get("t") if isinstance(data, dict) else None
    if kind not in ("ok", "error") or not isinstance(text, str):
        return None
    return Flash(kind, text)


def _secret(request: Request) -> str:
    key: str = request.app.state.settings.secret_key
    return key


def set_flash(response: Response, request: Request, flash: Flash) -> None:
    """Leave `flash` for the next page this browser opens (within a minute)."""
    response.set_cookie(
        FLASH_COOKIE,
        encode(flash, _secret(request)),
        max_age=FLASH_MAX_AGE_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def read_flash(request: Request) -> Flash | None:
    """The flash this request carries, if genuine."""
    value = request.cookies.get(FLASH_COOKIE)
    return None if value is None else decode(value, _secret(request))


def clear_flash(request: Request, response: Response) -> None:
    """Clear the flash cookie on `response` once its page has shown it."""
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
