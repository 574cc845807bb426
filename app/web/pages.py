"""The unsubscribe pages: small, static HTML with one hashed inline style and no script. Pure.

Nothing here reads the database or the clock; a page shows at most a masked address (`j***@example.com`),
since anyone holding the link (a forwarded message, a mail scanner) can open it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

from app.domain.unsubscribe import ONE_CLICK_POST

STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:34rem;margin:4rem auto;"
    "padding:0 1rem;line-height:1.5;color:#222;background:#fff}"
    "h1{font-size:1.4rem}button{font:inherit;padding:.5rem 1.25rem;cursor:pointer}"
)
# The Content-Security-Policy admits this one inline style by its hash, so no style can be injected.
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")

_FIELD, _, _VALUE = ONE_CLICK_POST.partition("=")


@dataclass(frozen=True)
class Page:
    """One HTML response: its status code and body."""

    status: int
    html: str


def mask_email(email: str | None) -> str | None:
    """`jane@example.com` -> `j***@example.com`: enough for a person to recognise, little for anyone else."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.rpartition("@")
    if not local or not domain:
        return None
    return f"{local[0]}***@{domain}"


def _document(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )


def confirm_page() -> Page:
    """The page a GET shows: a button that POSTs to the same URL. Opening it changes nothing."""
    # No `action`: the form posts back to this very URL, whatever public host the reverse proxy serves.
    form = (
        '<form method="post">'
        f'<input type="hidden" name="{escape(_FIELD)}" value="{escape(_VALUE)}">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    text = "<p>Press the button to stop receiving these emails. Nothing changes until you do.</p>"
    return Page(200, _document("Unsubscribe", text + form))


def unsubscribed_page(*, found: bool, changed: bool, deferred: bool, email: str | None) -> Page:
    """The answer to an unsubscribe: what was done, in plain words, with the address masked.

    `deferred`: the address is suppressed, but the sequence was being worked on at that moment, so one email
    already on its way may still arrive; the page says so.
    """
    masked = mask_email(email)
    who = f"<strong>{escape(masked)}</strong>" if masked else "This address"
    if not found and masked is None:
        # The link is genuine but its record is gone: say so rather than claim an unsubscribe we cannot make.
        return Page(
            200,
            _document(
                "Nothing left to unsubscribe",
                "<p>We no longer hold the record this link was sent for, so we cannot tell which address to "
                "unsubscribe. If you still receive emails from us, reply to one with the word unsubscribe.</p>",
            ),
        )
    if deferred:
        return Page(
            200,
            _document(
                "You have been unsubscribed",
                f"<p>{who} will receive no further emails from us. One that was already being sent as you "
                "pressed the button may still arrive.</p>",
            ),
        )
    if changed:
        return Page(
            200,
            _document("You have been unsubscribed", f"<p>{who} will receive no further emails from us.</p>"),
        )
    return Page(
        200,
        _document(
            "You were already unsubscribed",
            f"<p>{who} was already unsubscribed and will receive no further emails from us.</p>",
        ),
    )


def refused_page() -> Page:
    """A forged, altered or truncated link: 400, and nothing was changed."""
    return Page(
        400,
        _document(
            "This link is not valid",
            "<p>This unsubscribe link is incomplete or has been altered, so nothing was changed. "
            "Open the link from the email again, or reply to the email with the word unsubscribe.</p>",
        ),
    )


def unavailable_page() -> Page:
    """The request could not be recorded now (the database did not answer): 503, try again."""
    return Page(
        503,
        _document(
            "Please try again",
            "<p>We could not record your request just now, so nothing was changed yet. "
            "Please try again in a few minutes.</p>",
        ),
    )
