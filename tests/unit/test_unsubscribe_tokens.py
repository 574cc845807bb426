"""Unsubscribe tokens, links and headers; our Message-IDs read back as the sends they name."""

from __future__ import annotations

import pytest

from app.domain.inbound import SendRef, refs_in_message_ids, refs_in_text
from app.domain.unsubscribe import (
    list_unsubscribe_headers,
    mailto_subject,
    mailto_uri,
    sign,
    unsubscribe_url,
    verify,
)
from app.transport.outgoing_message import make_message_id

KEY = "k" * 40
REF = SendRef("665f1c2e9b1e8a3d4c5b6a70", 2, 1)


def test_a_signed_token_names_its_send() -> None:
    token = sign(REF, KEY)
    assert verify(token, KEY) == REF
    assert "/" not in token and "+" not in token and "=" not in token


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # altered signature
        lambda t: sign(SendRef("665f1c2e9b1e8a3d4c5b6a70", 3, 1), "x" * 40),  # signed with another key
        lambda t: t.split(".")[0],  # no signature
        lambda t: "",  # empty
        lambda t: "a.b.c",  # malformed
        lambda t: "%%%.***",  # not base64
        lambda t: t + "." + t,
    ],
)
def test_forged_or_altered_tokens_are_refused(mangle: object) -> None:
    token = mangle(sign(REF, KEY))  # type: ignore[operator]
    assert verify(token, KEY) is None


def test_a_token_for_one_send_cannot_be_turned_into_another() -> None:
    token = sign(REF, KEY)
    other = sign(SendRef(REF.lead_id, 1, 0), KEY)
    swapped = other.split(".")[0] + "." + token.split(".")[1]
    assert verify(swapped, KEY) is None


def test_headers_without_public_url_carry_mailto_only() -> None:
    headers = list_unsubscribe_headers(REF, "sales@acme.example", None, None)
    assert headers == {"List-Unsubscribe": f"<{mailto_uri(REF, 'sales@acme.example')}>"}
    assert "subject=unsubscribe%20outbound.665f1c2e9b1e8a3d4c5b6a70.2.1" in headers["List-Unsubscribe"]


def test_headers_with_public_url_put_the_https_link_first_and_offer_one_click() -> None:
    headers = list_unsubscribe_headers(REF, "sales@acme.example", "https://out.example.com/", KEY)
    url = unsubscribe_url(REF, "https://out.example.com", KEY)
    assert url is not None and url.startswith("https://out.example.com/u/")
    assert headers["List-Unsubscribe"].startswith(f"<{url}>, <mailto:sales@acme.example?subject=")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_mailto_subject_reads_back_as_the_send() -> None:
    assert refs_in_text("Re: " + mailto_subject(REF)) == [REF]


def test_our_message_ids_read_back_most_recent_first() -> None:
    first = make_message_id("lead.with.dots", 1, 0, "acme.example")
    second = make_message_id("lead.with.dots", 2, 0, "acme.example")
    refs = refs_in_message_ids(f"<unrelated@x.example> {first}\r\n {second}")
    assert refs == [SendRef("lead.with.dots", 2, 0), SendRef("lead.with.dots", 1, 0)]
    assert refs[0].send_key == "lead.with.dots:2:0"


@pytest.mark.parametrize(
    "text",
    ["<outbound.abc.0.1@x.example>", "<someone.abc.1.0@x.example>", "outbound.abc.1", "", None],
)
def test_text_that_names_no_send_of_ours(text: str | None) -> None:
    assert refs_in_message_ids(text) == [] and refs_in_text(text) == []
