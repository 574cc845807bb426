"""Inbound messages as mailbox servers hold them: raw RFC 5322 bytes with CRLF line ends.

Each builder takes the addresses and the Message-ID of ours being answered or returned, so unit tests can
classify them and integration tests can APPEND them to a real IMAP mailbox. The bounce shapes follow RFC 3464
(delivery status notifications), RFC 6522 (multipart/report) and what Postfix, Exim, qmail, Sendmail, Gmail
and Microsoft 365 send; the auto-reply shapes follow RFC 3834 and Exchange's out-of-office replies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

DATE = "Mon, 03 Jun 2024 10:00:00 +0000"
SENDER = "sales@acme.example"
ORIGINAL_SUBJECT = "Quick question"


def _crlf(text: str) -> bytes:
    """`text` with CRLF line ends, encoded as UTF-8 (8-bit bodies are declared as such where they occur)."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _id(*parts: object) -> str:
    """A stable Message-ID for a generated message (so a test can name it)."""
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:16]
    return f"<{digest}@{str(parts[0]).rpartition('@')[2] or 'mail.example'}>"


def _headers(fields: Mapping[str, str | None]) -> str:
    return "".join(f"{name}: {value}\n" for name, value in fields.items() if value is not None)


def original(
    *, sender: str = SENDER, recipient: str, message_id: str | None, subject: str = ORIGINAL_SUBJECT
) -> tuple[str, str]:
    """(headers, body) of the message we sent, as a bounce returns it."""
    token = message_id.strip("<>").partition("@")[0] if message_id else ""
    headers = _headers(
        {
            "Return-Path": f"<{sender}>",
            "Received": f"from [127.0.0.1] (localhost [127.0.0.1])\n\tby mail.acme.example (Postfix) with ESMTPSA\n"
            f"\tfor <{recipient}>; {DATE}",
            "From": f"Sam Sales <{sender}>",
            "To": recipient,
            "Subject": subject,
            "Date": DATE,
            "Message-ID": message_id,
            "List-Unsubscribe": f"<mailto:{sender}?subject=unsubscribe%20{token}>" if token else None,
            "MIME-Version": "1.0",
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Transfer-Encoding": "7bit",
        }
    )
    return headers, "Hi,\n\nWould you have ten minutes this week to talk about your outbound?\n\nSam\n"


