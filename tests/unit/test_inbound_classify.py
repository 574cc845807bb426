"""Inbound messages classified: bounces first, then auto-replies, unsubscribe requests, replies, the rest."""

from __future__ import annotations

import base64
import email
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from app.domain.inbound import AUTO_REPLY, BOUNCE, REPLY, UNRELATED, UNSUBSCRIBE, SendRef
from app.domain.inbound_classify import classify, parse
from tests import inbound_messages as mail

LEAD = "665f1c2e9b1e8a3d4c5b6a70"
REF = SendRef(LEAD, 1, 0)
OURS = f"<outbound.{LEAD}.1.0@acme.example>"
FOLLOW_UP = f"<outbound.{LEAD}.2.0@acme.example>"
ACCOUNT = "sales@acme.example"
LEAD_ADDR = "bob@x.example"


def _classify(raw: bytes) -> object:
    return classify(parse(raw))


def _headers(text: str, body: str = "Thanks, that works for me.") -> bytes:
    """A minimal message from header lines (LF-separated) and a body, with CRLF line ends."""
    return (text.strip("\n") + "\n\n" + body + "\n").replace("\n", "\r\n").encode("utf-8")


# --- bounces -------------------------------------------------------------------------------------------------

BOUNCES: list[tuple[str, Callable[[], bytes], bool, str | None, str]] = [
    (
        "postfix",
        lambda: mail.dsn_postfix(recipient=LEAD_ADDR, original_message_id=OURS),
        True,
        "5.1.1",
        "RFC 3464 delivery report: 5.1.1 for bob@x.example",
    ),
    (
        "postfix delayed",
        lambda: mail.dsn_postfix(recipient=LEAD_ADDR, original_message_id=OURS, status="4.4.1", action="delayed"),
        False,
        "4.4.1",
        "RFC 3464 delivery report: 4.4.1",
    ),
    (
        "postfix mailbox full",
        lambda: mail.dsn_postfix(recipient=LEAD_ADDR, original_message_id=OURS, status="4.2.2"),
        False,
        "4.2.2",
        "4.2.2 for bob@x.example",
    ),
    (
        "postfix failed without a status",
        lambda: mail.dsn_postfix(recipient=LEAD_ADDR, original_message_id=OURS, status=None, diagnostic="gone"),
        True,
        None,
        "failed for bob@x.example",
    ),
    (
        "gmail",
        lambda: mail.dsn_gmail(recipient=LEAD_ADDR, original_message_id=OURS),
        True,
        "5.1.1",
        "RFC 3464 delivery report: 5.1.1",
    ),
    (
        "gmail delayed",
        lambda: mail.dsn_gmail(recipient=LEAD_ADDR, original_message_id=OURS, status="4.2.2", action="delayed"),
        False,
        "4.2.2",
        "4.2.2 for bob@x.example",
    ),
    (
        "microsoft 365",
        lambda: mail.dsn_m365(recipient=LEAD_ADDR, original_message_id=OURS),
        True,
        "5.1.10",
        "RFC 3464 delivery report: 5.1.10 for bob@x.example",
    ),
    (
        "microsoft 365 returning headers only",
        lambda: mail.dsn_m365(recipient=LEAD_ADDR, original_message_id=OURS, returned="headers"),
        True,
        "5.1.10",
        "5.1.10",
    ),
    (
        "microsoft 365 expired in the queue",
        lambda: mail.dsn_m365(
            recipient=LEAD_ADDR, original_message_id=OURS, status="4.4.7", diagnostic="550 4.4.7 QUEUE.Expired"
        ),
        False,
        "4.4.7",
        "4.4.7",
    ),
    (
        "exim",
        lambda: mail.dsn_exim(recipient=LEAD_ADDR, original_message_id=OURS),
        True,
        "5.1.1",
        "non-standard bounce (X-Failed-Recipients): 5.1.1 for bob@x.example",
    ),
    (
        "exim over quota",
        lambda: mail.dsn_exim(
            recipient=LEAD_ADDR, original_message_id=OURS, diagnostic="452 4.2.2 Mailbox full, try again later"
        ),
        False,
        "4.2.2",
        "X-Failed-Recipients",
    ),
    (
        "qmail",
        lambda: mail.dsn_qmail(recipient=LEAD_ADDR, original_message_id=OURS),
        True,
        "5.1.1",
        "non-standard bounce (bounce text): 5.1.1",
    ),
    (
        "sendmail without a report part",
        lambda: mail.dsn_sendmail_legacy(recipient=LEAD_ADDR, original_message_id=OURS),
        True,
        "5.1.1",
        "non-standard bounce (bounce text)",
    ),
]


