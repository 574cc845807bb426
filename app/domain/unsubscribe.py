"""Unsubscribe links and headers (RFC 2369 List-Unsubscribe, RFC 8058 one-click). Pure.

A link carries a token that names one send and is signed with OUTBOUND_SECRET_KEY (HMAC-SHA256), so a forged
or altered link is refused and no database lookup is needed to know whose it is. The `mailto:` form goes to
the sending account itself with the subject `unsubscribe outbound.<lead>.<step>.<index>`, which the inbox
sync recognises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

from app.domain.inbound import SendRef, refs_in_text

MAILTO_SUBJECT_PREFIX = "unsubscribe"
ONE_CLICK_POST = "List-Unsubscribe=One-Click"
_SIGNATURE_BYTES = 16  # 128 bits of HMAC-SHA256: far beyond guessing, short enough for a tidy URL
_CONTEXT = b"outbound-unsubscribe-v1:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: bytes, secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), _CONTEXT + payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def sign(ref: SendRef, secret_key: str) -> str:
    """The URL-safe token naming `ref`: base64url(send token) "." base64url(HMAC)."""
    payload = ref.token.encode("ascii")
    return f"{_b64(payload)}.{_b64(_signature(payload, secret_key))}"


def verify(token: str, secret_key: str) -> SendRef | None:
    """The send a token names when its signature is ours; None for anything forged, altered or malformed."""
    if not isinstance(token, str) or len(token) > 512 or token.count(".") != 1:
        return None
    encoded, _, signature = token.partition(".")
    try:
        payload = _unb64(encoded)
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(given, _signature(payload, secret_key)):
        return None
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        return None
    refs = refs_in_text(text)
    return refs[0] if len(refs) == 1 and refs[0].token == text else None


def unsubscribe_url(ref: SendRef, public_url: str | None, secret_key: str | None) -> str | None:
    """The one-click link for `ref` under OUTBOUND_PUBLIC_URL, or None when no public URL is configured."""
    if not public_url or not secret_key:
        return None
    return f"{public_url.rstrip('/')}/u/{sign(ref, secret_key)}"


def mailto_subject(ref: SendRef) -> str:
    """The subject of the unsubscribe mail for `ref`."""
    return f"{MAILTO_SUBJECT_PREFIX} {ref.token}"


def mailto_uri(ref: SendRef, account_email: str) -> str:
    """`mailto:<account>?subject=unsubscribe%20outbound...`: an unsubscribe request by mail to the sender."""
    return f"mailto:{quote(account_email, safe='@')}?subject={quote(mailto_subject(ref), safe='')}"


def list_unsubscribe_headers(
    ref: SendRef, account_email: str, public_url: str | None, secret_key: str | None
) -> dict[str, str]:
    """The List-Unsubscribe headers of one message: the https link first (with one-click POST), then mailto."""
    uris = []
    url = unsubscribe_url(ref, public_url, secret_key)
    if url:
        uris.append(f"<{url}>")
    uris.append(f"<{mailto_uri(ref, account_email)}>")
    headers = {"List-Unsubscribe": ", ".join(uris)}
    if url:
        headers["List-Unsubscribe-Post"] = ONE_CLICK_POST
    return headers