def reply(
    *,
    from_addr: str,
    to_addr: str,
    in_reply_to: str | None,
    subject: str = "Re: Quick question",
    body: str = "Sounds good, let's talk.",
    quote: bool = True,
    message_id: str | None = None,
    references: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A person's plain-text reply (Gmail-like), quoting our message below an "On ... wrote:" line."""
    text = body + "\n"
    if quote:
        text += (
            f"\nOn Mon, Jun 3, 2024 at 9:00 AM Sam Sales <{to_addr}>\nwrote:\n\n"
            "> Hi,\n>\n> Would you have ten minutes this week to talk about your outbound?\n>\n> Sam\n"
        )
    fields = {
        "From": f"Bob Buyer <{from_addr}>",
        "To": f"Sam Sales <{to_addr}>",
        "Subject": subject,
        "Date": DATE,
        "Message-ID": message_id or _id(from_addr, subject, in_reply_to),
        "In-Reply-To": in_reply_to,
        "References": references or in_reply_to,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Transfer-Encoding": "8bit",
        **(extra_headers or {}),
    }
    return _crlf(_headers(fields) + "\n" + text)


def html_reply(
    *,
    from_addr: str,
    to_addr: str,
    in_reply_to: str | None,
    subject: str = "RE: Quick question",
    body_html: str = "<p>Yes &amp; thanks, <b>Thursday</b> works.</p>",
    message_id: str | None = None,
) -> bytes:
    """An HTML-only reply (Outlook on the web) with the original in Gmail's quote div and a blockquote."""
    html = (
        "<html><head><style>p { margin: 0 }</style></head><body>"
        f"{body_html}"
        '<div class="gmail_quote"><div>On Mon, Jun 3, 2024 Sam Sales wrote:</div>'
        "<blockquote>Would you have ten minutes this week?</blockquote></div>"
        "</body></html>"
    )
    fields = {
        "From": f"Bob Buyer <{from_addr}>",
        "To": to_addr,
        "Subject": subject,
        "Date": DATE,
        "Message-ID": message_id or _id(from_addr, subject, "html"),
        "In-Reply-To": in_reply_to,
        "References": in_reply_to,
        "X-Auto-Response-Suppress": "All",
        "MIME-Version": "1.0",
        "Content-Type": "text/html; charset=utf-8",
        "Content-Transfer-Encoding": "8bit",
    }
    return _crlf(_headers(fields) + "\n" + html + "\n")


def out_of_office(
    *,
    from_addr: str,
    to_addr: str,
    in_reply_to: str | None,
    subject: str = "Automatic reply: Quick question",
    body: str = "I am out of the office until June 10 with limited access to email.",
    auto_submitted: str | None = "auto-generated",
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """An out-of-office reply as Exchange sends it (Auto-Submitted, X-Auto-Response-Suppress, the thread ids).

    `auto_submitted=None` leaves the RFC 3834 header out, so only the subject tells.
    """
    fields = {
        "From": f"Bob Buyer <{from_addr}>",
        "To": f"Sam Sales <{to_addr}>",
        "Subject": subject,
        "Thread-Topic": ORIGINAL_SUBJECT,
        "Date": DATE,
        "Message-ID": _id(from_addr, subject, "ooo"),
        "In-Reply-To": in_reply_to,
        "References": in_reply_to,
        "Auto-Submitted": auto_submitted,
        "X-Auto-Response-Suppress": "All",
        "X-MS-Exchange-Inbox-Rules-Loop": from_addr,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Transfer-Encoding": "8bit",
        **(extra_headers or {}),
    }
    return _crlf(_headers(fields) + "\n" + body + "\n")


def _delivery_status(
    reporting_mta: str,
    recipient: str,
    status: str | None,
    action: str,
    diagnostic: str | None,
    remote_mta: str | None = None,
    per_message: dict[str, str] | None = None,
) -> str:
    message_fields = _headers({"Reporting-MTA": f"dns; {reporting_mta}", **(per_message or {})})
    recipient_fields = _headers(
        {
            "Final-Recipient": f"rfc822; {recipient}",
            "Original-Recipient": f"rfc822;{recipient}",
            "Action": action,
            "Status": status,
            "Remote-MTA": f"dns; {remote_mta}" if remote_mta else None,
            "Diagnostic-Code": f"smtp; {diagnostic}" if diagnostic else None,
        }
    )
    return message_fields + "\n" + recipient_fields


def dsn_postfix(
    *,
    recipient: str,
    original_message_id: str | None,
    sender: str = SENDER,
    status: str | None = "5.1.1",
    action: str = "failed",
    diagnostic: str | None = None,
    reporting_mta: str = "mail.acme.example",
) -> bytes:
    """Postfix's bounce(8) report: notice, message/delivery-status, the returned message (headers when delayed)."""
    remote = recipient.rpartition("@")[2]
    delayed = action == "delayed"
    delivered = action in ("delivered", "relayed", "expanded")
    if diagnostic is None and status and status.startswith("5"):
        diagnostic = f"550 {status} <{recipient}>: Recipient address rejected: User unknown"
    elif diagnostic is None and status and status.startswith("4"):
        diagnostic = f"452 {status} <{recipient}>: Recipient address rejected: Mailbox full"
    elif diagnostic is None:
        diagnostic = "250 2.0.0 Ok: queued as 4WtZ3k1Hn9z9sWq" if delivered else "554 5.0.0 Service unavailable"
    subject = "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    if delivered:
        subject = "Successful Mail Delivery Report"
    boundary = f"4B3C2D1E0F.1717408800/{reporting_mta}"
    headers, body = original(sender=sender, recipient=recipient, message_id=original_message_id)
    returned = (
        "Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n" + headers
        if delayed
        else "Content-Description: Undelivered Message\nContent-Type: message/rfc822\n\n" + headers + "\n" + body
    )
    notice = (
        f"This is the mail system at host {reporting_mta}.\n\n"
        + (
            "####################################################################\n"
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
            "####################################################################\n\n"
            "Your message could not be delivered for 4.0 hours.\nIt will be retried until it is 5.0 days old.\n"
            if delayed
            else "Your message was successfully delivered to the destination(s)\n"
            "listed below. If the message was delivered to mailbox you will\n"
            "receive no further notifications. Otherwise you may still receive\n"
            "notifications of mail delivery errors from other systems.\n"
            if delivered
            else "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients. It's attached below.\n"
        )
        + "\nFor further assistance, please send mail to postmaster.\n\n"
        "If you do so, please include this problem report. You can\n"
        "delete your own text from the attached returned message.\n\n"
        "                   The mail system\n\n"
        f"<{recipient}>: host mx.{remote}[192.0.2.25] said: {diagnostic} (in reply to RCPT TO command)\n"
    )
    fields = {
        "Return-Path": "<>",
        "From": f"MAILER-DAEMON@{reporting_mta} (Mail Delivery System)",
        "Subject": subject,
        "To": sender,
        "Auto-Submitted": "auto-replied",
        "MIME-Version": "1.0",
        "Content-Type": f'multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding": "8bit",
        "Message-Id": f"<20240603100000.4B3C2D1E0F@{reporting_mta}>",
        "Date": DATE,
    }
    dsn = _delivery_status(
        reporting_mta,
        recipient,
        status,
        action,
        diagnostic,
        remote_mta=f"mx.{remote}",
        per_message={
            "X-Postfix-Queue-ID": "4B3C2D1E0F",
            "X-Postfix-Sender": f"rfc822; {sender}",
            "Arrival-Date": DATE,
        },
    )
    return _crlf(
        _headers(fields)
        + "\nThis is a MIME-encapsulated message.\n\n"
        + f"--{boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
        + notice
        + f"\n--{boundary}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        + dsn
        + f"\n--{boundary}\n"
        + returned
        + f"\n--{boundary}--\n"
    )


def dsn_exim(
    *,
    recipient: str,
    original_message_id: str | None,
    sender: str = SENDER,
    diagnostic: str | None = None,
    host: str = "mx1.mailhost.example",
) -> bytes:
    """Exim's plain-text bounce: X-Failed-Recipients, the SMTP error, then the returned message quoted."""
    diagnostic = diagnostic or f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown"
    headers, body = original(sender=sender, recipient=recipient, message_id=original_message_id)
    remote = recipient.rpartition("@")[2]
    fields = {
        "Return-path": "<>",
        "From": f"Mail Delivery System <Mailer-Daemon@{host}>",
        "To": sender,
        "References": original_message_id,
        "Content-Type": "text/plain; charset=us-ascii",
        "Subject": "Mail delivery failed: returning message to sender",
        "Message-Id": f"<E1sE7Xq-0004Zk-2b@{host}>",
        "X-Failed-Recipients": recipient,
        "Auto-Submitted": "auto-replied",
        "Date": DATE,
    }
    text = (
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"  {recipient}\n"
        f"    host mx.{remote} [192.0.2.25]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{recipient}>:\n"
        f"    {diagnostic}\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n" + headers + "\n" + body
    )
    return _crlf(_headers(fields) + "\n" + text)


def dsn_qmail(*, recipient: str, original_message_id: str | None, sender: str = SENDER) -> bytes:
    """qmail-send's bounce (QSBMF): "Hi. This is the qmail-send program", then the message below a line."""
    headers, body = original(sender=sender, recipient=recipient, message_id=original_message_id)
    fields = {
        "Return-Path": "<>",
        "Date": DATE,
        "From": "MAILER-DAEMON@mail.qmailhost.example",
        "To": sender,
        "Subject": "failure notice",
    }
    text = (
        "Hi. This is the qmail-send program at mail.qmailhost.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"<{recipient}>:\n"
        "192.0.2.25 does not like recipient.\n"
        f"Remote host said: 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\n"
        "Giving up on 192.0.2.25.\n\n"
        "--- Below this line is a copy of the message.\n\n" + headers + "\n" + body
    )
    return _crlf(_headers(fields) + "\n" + text)


def dsn_sendmail_legacy(*, recipient: str, original_message_id: str | None, sender: str = SENDER) -> bytes:
    """An old Sendmail bounce without a report part: the transcript and the original message in plain text."""
    headers, body = original(sender=sender, recipient=recipient, message_id=original_message_id)
    fields = {
        "Return-Path": "<>",
        "Date": DATE,
        "From": "Mail Delivery Subsystem <MAILER-DAEMON@mail.oldhost.example>",
        "Message-Id": "<202406031000.453A0000012345@mail.oldhost.example>",
        "To": sender,
        "Subject": "Returned mail: see transcript for details",
        "Auto-Submitted": "auto-generated (failure)",
    }
    text = (
        "The original message was received at Mon, 3 Jun 2024 10:00:00 GMT\n"
        "from mail.acme.example [192.0.2.10]\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        f"<{recipient}>\n"
        "    (reason: 550 5.1.1 User unknown)\n\n"
        "   ----- Transcript of session follows -----\n"
        f"... while talking to mx.{recipient.rpartition('@')[2]}.:\n"
        f">>> RCPT To:<{recipient}>\n"
        f"<<< 550 5.1.1 <{recipient}>... User unknown\n"
        f"550 5.1.1 {recipient}... User unknown\n\n"
        "   ----- Original message follows -----\n\n" + headers + "\n" + body
    )
    return _crlf(_headers(fields) + "\n" + text)


def dsn_gmail(
    *,
    recipient: str,
    original_message_id: str | None,
    sender: str = SENDER,
    status: str | None = "5.1.1",
    action: str = "failed",
    diagnostic: str | None = None,
) -> bytes:
    """Gmail's bounce: mailer-daemon@googlemail.com, Auto-Submitted, multipart/report, original headers only."""
    delayed = action == "delayed" or bool(status and status.startswith("4"))
    if diagnostic is None and delayed:
        diagnostic = (
            f"452-{status or '4.2.2'} The recipient's inbox is out of storage space. Please direct the\n"
            f" 452 {status or '4.2.2'} recipient to https://support.google.com/mail/?p=OverQuotaTemp b2-20020a05"
            " - gsmtp"
        )
    elif diagnostic is None:
        diagnostic = (
            f"550-{status or '5.1.1'} The email account that you tried to reach does not exist. Please try\n"
            f" 550-{status or '5.1.1'} double-checking the recipient's email address for typos or\n"
            f" 550 {status or '5.1.1'} unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1-20020a05"
            " - gsmtp"
        )
    boundary = "000000000000a1b2c3061a9f0d7e"
    headers, _body = original(sender=sender, recipient=recipient, message_id=original_message_id)
    fields = {
        "Return-Path": "<>",
        "From": "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "To": sender,
        "Auto-Submitted": "auto-replied",
        "Subject": f"Delivery Status Notification ({'Delay' if delayed else 'Failure'})",
        "References": original_message_id,
        "In-Reply-To": original_message_id,
        "X-Failed-Recipients": None if delayed else recipient,
        "Message-ID": "<665da8a0.050a0220.1f1b.9c2dGMR@mx.google.com>",
        "Date": "Mon, 03 Jun 2024 03:00:00 -0700 (PDT)",
        "MIME-Version": "1.0",
        "Content-Type": f'multipart/report; boundary="{boundary}"; report-type=delivery-status',
    }
    notice = (
        "** Message not delivered yet **\n\nThere was a temporary problem delivering your message to "
        f"{recipient}. Gmail will retry for 46 more hours.\n"
        if delayed
        else f"** Address not found **\n\nYour message wasn't delivered to {recipient} because the address "
        "couldn't be found, or is unable to receive mail.\n\nLearn more here: "
        "https://support.google.com/mail/?p=NoSuchUser\n"
    )
    notice += "\nThe response was:\n\n" + " ".join(diagnostic.split()) + "\n"
    dsn = _delivery_status(
        "googlemail.com",
        recipient,
        status,
        action,
        diagnostic,
        remote_mta=f"mx.{recipient.rpartition('@')[2]}. (192.0.2.25)",
        per_message={
            "Received-From-MTA": f"dns; {sender}",
            "Arrival-Date": "Mon, 03 Jun 2024 03:00:00 -0700 (PDT)",
            "X-Original-Message-ID": original_message_id or "<unknown@acme.example>",
        },
    )
    html = f"<html><body><h2>Address not found</h2><p>Your message wasn't delivered to <b>{recipient}</b>.</p>"
    return _crlf(
        _headers(fields)
        + f'\n--{boundary}\nContent-Type: multipart/alternative; boundary="{boundary}alt"\n\n'
        + f'--{boundary}alt\nContent-Type: text/plain; charset="UTF-8"\n\n{notice}\n'
        + f'--{boundary}alt\nContent-Type: text/html; charset="UTF-8"\n\n{html}</body></html>\n'
        + f"--{boundary}alt--\n"
        + f"\n--{boundary}\nContent-Type: message/delivery-status\n\n{dsn}"
        + f"\n--{boundary}\nContent-Type: text/rfc822-headers\n\n{headers}"
        + f"\n--{boundary}--\n"
    )


def dsn_m365(
    *,
    recipient: str,
    original_message_id: str | None,
    sender: str = SENDER,
    tenant: str = "contoso",
    status: str | None = "5.1.10",
    action: str = "failed",
    diagnostic: str | None = None,
    returned: str = "message",
) -> bytes:
    """A Microsoft 365 NDR: "Undeliverable: <subject>" from postmaster@<tenant>.onmicrosoft.com, multipart/report.

    `returned` is "message" (message/rfc822, the usual) or "headers" (text/rfc822-headers).
    """
    diagnostic = diagnostic or (
        f"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient {recipient} not found by SMTP address lookup"
    )
    mta = "AM0PR01MB1234.eurprd01.prod.exchangelabs.com"
    boundary = "_000_AM0PR01MB1234A1B2C3D4E5F6_"
    headers, body = original(sender=sender, recipient=recipient, message_id=original_message_id)
    local, _, domain = recipient.partition("@")
    fields = {
        "From": f"Microsoft Outlook <postmaster@{tenant}.onmicrosoft.com>",
        "To": sender,
        "Date": DATE,
        "Content-Type": f'multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"',
        "X-MS-Exchange-Message-Is-Ndr": "",
        "Content-Language": "en-US",
        "Message-ID": f"<a1b2c3d4-0000-4000-8000-0123456789ab@{mta}>",
        "In-Reply-To": original_message_id,
        "References": original_message_id,
        "Subject": f"Undeliverable: {ORIGINAL_SUBJECT}",
        "Auto-Submitted": "auto-replied",
        "MIME-Version": "1.0",
    }
    notice = (
        f"Your message to {recipient} couldn't be delivered.\n\n{local} wasn't found at {domain}.\n\n"
        "Action Required: Recipient\nUnknown To address\n\nHow to Fix It\n"
        "The address may be misspelled or may not exist. Try one or more of the following:\n\n"
        "Diagnostic information for administrators:\n\n"
        f"Generating server: {mta}\n\n{recipient}\nRemote server returned '{diagnostic}'\n\n"
        "Original message headers:\n\n" + headers
    )
    part = (
        "Content-Type: message/rfc822\n\n" + headers + "\n" + body
        if returned == "message"
        else "Content-Type: text/rfc822-headers\n\n" + headers
    )
    dsn = _delivery_status(
        mta,
        recipient,
        status,
        action,
        diagnostic,
        per_message={"Received-From-MTA": "dns;mail.acme.example", "Arrival-Date": DATE},
    )
    return _crlf(
        _headers(fields)
        + f'\n--{boundary}\nContent-Type: text/plain; charset="us-ascii"\n\n{notice}'
        + f"\n--{boundary}\nContent-Type: message/delivery-status\n\n{dsn}"
        + f"\n--{boundary}\n{part}"
        + f"\n--{boundary}--\n"
    )


def delivery_failure_notice(
    *,
    to_addr: str = SENDER,
    from_addr: str = "postmaster@mail.example",
    subject: str = "Undeliverable mail",
    body: str = "Your message could not be delivered. Please contact your administrator.",
    original_message_id: str | None = None,
) -> bytes:
    """A delivery-failure notice no bounce format describes: only its sender and subject tell."""
    fields = {
        "From": from_addr,
        "To": to_addr,
        "Subject": subject,
        "Date": DATE,
        "Message-ID": _id(from_addr, subject),
        "In-Reply-To": original_message_id,
        "Content-Type": "text/plain; charset=us-ascii",
    }
    return _crlf(_headers(fields) + "\n" + body + "\n")


def unsubscribe_mail(*, from_addr: str, to_addr: str, token_subject: str, in_reply_to: str | None = None) -> bytes:
    """What a mail client sends for our List-Unsubscribe mailto: the token subject, an empty-ish body."""
    fields = {
        "From": from_addr,
        "To": to_addr,
        "Subject": token_subject,
        "Date": DATE,
        "Message-ID": _id(from_addr, token_subject),
        "In-Reply-To": in_reply_to,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=us-ascii",
    }
    return _crlf(_headers(fields) + "\nThis message was automatically generated by Gmail.\n")


def newsletter(
    *,
    to_addr: str,
    from_addr: str = "news@shop.example",
    subject: str = "This week's deals: 20% off",
    precedence: str | None = "bulk",
) -> bytes:
    """Bulk list mail: List-Id, one-click List-Unsubscribe, Precedence: bulk, HTML and a text part."""
    boundary = "b1_newsletter"
    fields = {
        "From": f"Shop News <{from_addr}>",
        "To": to_addr,
        "Subject": subject,
        "Date": DATE,
        "Message-ID": _id(from_addr, subject, "news"),
        "List-Id": "Shop weekly <weekly.shop.example>",
        "List-Unsubscribe": "<https://shop.example/u/abc123>, <mailto:unsubscribe@shop.example?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": precedence,
        "Feedback-ID": "weekly:shop:esp",
        "MIME-Version": "1.0",
        "Content-Type": f'multipart/alternative; boundary="{boundary}"',
    }
    return _crlf(
        _headers(fields)
        + f"\n--{boundary}\nContent-Type: text/plain; charset=utf-8\n\nThis week's deals are here.\n"
        + f"\n--{boundary}\nContent-Type: text/html; charset=utf-8\n\n<p>This week's deals are here.</p>\n"
        + f"\n--{boundary}--\n"
    )
