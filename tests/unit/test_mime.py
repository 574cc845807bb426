"""The wire policy's direct header writing gives exactly compat32's bytes, whatever the header."""

from __future__ import annotations

import email.policy
import random
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import Header

import pytest

from app.transport import mime
from app.transport.outgoing_message import OutgoingMessage, validated

COMPAT32 = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)
COMPAT32_UTF8 = COMPAT32.clone(cte_type="8bit")
NAMES = ["Subject", "To", "From", "Message-ID", "List-Unsubscribe", "X-A", "In-Reply-To", "References"]
# Whitespace runs, tabs, quotes, encoded-word look-alikes, address punctuation: what folding reacts to.
ALPHABET = "ab =?:;,<>@\t\"()x.Z-_'!\\"


def _corpus(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    values = []
    for _ in range(count):
        length = rng.choice([0, 1, 5, 30, 60, 66, 67, 68, 70, 76, 78, 79, 90, 200])
        values.append((rng.choice(NAMES), "".join(rng.choice(ALPHABET) for _ in range(length))))
    return values


@pytest.mark.parametrize("wire,reference", [(mime._WIRE, COMPAT32), (mime._WIRE_UTF8, COMPAT32_UTF8)])
def test_every_ascii_header_comes_out_as_compat32_writes_it(wire: email.policy.Compat32, reference: object) -> None:
    for name, value in _corpus(seed=8, count=20_000):
        assert wire.fold_binary(name, value) == reference.fold_binary(name, value), (name, value)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    [
        "Grüße aus Köln",  # non-ASCII: compat32 encodes it
        Header("Grüße aus Köln", "utf-8"),  # an encoded header object
        "line one\r\n continued",  # a line break already in the value
        "x" * 77,  # one character past the line limit once the name is in front
        "word " * 30,  # long: folded at the spaces
        "r\udcc3\udca9sum\u00e9@example.com".encode("utf-8", "surrogateescape").decode("ascii", "surrogateescape"),
    ],
)
@pytest.mark.parametrize("wire,reference", [(mime._WIRE, COMPAT32), (mime._WIRE_UTF8, COMPAT32_UTF8)])
def test_headers_the_fast_path_does_not_take_are_folded_by_compat32(
    value: object, wire: email.policy.Compat32, reference: object
) -> None:
    assert wire.fold_binary("Subject", value) == reference.fold_binary("Subject", value)  # type: ignore[attr-defined]


def _message(subject: str, html: str | None = None, display: str = "Ann Example") -> OutgoingMessage:
    return OutgoingMessage(
        message_id="<abc.123@sender.example.com>",
        from_email="ann@sender.example.com",
        from_name=display,
        to_email="bob@example.org",
        to_name="Bob Recipient",
        subject=subject,
        text="Hello Bob,\n\nA short note.\n",
        html=html,
        headers={"List-Unsubscribe": "<mailto:unsubscribe@sender.example.com?subject=abc>"},
    )


@pytest.mark.parametrize(
    "msg",
    [
        _message("Quick question"),
        _message("A subject long enough that compat32 has to fold it over more than one line of the header"),
        _message("Grüße", html="<p>Hello Bob</p>", display="Zoë Müller"),
    ],
)
def test_a_built_message_is_the_one_compat32_would_write(msg: OutgoingMessage) -> None:
    now = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    built = mime.build_message(msg, now=now)
    parsed = message_from_bytes(built, policy=COMPAT32)
    # Regenerated with plain compat32, header by header and part by part, the bytes are the same.
    assert parsed.as_bytes(policy=COMPAT32) == built
    assert parsed["Message-ID"] == "<abc.123@sender.example.com>"
    assert b"\r\n\r\n" in built and b"\n" not in built.replace(b"\r\n", b"")


# Bodies as people and templates write them: every kind of line end, a trailing one or none, "From " at the
# start of a line, dots, tabs, blank lines, long lines up to and past SMTP's limit, and a few non-ASCII ones
# (those take the email-package path, which is compared too).
_BODY_PIECES = ["Hi Bob,", "", "From here on", ".", "\tindented", "a" * 80, "b" * 998, "c" * 999, "Grüße", "x y  z "]
_ENDS = ["\n", "\r\n", "\r", "\n\n", "\x0c", ""]
_SUBJECTS = ["Quick question", "", "Grüße aus Köln", "word " * 20, "Re: =?utf-8?q?x?= (1)", "a\tb"]
_DISPLAYS = [None, "Ann Example", "Ann, Example", 'A "quoted" name', "Zoë Müller", "O'Brien (sales)"]
_UNSUBSCRIBE = "<mailto:sender1@bench-sender.example?subject=unsubscribe%20outbound.6b10675ea1e3958618343a9c.1.0>"


def _generated(seed: int, count: int) -> list[OutgoingMessage]:
    rng = random.Random(seed)
    out = []
    for number in range(count):
        body = "".join(rng.choice(_BODY_PIECES) + rng.choice(_ENDS) for _ in range(rng.randint(0, 6)))
        headers = rng.choice([{}, {"List-Unsubscribe": _UNSUBSCRIBE}, {"In-Reply-To": "<a@b.example>", "X-A": "é"}])
        out.append(
            OutgoingMessage(
                message_id=f"<outbound.{number}.1.0@sender.example.com>",
                from_email="ann@sender.example.com",
                from_name=rng.choice(_DISPLAYS),
                to_email=rng.choice(["bob@example.org", "zoë@example.org"]),
                to_name=rng.choice(_DISPLAYS),
                subject=rng.choice(_SUBJECTS),
                text=body,
                html=None,
                headers=headers,
            )
        )
    return out


def test_the_direct_writer_gives_the_email_packages_bytes_for_every_generated_message() -> None:
    now = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    direct = 0
    for msg in _generated(seed=12, count=3_000):
        checked = validated(msg)
        headers = mime._headers(checked, now)
        policy = mime._WIRE_UTF8 if checked.smtputf8 else mime._WIRE
        reference = mime._with_email_package(msg.text, None, headers, policy)
        assert mime.build_message(msg, now=now) == reference, msg
        direct += mime._is_7bit(msg.text)
    assert 1_000 < direct < 3_000  # both paths were compared, each many times