@pytest.mark.parametrize(("shape", "build", "hard", "status", "reason"), BOUNCES, ids=[b[0] for b in BOUNCES])
def test_bounces_name_the_failed_recipient_its_class_and_our_returned_send(
    shape: str, build: Callable[[], bytes], hard: bool, status: str | None, reason: str
) -> None:
    got = classify(parse(build()))
    assert got.kind == BOUNCE, got.reason
    assert reason in got.reason
    assert [b.email for b in got.bounces] == [LEAD_ADDR]
    assert got.bounces[0].hard is hard
    assert got.bounces[0].status == status
    assert got.refs[0] == REF


@pytest.mark.parametrize(
    "build",
    [
        lambda: mail.dsn_gmail(recipient=LEAD_ADDR, original_message_id=OURS),
        lambda: mail.dsn_m365(recipient=LEAD_ADDR, original_message_id=OURS),
        lambda: mail.dsn_postfix(recipient=LEAD_ADDR, original_message_id=OURS),
        lambda: mail.dsn_exim(recipient=LEAD_ADDR, original_message_id=OURS),
    ],
    ids=["gmail", "m365", "postfix", "exim"],
)
def test_a_bounce_is_a_bounce_though_it_says_auto_submitted_auto_replied(build: Callable[[], bytes]) -> None:
    raw = build()
    assert b"Auto-Submitted: auto-replied" in raw
    assert classify(parse(raw)).kind == BOUNCE


def test_a_bounce_keeps_the_server_words_on_one_short_line() -> None:
    long = "550 5.1.1 " + "The account does not exist\n and the server says so at length. " * 20
    got = classify(parse(mail.dsn_gmail(recipient=LEAD_ADDR, original_message_id=OURS, diagnostic=long)))
    diagnostic = got.bounces[0].diagnostic or ""
    assert diagnostic.startswith("550 5.1.1 The account does not exist and the server")
    assert "\n" not in diagnostic and len(diagnostic) <= 300


def test_a_bounce_of_a_follow_up_names_the_returned_send_before_the_thread_it_answered() -> None:
    raw = mail.dsn_postfix(recipient=LEAD_ADDR, original_message_id=FOLLOW_UP).replace(
        b"Message-ID: " + FOLLOW_UP.encode(), b"References: " + OURS.encode() + b"\r\nMessage-ID: " + FOLLOW_UP.encode()
    )
    assert classify(parse(raw)).refs == (SendRef(LEAD, 2, 0), REF)


def test_a_bounce_recipient_address_is_lowercased_and_its_type_stripped() -> None:
    raw = mail.dsn_postfix(recipient="Bob.Buyer@X.Example", original_message_id=OURS)
    assert [b.email for b in classify(parse(raw)).bounces] == ["bob.buyer@x.example"]


DSN_OF_THREE = """From: MAILER-DAEMON@mail.acme.example (Mail Delivery System)
To: sales@acme.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Some recipients failed.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.acme.example

Final-Recipient: rfc822; gone@x.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 no such user

Final-Recipient: rfc822; full@x.example
Action: delayed
Status: 4.2.2

Final-Recipient: rfc822; fine@x.example
Action: delivered
Status: 2.0.0

Final-Recipient: rfc822; relayed@x.example
Action: relayed (to a non-DSN-aware mailer)

Final-Recipient: rfc822; quiet@x.example

Final-Recipient: rfc822; statusonly@x.example
Status: 5.2.1

--B--
"""


