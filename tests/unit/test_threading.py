"""Threaded follow-ups and List-Unsubscribe: the subject and headers of each step's message, what a send records
for the next step (`progress.threads`), and which account a follow-up may take (its recipient's mailbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from app.domain.inbound import SendRef
from app.domain.models import Campaign, EmailAccount, Lead, SequenceStep, Template
from app.domain.planning import NEW_THREAD, Thread, Threading, thread_before, threading_for, threads_of
from app.domain.settlement import LeadContext, RecipientResult, settle
from app.domain.templating import Renderer, TemplateError, reply_subject
from app.domain.unsubscribe import verify
from app.send.compose import ComposeError, UnsubscribeLinks, compose
from app.send.round_outcomes import with_message
from app.store.account_scan import assign, pinned_only
from app.transport.base import OutgoingMessage, ValidatedMessage

NOW = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
LEAD_ID = ObjectId("65f000000000000000000001")
CAMPAIGN = Campaign.from_doc({"_id": "c1", "name": "Spring", "status": "active", "sequence_id": "s1", "settings": {}})
FIRST_ID = f"<outbound.{LEAD_ID}.1.0@sender.example>"
SECOND_ID = f"<outbound.{LEAD_ID}.2.0@sender.example>"
STEP_1 = Thread("a1", "Quick question, Ann", (FIRST_ID,), 1)
LINKS = UnsubscribeLinks(public_url="https://out.example.com/", secret_key="k" * 32)


def lead(threads: dict[str, Any] | None = None) -> Lead:
    data = [{"email": "ann@acme.example", "first_name": "Ann"}]
    return Lead.from_doc({"_id": LEAD_ID, "campaign_id": "c1", "lead_data": data, "progress": {"threads": threads}})


def account() -> EmailAccount:
    return EmailAccount.from_doc({"_id": "a1", "email": "bob@sender.example", "smtp_host": "smtp.example.com"})


def template(subject: str = "", text: str = "Hello {{ first_name }}") -> Template:
    return Template(id="t2", name="t2", subject=subject, body_text=text)


def step(order: int = 2, thread: bool | None = None) -> SequenceStep:
    return SequenceStep(f"st{order}", "s1", order, f"t{order}", 0.0, thread=thread)


def composed(
    the_template: Template,
    *,
    order: int = 2,
    thread: bool | None = None,
    previous: Thread | None = STEP_1,
    links: UnsubscribeLinks | None = None,
) -> ValidatedMessage | ComposeError:
    return compose(
        Renderer(),
        the_template,
        campaign=CAMPAIGN,
        lead=lead(),
        step_order=order,
        index=0,
        account=account(),
        general=None,
        thread=thread,
        previous=previous,
        links=links or UnsubscribeLinks(),
    )


def message(the_template: Template, **options: Any) -> OutgoingMessage:
    found = composed(the_template, **options)
    assert isinstance(found, ValidatedMessage), found
    return found.message


# --- the subject of a reply ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        ("Quick question", "Re: Quick question"),
        ("Re: Quick question", "Re: Quick question"),
        ("RE: re:Quick question", "Re: Quick question"),
        ("Re[2]: Quick question", "Re: Quick question"),
        ("  re :  Quick question", "Re: Quick question"),
        ("Regarding your site", "Re: Regarding your site"),
        ("Fwd: Quick question", "Re: Fwd: Quick question"),
    ],
)
def test_a_reply_subject_carries_one_re_prefix(previous: str, expected: str) -> None:
    assert reply_subject(previous) == expected


# --- whether a step replies in the thread -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "thread", "has_subject", "previous", "expected"),
    [
        pytest.param(
            2, None, False, STEP_1, Threading((FIRST_ID,), "Re: Quick question, Ann"), id="no-subject-replies"
        ),
        pytest.param(2, None, True, STEP_1, NEW_THREAD, id="own-subject-starts-a-new-thread"),
        pytest.param(2, True, True, STEP_1, Threading((FIRST_ID,), "Re: Quick question, Ann"), id="thread-true"),
        pytest.param(1, None, True, None, NEW_THREAD, id="first-step"),
        pytest.param(1, True, True, None, NEW_THREAD, id="thread-true-with-nothing-to-reply-to"),
        pytest.param(2, False, True, STEP_1, NEW_THREAD, id="thread-false"),
    ],
)
def test_a_step_replies_in_the_thread_when_its_template_has_no_subject_or_thread_says_so(
    order: int, thread: bool | None, has_subject: bool, previous: Thread | None, expected: Threading
) -> None:
    assert threading_for(order, thread, has_subject, previous) == expected


@pytest.mark.parametrize(
    ("order", "thread", "needle"),
    [
        pytest.param(1, None, "there is no earlier message of this recipient to reply to", id="first-step"),
        pytest.param(3, True, "there is no earlier message of this recipient to reply to", id="no-thread-recorded"),
        pytest.param(2, False, "thread: false, which starts a new thread", id="thread-false"),
    ],
)
def test_a_template_without_subject_that_cannot_reply_is_refused_saying_what_to_fix(
    order: int, thread: bool | None, needle: str
) -> None:
    previous = STEP_1 if thread is False else None
    reason = threading_for(order, thread, False, previous)
    assert isinstance(reason, str)
    assert needle in reason
    assert "give its template a subject (a `subject` field or a first body line 'Subject: ...')" in reason


def test_threading_headers_name_the_latest_message_and_the_whole_thread() -> None:
    third = Threading((FIRST_ID, SECOND_ID), "Re: x")
    assert third.headers() == {"In-Reply-To": SECOND_ID, "References": f"{FIRST_ID} {SECOND_ID}"}
    assert NEW_THREAD.headers() == {}


# --- compose --------------------------------------------------------------------------------------------------------


def test_a_follow_up_without_subject_is_composed_as_a_reply_in_the_thread() -> None:
    sent = message(template())
    assert sent.subject == "Re: Quick question, Ann"
    assert sent.message_id == SECOND_ID
    assert sent.headers["In-Reply-To"] == FIRST_ID
    assert sent.headers["References"] == FIRST_ID
    assert list(sent.headers)[:2] == ["In-Reply-To", "References"]


def test_a_reply_subject_is_taken_as_it_is_not_rendered() -> None:
    previous = Thread("a1", "Re: {{ first_name }} & co", (FIRST_ID,), 1)
    assert message(template(), previous=previous).subject == "Re: {{ first_name }} & co"


def test_thread_true_keeps_the_templates_own_subject_and_sets_the_thread_headers() -> None:
    sent = message(template("New idea for {{ first_name }}"), thread=True)
    assert sent.subject == "New idea for Ann"
    assert sent.headers["In-Reply-To"] == FIRST_ID


def test_a_step_with_its_own_subject_starts_a_new_thread_with_only_list_unsubscribe() -> None:
    sent = message(template("Hi {{ first_name }}"), order=1, previous=None)
    assert sent.subject == "Hi Ann"
    assert sent.headers == {
        "List-Unsubscribe": f"<mailto:bob@sender.example?subject=unsubscribe%20outbound.{LEAD_ID}.1.0>"
    }


def test_a_first_step_without_subject_is_the_templates_error_and_pauses_the_campaign() -> None:
    error = composed(template(), order=1, previous=None)
    assert isinstance(error, ComposeError)
    assert (error.kind, error.template_id) == ("template", "t2")
    assert error.reason.startswith("template error: template t2 (subject): step 1's template has no subject")


def test_with_a_public_url_the_one_click_link_comes_first_and_is_signed_for_this_send() -> None:
    sent = message(template(), links=LINKS)
    link, mailto = sent.headers["List-Unsubscribe"].split(", ")
    assert link.startswith("<https://out.example.com/u/") and mailto.startswith("<mailto:bob@sender.example?")
    assert sent.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = link.strip("<>").rpartition("/")[2]
    assert verify(token, "k" * 32) == SendRef(str(LEAD_ID), 2, 0)


@pytest.mark.parametrize(
    ("links", "start"),
    [
        pytest.param(LINKS, "Stop: https://out.example.com/u/", id="public-url"),
        pytest.param(None, "Stop: mailto:bob@sender.example?subject=unsubscribe%20outbound.", id="mailto-only"),
    ],
)
def test_a_template_places_the_unsubscribe_url_whether_or_not_a_public_url_is_configured(
    links: UnsubscribeLinks | None, start: str
) -> None:
    sent = message(template("Hi", text="Stop: {{ unsubscribe_url }}"), links=links)
    assert sent.text.startswith(start)


def test_a_renderer_refuses_a_template_without_subject_when_no_reply_subject_is_given() -> None:
    with pytest.raises(TemplateError, match=r"\(subject\): has no subject"):
        Renderer().render(template(), {"first_name": "Ann"})


# --- what a send records for the next step ------------------------------------------------------------------------


def context(order: int, threads: dict[int, Thread] | None = None) -> LeadContext:
    steps = {1: step(1), 2: step(2), 3: step(3)}
    return LeadContext(lead(), CAMPAIGN, steps, steps[order], threads or {})


def sent(account_id: str, message_id: str, subject: str, references: tuple[str, ...] = ()) -> RecipientResult:
    return RecipientResult("sent", "contacted", account_id, message_id, subject=subject, references=references)


@pytest.mark.parametrize(
    ("ctx", "result", "recorded"),
    [
        pytest.param(
            context(1),
            sent("a1", FIRST_ID, "Quick question, Ann"),
            {"account_id": "a1", "subject": "Quick question, Ann", "message_ids": [FIRST_ID], "step_order": 1},
            id="first-message",
        ),
        pytest.param(
            context(2, {0: STEP_1}),
            sent("a1", SECOND_ID, "Re: Quick question, Ann", (FIRST_ID,)),
            {
                "account_id": "a1",
                "subject": "Re: Quick question, Ann",
                "message_ids": [FIRST_ID, SECOND_ID],
                "step_order": 2,
            },
            id="reply",
        ),
        pytest.param(
            context(2, {0: STEP_1}),
            sent("a2", SECOND_ID, "Re: Quick question, Ann", (FIRST_ID,)),
            {
                "account_id": "a1",
                "subject": "Re: Quick question, Ann",
                "message_ids": [FIRST_ID, SECOND_ID],
                "step_order": 2,
            },
            id="from-another-account-the-mailbox-stays",
        ),
        pytest.param(
            context(2, {0: STEP_1}),
            sent("a1", SECOND_ID, "A new topic"),
            {"account_id": "a1", "subject": "A new topic", "message_ids": [SECOND_ID], "step_order": 2},
            id="new-thread",
        ),
        pytest.param(
            context(1),
            RecipientResult("uncertain", "uncertain", "a1", FIRST_ID, error="dropped", subject="Quick question"),
            {"account_id": "a1", "subject": "Quick question", "message_ids": [FIRST_ID], "step_order": 1},
            id="uncertain-counts-as-sent",
        ),
    ],
)
def test_a_landed_send_records_the_recipients_thread_in_the_same_lead_write(
    ctx: LeadContext, result: RecipientResult, recorded: dict[str, Any]
) -> None:
    assert settle(ctx, [(0, result)], NOW).set["progress.threads.0"] == recorded


@pytest.mark.parametrize(
    "result",
    [
        RecipientResult("failed", "bounced", "a1", FIRST_ID, error="550", smtp_code=550, subject="Hi"),
        RecipientResult("skipped", None, error="recipient is unsubscribed"),
    ],
)
def test_a_send_that_did_not_land_records_no_thread(result: RecipientResult) -> None:
    assert not any(path.startswith("progress.threads") for path in settle(context(1), [(0, result)], NOW).set)


def test_a_sent_result_takes_the_subject_and_thread_from_its_message() -> None:
    outgoing = message(template())
    result = with_message(RecipientResult("sent", "contacted", "a1", outgoing.message_id), outgoing)
    assert (result.subject, result.references) == ("Re: Quick question, Ann", (FIRST_ID,))


def test_the_recorded_threads_are_read_back_and_only_earlier_steps_count() -> None:
    doc = {
        "progress": {
            "threads": {
                "0": STEP_1.as_doc(),
                "1": {"account_id": "a1", "subject": "", "message_ids": [FIRST_ID], "step_order": 1},
                "2": {"account_id": "a1", "subject": "Hi", "message_ids": "not a list", "step_order": 1},
                "x": STEP_1.as_doc(),
            }
        }
    }
    threads = threads_of(doc)
    assert threads == {0: STEP_1}
    assert thread_before(threads, 0, 2) == STEP_1
    assert thread_before(threads, 0, 1) is None  # e.g. the lead's progress was reset: step 1 starts a new thread
    assert threads_of({"progress": {}}) == {} == threads_of({})


# --- which account a follow-up may take ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "wants", "expected"),
    [
        pytest.param([("a", 5), ("b", 5)], [None, None, None], ["a", "a", "b"], id="first-steps-spread-lru-first"),
        pytest.param([("a", 5), ("b", 5)], ["b", "b", None], ["b", "b", "a"], id="follow-ups-keep-their-mailbox"),
        pytest.param([("a", 1), ("b", 1)], ["b", None, None], ["b", "a", None], id="the-mailbox-goes-first"),
        pytest.param([("a", 1)], ["b", None], [None, "a"], id="a-busy-mailbox-waits-not-switches"),
        pytest.param([("a", 1), ("b", 1)], ["a", "a"], ["a", None], id="one-per-wait-window"),
        pytest.param([], [None, "a"], [None, None], id="nothing-free"),
    ],
)
def test_a_pinned_send_takes_only_its_mailbox_and_the_others_share_what_is_left(
    shares: list[tuple[str, int]], wants: list[str | None], expected: list[str | None]
) -> None:
    assert assign(shares, wants) == expected


def test_pinned_accounts_are_narrowed_to_the_dispatchers_account_filter() -> None:
    assert pinned_only(["b", "a", "b"], None) == ["a", "b"]
    assert pinned_only(["b", "a"], ["a", "c"]) == ["a"]
    assert pinned_only(["b"], []) == []
