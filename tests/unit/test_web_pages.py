"""The unsubscribe pages say what happened, show no more than a masked address, and fit the strict CSP."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from app.cli.serve_cmds import is_loopback_host
from app.web.pages import (
    STYLE_HASH,
    confirm_page,
    mask_email,
    refused_page,
    unavailable_page,
    unsubscribed_page,
)
from app.web.security_headers import CONTENT_SECURITY_POLICY, SECURITY_HEADERS


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("jane.doe@example.com", "j***@example.com"),
        ("J@Example.COM", "J***@Example.COM"),
        ("a+tag@sub.example.org", "a***@sub.example.org"),
        ("odd@local@example.com", "o***@example.com"),
        (None, None),
        ("", None),
        ("no-at-sign", None),
        ("@example.com", None),
        ("jane@", None),
    ],
)
def test_addresses_are_masked_to_their_first_letter_and_domain(email: str | None, masked: str | None) -> None:
    assert mask_email(email) == masked


def _inline_style(html: str) -> str:
    styles = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
    assert len(styles) == 1
    return str(styles[0])


def test_every_page_has_exactly_the_inline_style_the_policy_admits_and_no_script() -> None:
    pages = [
        confirm_page(),
        refused_page(),
        unavailable_page(),
        unsubscribed_page(found=True, changed=True, deferred=False, email="jane@example.com"),
    ]
    for page in pages:
        digest = hashlib.sha256(_inline_style(page.html).encode("utf-8")).digest()
        assert f"sha256-{base64.b64encode(digest).decode()}" == STYLE_HASH
        assert "<script" not in page.html.lower()
        assert " style=" not in page.html  # style attributes would need 'unsafe-inline'
    assert f"style-src '{STYLE_HASH}'" in CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';")


def test_the_confirm_page_posts_the_one_click_body_back_to_the_same_url() -> None:
    page = confirm_page()
    assert page.status == 200
    form = re.search(r"<form[^>]*>", page.html)
    assert form is not None and 'method="post"' in form.group(0) and "action" not in form.group(0)
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.html


def test_a_fresh_unsubscribe_says_so_with_the_masked_address_only() -> None:
    page = unsubscribed_page(found=True, changed=True, deferred=False, email="jane.doe@example.com")
    assert page.status == 200
    assert "You have been unsubscribed" in page.html
    assert "j***@example.com" in page.html
    assert "jane.doe" not in page.html


def test_a_repeated_unsubscribe_says_it_was_already_done() -> None:
    page = unsubscribed_page(found=True, changed=False, deferred=False, email="jane@example.com")
    assert page.status == 200
    assert "already unsubscribed" in page.html


def test_an_unsubscribe_while_the_sequence_is_being_sent_warns_one_email_may_still_arrive() -> None:
    page = unsubscribed_page(found=True, changed=False, deferred=True, email="jane@example.com")
    assert "You have been unsubscribed" in page.html
    assert "may still arrive" in page.html


def test_a_link_whose_lead_is_gone_but_whose_address_is_known_is_still_an_unsubscribe() -> None:
    page = unsubscribed_page(found=False, changed=True, deferred=False, email="jane@example.com")
    assert page.status == 200
    assert "You have been unsubscribed" in page.html and "j***@example.com" in page.html


def test_a_link_with_no_record_left_says_honestly_that_nothing_could_be_unsubscribed() -> None:
    page = unsubscribed_page(found=False, changed=False, deferred=False, email=None)
    assert page.status == 200
    assert "Nothing left to unsubscribe" in page.html
    assert "You have been unsubscribed" not in page.html


def test_refused_and_unavailable_pages_say_nothing_was_changed() -> None:
    assert refused_page().status == 400
    assert unavailable_page().status == 503
    for page in (refused_page(), unavailable_page()):
        assert "nothing was changed" in page.html


def test_security_headers_forbid_framing_sniffing_referrers_and_caching() -> None:
    headers = dict(SECURITY_HEADERS)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("outreach.example.com", False),
    ],
)
def test_only_loopback_hosts_count_as_private_binds(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