def test_a_report_of_several_recipients_lists_the_failed_and_delayed_ones_only() -> None:
    got = classify(parse(_headers(DSN_OF_THREE, "")))
    assert got.kind == BOUNCE
    assert [(b.email, b.hard, b.status, b.action) for b in got.bounces] == [
        ("gone@x.example", True, "5.1.1", "failed"),
        ("full@x.example", False, "4.2.2", "delayed"),
        ("statusonly@x.example", True, "5.2.1", "failed"),
    ]
    assert got.reason == (
        "RFC 3464 delivery report: 5.1.1 for gone@x.example, 4.2.2 for full@x.example, 5.2.1 for statusonly@x.example"
    )


def test_a_report_whose_status_part_is_base64_encoded_is_read_after_decoding() -> None:
    blocks = b"Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; bob@x.example\r\nStatus: 5.1.1\r\n"
    encoded = base64.encodebytes(blocks).decode().replace("\n", "\r\n")
    raw = (
        "From: MAILER-DAEMON@mx.example\r\nSubject: Undeliverable\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{encoded}--B--\r\n"
    ).encode()
    got = classify(parse(raw))
    assert [(b.email, b.hard, b.status, b.action) for b in got.bounces] == [(LEAD_ADDR, True, "5.1.1", "failed")]


def test_a_report_of_successful_delivery_is_not_a_bounce() -> None:
    raw = mail.dsn_postfix(recipient=LEAD_ADDR, original_message_id=OURS, status="2.0.0", action="delivered")
    got = classify(parse(raw))
    assert (got.kind, got.bounces, got.refs) == (UNRELATED, (), ())
    assert "without a failure" in got.reason


@pytest.mark.parametrize(
    ("sender", "subject"),
    [
        ("MAILER-DAEMON@mx.example", "Undeliverable mail"),
        ("postmaster@mx.example", "Delivery Status Notification (Failure)"),
        ("Mail Delivery System <mailer-daemon@mx.example>", "Mail delivery failed: returning message to sender"),
        ("postmaster@mx.example", "failure notice"),
        ("postmaster@mx.example", "Unzustellbar: Quick question"),
        ("postmaster@mx.example", "Non remis : Quick question"),
    ],
)
def test_a_delivery_failure_notice_from_a_mailer_daemon_is_a_bounce_even_unparsed(sender: str, subject: str) -> None:
    raw = mail.delivery_failure_notice(from_addr=sender, subject=subject, original_message_id=OURS)
    got = classify(parse(raw))
    assert (got.kind, got.bounces, got.refs) == (BOUNCE, (), (REF,))
    assert "delivery failure notice" in got.reason


def test_mail_from_a_mailer_daemon_without_a_failure_subject_is_machine_mail() -> None:
    raw = mail.delivery_failure_notice(from_addr="mailer-daemon@mx.example", subject="Weekly queue summary")
    assert classify(parse(raw)).kind == UNRELATED


def test_a_person_forwarding_a_bounce_is_not_a_bounce() -> None:
    body = (
        "Can you check this?\n\n---------- Forwarded message ---------\n"
        "This message was created automatically by mail delivery software.\n"
        "X-Failed-Recipients: bob@x.example\nRCPT TO:<bob@x.example>\n"
    )
    raw = mail.reply(from_addr="carol@x.example", to_addr=ACCOUNT, in_reply_to=None, subject="Fwd: Undeliverable")
    raw = raw.replace(b"Sounds good, let's talk.", body.replace("\n", "\r\n").encode())
    got = classify(parse(raw))
    assert (got.kind, got.bounces) == (REPLY, ())


# --- auto-replies --------------------------------------------------------------------------------------------

OUT_OF_OFFICE_SUBJECTS = [
    "Out of Office: Quick question",
    "Out of the office until Monday",
    "OUT-OF-OFFICE Re: Quick question",
    "Automatic reply: Quick question",
    "Auto-Reply: Quick question",
    "Autoreply: Quick question",
    "[Auto-Reply] Quick question",
    "Away: Quick question",
    "Away until June 10",
    "Away from the office",
    "Abwesenheitsnotiz: Quick question",
    "Automatische Antwort: Quick question",
    "Réponse automatique : Quick question",
    "Absence du bureau",
    "Absence",
    "Respuesta automática: Quick question",
    "Fuera de la oficina",
    "Risposta automatica: Quick question",
    "Fuori ufficio",
    "Automatisch antwoord: Quick question",
    "Afwezig: Quick question",
    "Resposta automática: Quick question",
    "Ausente: Quick question",
    "Autosvar: Quick question",
    "Automaattinen vastaus: Quick question",
    "Frånvaro",
    "Automatyczna odpowiedź: Quick question",
    "自动回复: Quick question",
    "自動応答: Quick question",
    "自動返信: Quick question",
    "On vacation until June 10",
]


@pytest.mark.parametrize("subject", OUT_OF_OFFICE_SUBJECTS)
def test_out_of_office_subjects_in_the_main_languages_are_auto_replies(subject: str) -> None:
    raw = mail.out_of_office(
        from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, subject=subject, auto_submitted=None
    )
    got = classify(parse(raw))
    assert (got.kind, got.reason, got.refs) == (AUTO_REPLY, "subject looks like an out-of-office reply", (REF,))
    assert got.subject == subject


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Away game tickets",
        "Away game tickets",
        "Re: Out of office next week?",
        "AW: Automatische Antwort",
        "Absolutely, let's talk",
        "Awayday agenda",
        "Re: Quick question",
        "Absent-minded question about pricing",
    ],
)
def test_human_replies_whose_subjects_only_resemble_an_absence_stay_replies(subject: str) -> None:
    raw = mail.reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, subject=subject)
    got = classify(parse(raw))
    assert (got.kind, got.reason) == (REPLY, "from a person")


def test_x_auto_response_suppress_asks_for_no_auto_reply_and_does_not_make_one() -> None:
    raw = mail.reply(
        from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, extra_headers={"X-Auto-Response-Suppress": "All"}
    )
    assert classify(parse(raw)).kind == REPLY
    html = mail.html_reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS)
    assert b"X-Auto-Response-Suppress: All" in html
    assert classify(parse(html)).kind == REPLY


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: auto-generated", "Auto-Submitted: auto-generated"),
        ("Auto-Submitted: Auto-Replied (vacation)", "Auto-Submitted: auto-replied (vacation)"),
        ("X-Autoreply: yes", "X-Autoreply: yes"),
        ("X-Autorespond: Quick question", "X-Autorespond: Quick question"),
        ("Precedence: auto_reply", "Precedence: auto_reply"),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: junk", "Precedence: junk"),
    ],
)
def test_auto_reply_headers_make_an_auto_reply_whatever_the_subject(header: str, reason: str) -> None:
    name, _, value = header.partition(": ")
    raw = mail.reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, extra_headers={name: value})
    got = classify(parse(raw))
    assert (got.kind, got.reason, got.refs) == (AUTO_REPLY, reason, (REF,))


def test_auto_submitted_no_is_a_person() -> None:
    raw = mail.reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, extra_headers={"Auto-Submitted": "no"})
    assert classify(parse(raw)).kind == REPLY


def test_an_exchange_out_of_office_reply_is_an_auto_reply_naming_our_send() -> None:
    got = classify(parse(mail.out_of_office(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS)))
    assert (got.kind, got.reason, got.refs) == (AUTO_REPLY, "Auto-Submitted: auto-generated", (REF,))
    assert got.snippet == "I am out of the office until June 10 with limited access to email."


# --- unsubscribe requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        f"unsubscribe outbound.{LEAD}.1.0",
        f"Re: unsubscribe outbound.{LEAD}.1.0",
        f"AW: WG: Unsubscribe outbound.{LEAD}.1.0",
        f"TR : UNSUBSCRIBE outbound.{LEAD}.1.0",
        f"  Fwd:unsubscribe outbound.{LEAD}.1.0",
    ],
)
def test_the_subject_of_our_mailto_link_is_an_unsubscribe_request_for_its_send(subject: str) -> None:
    raw = mail.unsubscribe_mail(from_addr=LEAD_ADDR, to_addr=ACCOUNT, token_subject=subject, in_reply_to=FOLLOW_UP)
    got = classify(parse(raw))
    assert (got.kind, got.reason) == (UNSUBSCRIBE, "subject asks to unsubscribe")
    assert got.refs == (REF, SendRef(LEAD, 2, 0))


def test_a_plain_unsubscribe_subject_is_a_request_matched_later_by_address() -> None:
    raw = mail.reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=None, subject="Unsubscribe me please")
    got = classify(parse(raw))
    assert (got.kind, got.refs, got.from_email) == (UNSUBSCRIBE, (), LEAD_ADDR)


@pytest.mark.parametrize("subject", ["Unsubscribed from our list", "How do I unsubscribe?", "Re: Quick question"])
def test_subjects_that_mention_unsubscribing_elsewhere_are_not_requests(subject: str) -> None:
    raw = mail.reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, subject=subject)
    assert classify(parse(raw)).kind == REPLY


# --- replies and the rest ------------------------------------------------------------------------------------


def test_a_reply_names_the_send_it_answers_then_the_thread_latest_first() -> None:
    raw = mail.reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=FOLLOW_UP, references=f"{OURS} {FOLLOW_UP}")
    got = classify(parse(raw))
    assert (got.kind, got.refs) == (REPLY, (SendRef(LEAD, 2, 0), REF))


def test_our_message_id_quoted_in_a_reply_body_is_not_evidence() -> None:
    raw = mail.reply(
        from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=None, body=f"About {OURS} and outbound.{LEAD}.1.0"
    )
    got = classify(parse(raw))
    assert (got.kind, got.refs) == (REPLY, ())


def test_a_person_writing_anew_is_a_reply_for_the_sync_to_match_by_address() -> None:
    raw = mail.reply(from_addr="New.Person@Y.example", to_addr=ACCOUNT, in_reply_to=None, subject="Hello")
    got = classify(parse(raw))
    assert (got.kind, got.refs, got.from_email) == (REPLY, (), "new.person@y.example")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (mail.newsletter(to_addr=ACCOUNT), "mailing list (List-Id)"),
        (mail.newsletter(to_addr=ACCOUNT, precedence=None), "mailing list (List-Id)"),
        (
            _headers("From: a@list.example\nList-Unsubscribe: <mailto:u@list.example>"),
            "mailing list (List-Unsubscribe)",
        ),
        (_headers("From: a@list.example\nPrecedence: list"), "mailing list (Precedence: list)"),
        (_headers("From: GitHub <noreply@github.com>\nSubject: [repo] New issue"), "from a machine address"),
        (_headers("From: no-reply@accounts.example\nSubject: Your code"), "from a machine address"),
        (_headers("From: notifications@tool.example\nSubject: Digest"), "from a machine address"),
        (_headers("From: donotreply@bank.example\nSubject: Statement"), "from a machine address"),
        (_headers("From: postmaster@mx.example\nSubject: Hello"), "from a machine address"),
        (_headers("Subject: who sent this?"), "no From address"),
        (_headers("From: carol@x.example\nReturn-Path: <>\nSubject: report"), "null return path"),
    ],
)
def test_lists_machines_and_senderless_mail_are_unrelated(raw: bytes, reason: str) -> None:
    got = classify(parse(raw))
    assert got.kind == UNRELATED
    assert reason in got.reason


def test_a_newsletter_with_an_out_of_office_sounding_subject_is_still_list_mail() -> None:
    got = classify(parse(mail.newsletter(to_addr=ACCOUNT, subject="Out of office? Our app answers for you")))
    assert (got.kind, got.reason) == (UNRELATED, "mailing list (List-Id)")


# --- the other fields ----------------------------------------------------------------------------------------


def test_the_fields_of_a_reply() -> None:
    raw = mail.reply(from_addr="Bob@X.Example", to_addr=ACCOUNT, in_reply_to=OURS, message_id="  <abc.123@x.example>  ")
    got = classify(parse(raw))
    assert got.message_id == "<abc.123@x.example>"
    assert got.date == datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
    assert got.subject == "Re: Quick question"
    assert got.from_email == "bob@x.example"
    assert got.snippet == "Sounds good, let's talk."


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Mon, 03 Jun 2024 12:30:00 +0200", datetime(2024, 6, 3, 10, 30, tzinfo=UTC)),
        ("Mon, 03 Jun 2024 10:30:00 -0000", datetime(2024, 6, 3, 10, 30, tzinfo=UTC)),
        ("3 Jun 2024 10:30 GMT", datetime(2024, 6, 3, 10, 30, tzinfo=UTC)),
        ("Mon, 99 Foo 2024 99:99:99 +9999", None),
        ("yesterday", None),
        ("", None),
        ("Mon, 03 Jun 99999 10:30:00 +0000", None),
    ],
)
def test_the_date_is_aware_utc_or_none(date: str, expected: datetime | None) -> None:
    got = classify(parse(_headers(f"From: a@x.example\nDate: {date}")))
    assert got.date == expected
    assert got.date is None or got.date.utcoffset() is not None


@pytest.mark.parametrize(
    ("header", "subject"),
    [
        ("=?UTF-8?B?UmU6IFF1aWNrIHF1ZXN0aW9uIOKAkyBqYQ==?=", "Re: Quick question – ja"),
        ("=?iso-8859-1?q?R=E9ponse_automatique_:_Quick?=", "Réponse automatique : Quick"),
        ("=?utf-8?q?Caf=C3=A9?= =?utf-8?q?_au_lait?= ok", "Café au lait ok"),
        ("Re: =?utf-8?b?5pel5pys6Kqe?=\n  folded", "Re: 日本語 folded"),
        ("Réunion demain", "Réunion demain"),
    ],
)
def test_subjects_are_decoded_to_one_line(header: str, subject: str) -> None:
    raw = _headers(f"From: a@x.example\nSubject: {header}")
    assert classify(parse(raw)).subject == subject


def test_a_long_subject_is_cut_to_300_characters() -> None:
    got = classify(parse(_headers("From: a@x.example\nSubject: " + "word " * 200)))
    assert len(got.subject) == 300 and "\n" not in got.subject


HTML_ONLY = """From: Bob <bob@x.example>
Subject: RE: Quick question
Content-Type: text/html; charset=utf-8
"""


@pytest.mark.parametrize(
    ("raw", "snippet"),
    [
        (
            mail.reply(
                from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, body="Yes.\n\nThursday?\n\n-- \nBob\nCEO"
            ),
            "Yes. Thursday?",
        ),
        (mail.html_reply(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS), "Yes & thanks, Thursday works."),
        (
            _headers(HTML_ONLY, "<div>Hi&nbsp;Sam,<br>works<script>x()</script></div><blockquote>> old</blockquote>"),
            "Hi Sam, works",
        ),
        (
            _headers(
                "From: bob@x.example",
                "Works for me.\n\n-----Original Message-----\nFrom: Sam\nSent: Monday\n\nWould you have ten minutes?",
            ),
            "Works for me.",
        ),
        (
            _headers(
                "From: bob@x.example",
                "Works for me.\n\n________________________________\nFrom: Sam <s@a.example>\nSent: Monday\nHi",
            ),
            "Works for me.",
        ),
        (
            _headers("From: bob@x.example", "Inline:\n> your question\nmy answer\nAm 03.06.2024 schrieb Sam:\n> old"),
            "Inline: my answer",
        ),
    ],
    ids=["signature", "html reply", "html only", "outlook original", "outlook rule", "inline and german"],
)
def test_the_snippet_is_what_the_sender_wrote(raw: bytes, snippet: str) -> None:
    assert classify(parse(raw)).snippet == snippet


WITH_ATTACHMENT = """From: bob@x.example
Subject: the file
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="M"

--M
Content-Type: application/pdf; name="a.pdf"
Content-Disposition: attachment; filename="a.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKc2VjcmV0IGJ5dGVz
--M
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment; filename="notes.txt"

attached notes are not the message
--M--
"""


def test_the_snippet_never_shows_an_attachment() -> None:
    got = classify(parse(_headers(WITH_ATTACHMENT, "")))
    assert (got.kind, got.snippet) == (REPLY, "")


def test_the_snippet_is_at_most_200_characters_on_one_line() -> None:
    got = classify(parse(_headers("From: bob@x.example", "line of words\n" * 100)))
    assert len(got.snippet) == 200 and "\n" not in got.snippet


# --- malformed input -----------------------------------------------------------------------------------------

NESTED = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(300))
MALFORMED = [
    b"",
    b"\x00\xff\xfe garbage \x80\x81\r\n\r\n\xff",
    b"not a header line at all\r\n\r\nbody",
    b"From: \r\nSubject:\r\nDate:\r\nMessage-ID:\r\n\r\n",
    b'From: <<<@@@>>>, "unterminated\r\nSubject: =?utf-8?q?broken\r\n\r\nx',
    b"From: a@x.example\r\nSubject: =?x-unknown-charset?q?caf=E9?=\r\n\r\nx",
    b"From: a@x.example\r\nSubject: \xc3\xa9t\xe9 raw 8-bit\r\n\r\nx",
    b"From: a@x.example\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xe9t\xe9",
    b"From: a@x.example\r\nContent-Type: text/plain; charset=zlib\r\n\r\nbody",
    b"From: a@x.example\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
    b"From: a@x.example\r\nContent-Type: multipart/mixed\r\n\r\nno boundary at all",
    b"From: a@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;\r\nAction: failed\r\n--B--\r\n",
    b"From: a@x.example\r\nContent-Type: message/rfc822\r\n\r\n",
    b"From: a@x.example\r\nDate: Mon, 03 Jun 2024 99:99:99 +0000\r\nReferences: <<<>>>\r\n\r\nx",
    _headers("From: a@x.example\nMIME-Version: 1.0\n" + NESTED, "deep"),
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_messages_never_raise_and_give_safe_values(raw: bytes) -> None:
    got = classify(parse(raw))
    assert got.kind in (BOUNCE, AUTO_REPLY, UNSUBSCRIBE, REPLY, UNRELATED)
    for value in (got.reason, got.subject, got.snippet, got.message_id or "", got.from_email or ""):
        value.encode("utf-8")  # valid Unicode, storable as BSON
        assert "\n" not in value and "\r" not in value


def test_undecodable_bytes_become_replacement_characters_not_errors() -> None:
    got = classify(parse(b"From: a@x.example\r\nSubject: \xc3\xa9t\xe9 raw\r\n\r\n\xff\xfe body"))
    assert got.subject == "ét\ufffd raw"
    assert "body" in got.snippet


@pytest.mark.parametrize("name", ["Subject", "References", "Content-Type", "From", "Auto-Submitted"])
def test_a_huge_header_is_read_in_bounded_time(name: str) -> None:
    value = {
        "Subject": "=?utf-8?q?caf=C3=A9?= " * 100_000,
        "References": f"<a@b.example> {OURS} " * 40_000,
        "Content-Type": 'multipart/mixed; a="b"; ' * 40_000,
        "From": '"\\x" <a@b.example>, ' * 100_000,
        "Auto-Submitted": "x" * 2_000_000,
    }[name]
    started = time.monotonic()
    got = classify(parse(_headers(f"From: bob@x.example\nIn-Reply-To: {OURS}\n{name}: {value}")))
    assert time.monotonic() - started < 10
    assert len(got.subject) <= 300


def test_classify_reads_a_message_parsed_with_the_legacy_policy_too() -> None:
    raw = mail.dsn_m365(recipient=LEAD_ADDR, original_message_id=OURS)
    got = classify(email.message_from_bytes(raw))
    assert (got.kind, [b.email for b in got.bounces], got.refs[0]) == (BOUNCE, [LEAD_ADDR], REF)
    subject = "=?utf-8?q?R=C3=A9ponse_automatique?="
    ooo = mail.out_of_office(from_addr=LEAD_ADDR, to_addr=ACCOUNT, in_reply_to=OURS, subject=subject)
    got = classify(email.message_from_bytes(ooo))
    assert (got.kind, got.subject) == (AUTO_REPLY, "Réponse automatique")
