"""Typed views of seed 001's documents: valid documents load, malformed ones are refused with their context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from app.domain.models import (
    AccountCampaignSettings,
    Campaign,
    EmailAccount,
    GeneralSettings,
    InvalidAddress,
    InvalidDocument,
    Lead,
    SequenceStep,
    Template,
    has_line_break,
    normalize_email,
    recipient_key,
    split_subject_line,
)

SENT_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DUE_AT = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)


def seed_lead() -> dict[str, Any]:
    """Seed 001's "Lead Data Structure" example, filled in."""
    return {
        "_id": ObjectId(),
        "campaign_id": "campaign_id_string",
        "lead_data": [
            {
                "email": "user@example.com",
                "name": "User Name",
                "provider": "Google",
                "status": "contacted",
                "last_contacted_at": SENT_AT,
                "last_step": 1,
                "first_name": "User",
                "last_name": "Name",
                "company_name": "Company Inc",
                "website": "https://example.com",
            }
        ],
        "progress": {
            "current_step_order": 1,
            "stopped": False,
            "last_sent_at": SENT_AT,
            "next_due_at": DUE_AT,
            "processed_recipients": {
                "step_1_recipient_0": {
                    "processed_at": SENT_AT,
                    "email": "user@example.com",
                    "template_id": "template_id",
                }
            },
        },
    }


def seed_campaign() -> dict[str, Any]:
    """Seed 001's "Campaign Configuration" example."""
    return {
        "_id": ObjectId(),
        "name": "Campaign Name",
        "status": "active",
        "created_at": SENT_AT,
        "sequence_id": "sequence_id_string",
        "settings": {"daily_limit": 50, "min_wait_time": 4, "batch_size": 20},
    }


def seed_account() -> dict[str, Any]:
    """Seed 001's `email_accounts` example."""
    return {
        "_id": ObjectId(),
        "email": "sender@example.com",
        "smtp_host": "smtp.gmail.com",
        "smtp_port": 587,
        "smtp_username": "sender@example.com",
        "smtp_password": "app_password",
        "status": "active",
        "provider": "Gmail",
    }


def seed_account_campaign_settings() -> dict[str, Any]:
    """Seed 001's `email_campaign_settings` example."""
    return {
        "_id": ObjectId(),
        "email_id": "account_object_id",
        "daily_limit": 50,
        "min_wait_time": 4,
        "max_daily_sends": 100,
    }


def with_field(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """`doc` with the (possibly nested) field set to `value`."""
    *parents, last = dotted.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


def refused(load: Any, doc: dict[str, Any]) -> InvalidDocument:
    """The InvalidDocument raised when loading `doc`."""
    with pytest.raises(InvalidDocument) as caught:
        load(doc)
    return caught.value


# Campaigns


def test_seed_campaign_loads_with_its_settings() -> None:
    doc = seed_campaign()
    campaign = Campaign.from_doc(doc)
    assert campaign.id == str(doc["_id"])
    assert campaign.name == "Campaign Name"
    assert campaign.status == "active"
    assert campaign.sequence_id == "sequence_id_string"
    assert campaign.created_at == SENT_AT
    assert campaign.settings.daily_limit == 50
    assert campaign.settings.min_wait_time == 4.0
    assert campaign.settings.batch_size == 20
    assert campaign.settings.account_ids == ()


def test_campaign_restricted_to_accounts_keeps_their_ids_as_strings() -> None:
    account = ObjectId()
    doc = with_field(seed_campaign(), "settings.account_ids", [account, "other"])
    assert Campaign.from_doc(doc).settings.account_ids == (str(account), "other")


def test_campaign_fractional_min_wait_time_is_accepted() -> None:
    doc = with_field(seed_campaign(), "settings.min_wait_time", 0.5)
    assert Campaign.from_doc(doc).settings.min_wait_time == 0.5


def test_campaign_without_settings_has_no_limits() -> None:
    doc = seed_campaign()
    del doc["settings"]
    settings = Campaign.from_doc(doc).settings
    assert (settings.daily_limit, settings.min_wait_time, settings.batch_size) == (None, 0.0, None)


def test_naive_created_at_is_read_as_utc() -> None:
    doc = with_field(seed_campaign(), "created_at", datetime(2026, 3, 2, 9, 30))
    assert Campaign.from_doc(doc).created_at == SENT_AT


def test_campaign_without_name_is_refused_naming_collection_id_and_field() -> None:
    doc = seed_campaign()
    del doc["name"]
    error = refused(Campaign.from_doc, doc)
    assert (error.collection, error.doc_id, error.field) == ("campaigns", doc["_id"], "name")
    assert error.reason == "is required"
    assert str(error) == f"campaigns {doc['_id']}: field 'name' is required"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("status", "running", "must be one of active, paused, completed, draft, got 'running'"),
        ("status", None, "must be one of active, paused, completed, draft, got None"),
        ("settings.min_wait_time", -1, "must be >= 0, got -1"),
        ("settings.min_wait_time", "4", "must be a number, got '4'"),
        ("settings.min_wait_time", float("nan"), "must be a number"),
        ("settings.daily_limit", "50", "must be a whole number, got '50'"),
        ("settings.daily_limit", 2.5, "must be a whole number, got 2.5"),
        ("settings.daily_limit", True, "must be a whole number, got True"),
        ("settings.daily_limit", -5, "must be >= 0, got -5"),
        ("settings.batch_size", 0, "must be >= 1, got 0"),
        ("settings.account_ids", "acc1", "must be a list of account ids"),
        ("settings", "daily", "must be an object, got str"),
        ("created_at", "yesterday", "must be a date, got 'yesterday'"),
        ("name", 42, "must be a string, got int"),
    ],
)
def test_malformed_campaign_field_is_refused_with_the_reason(field: str, value: Any, reason: str) -> None:
    doc = with_field(seed_campaign(), field, value)
    error = refused(Campaign.from_doc, doc)
    assert error.collection == "campaigns"
    assert error.doc_id == doc["_id"]
    assert error.field == field
    assert reason in error.reason
    assert field in str(error)


def test_non_mapping_document_is_refused() -> None:
    error = refused(Campaign.from_doc, ["not", "a", "document"])  # type: ignore[arg-type]
    assert error.collection == "campaigns"
    assert error.reason == "document is not an object"


# Leads


def test_seed_lead_loads_with_recipients_and_progress() -> None:
    doc = seed_lead()
    lead = Lead.from_doc(doc)
    assert lead.id == doc["_id"]
    assert lead.campaign_id == "campaign_id_string"
    assert lead.lead_key is None
    [recipient] = lead.recipients
    assert recipient.email == "user@example.com"
    assert recipient.status == "contacted"
    assert recipient.last_contacted_at == SENT_AT
    assert recipient.last_step == 1
    assert recipient.fields["first_name"] == "User"
    assert recipient.fields["company_name"] == "Company Inc"
    assert recipient.fields["website"] == "https://example.com"
    progress = lead.progress
    assert progress.current_step_order == 1
    assert progress.stopped is False
    assert progress.completed is False
    assert progress.last_sent_at == SENT_AT
    assert progress.next_due_at == DUE_AT
    assert progress.processed_recipients["step_1_recipient_0"]["template_id"] == "template_id"
    assert progress.lease_token is None


def test_fresh_lead_defaults_to_step_one_not_contacted() -> None:
    doc = {"_id": ObjectId(), "campaign_id": "c1", "lead_data": [{"email": "a@example.com"}]}
    lead = Lead.from_doc(doc)
    assert lead.recipients[0].status == "not_contacted"
    assert lead.progress.current_step_order == 1
    assert lead.progress.processed_recipients == {}
    assert lead.progress.next_due_at is None


def test_lead_recipient_addresses_are_normalised() -> None:
    doc = with_field(seed_lead(), "lead_data.0.email", "  User@Example.COM ")
    assert Lead.from_doc(doc).recipients[0].email == "User@example.com"


def test_lead_with_several_recipients_keeps_their_order() -> None:
    doc = seed_lead()
    doc["lead_data"].append({"email": "second@example.com", "status": "not_contacted"})
    assert [r.email for r in Lead.from_doc(doc).recipients] == ["user@example.com", "second@example.com"]


def test_lead_lease_fields_are_read() -> None:
    doc = seed_lead()
    doc["progress"].update(lease_owner="vm1:123", lease_token="tok", lease_until=DUE_AT)
    progress = Lead.from_doc(doc).progress
    assert (progress.lease_owner, progress.lease_token, progress.lease_until) == ("vm1:123", "tok", DUE_AT)


@pytest.mark.parametrize("lead_data", [[], None, "user@example.com", {"email": "user@example.com"}])
def test_lead_without_a_recipient_list_is_refused(lead_data: Any) -> None:
    doc = with_field(seed_lead(), "lead_data", lead_data)
    error = refused(Lead.from_doc, doc)
    assert (error.collection, error.doc_id, error.field) == ("campaign_leads", doc["_id"], "lead_data")
    assert "non-empty list" in error.reason


@pytest.mark.parametrize(
    "email",
    ["not-an-address", "user@", "@example.com", "user@localhost", "", None, 42],
)
def test_recipient_with_invalid_email_is_refused(email: Any) -> None:
    doc = with_field(seed_lead(), "lead_data.0.email", email)
    error = refused(Lead.from_doc, doc)
    assert error.collection == "campaign_leads"
    assert error.doc_id == doc["_id"]
    assert error.field == "lead_data.0.email"
    assert error.reason


def test_recipient_with_header_injection_is_refused() -> None:
    doc = with_field(seed_lead(), "lead_data.0.email", "a@b.com\r\nBcc: x@y.com")
    error = refused(Lead.from_doc, doc)
    assert error.field == "lead_data.0.email"
    assert "line break" in error.reason


def test_second_recipient_error_names_its_index() -> None:
    doc = seed_lead()
    doc["lead_data"].append({"email": "broken"})
    assert refused(Lead.from_doc, doc).field == "lead_data.1.email"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("lead_data.0", "user@example.com", "must be an object with an email"),
        ("lead_data.0.status", "emailed", "must be one of not_contacted, contacted"),
        ("lead_data.0.last_contacted_at", "2026-03-02", "must be a date"),
        ("lead_data.0.last_step", "1", "must be a whole number"),
        ("campaign_id", None, "is required"),
        ("progress", [], "must be an object"),
        ("progress.current_step_order", 0, "must be >= 1, got 0"),
        ("progress.stopped", "no", "must be true or false"),
        ("progress.next_due_at", 1700000000, "must be a date"),
        ("progress.processed_recipients", [], "must be an object"),
    ],
)
def test_malformed_lead_field_is_refused_with_the_reason(field: str, value: Any, reason: str) -> None:
    doc = with_field(seed_lead(), field, value)
    error = refused(Lead.from_doc, doc)
    assert (error.collection, error.doc_id, error.field) == ("campaign_leads", doc["_id"], field)
    assert reason in error.reason


# Sequence steps


def test_sequence_step_loads() -> None:
    doc = {"_id": ObjectId(), "sequence_id": "seq", "step_order": 2, "template_id": "tpl", "delay_minutes": 1440}
    step = SequenceStep.from_doc(doc)
    assert (step.sequence_id, step.step_order, step.template_id, step.delay_minutes) == ("seq", 2, "tpl", 1440.0)


@pytest.mark.parametrize(
    ("field", "value"), [("step_order", None), ("step_order", 0), ("template_id", None), ("delay_minutes", -1)]
)
def test_malformed_sequence_step_is_refused(field: str, value: Any) -> None:
    doc = {"_id": ObjectId(), "sequence_id": "seq", "step_order": 1, "template_id": "tpl", "delay_minutes": 0}
    error = refused(SequenceStep.from_doc, with_field(doc, field, value))
    assert (error.collection, error.field) == ("sequence_steps", field)


# Templates


def test_template_subject_line_supplies_the_subject_and_leaves_the_body() -> None:
    doc = {
        "_id": ObjectId(),
        "name": "intro",
        "body_text": 'Subject: {{subject_line | default("Default Subject")}}\nHello {{first_name}},\n\nBye',
    }
    template = Template.from_doc(doc)
    assert template.subject == '{{subject_line | default("Default Subject")}}'
    assert template.body_text == "Hello {{first_name}},\n\nBye"
    assert "Subject:" not in template.body_text


def test_template_subject_line_with_crlf_is_split_cleanly() -> None:
    doc = {"_id": ObjectId(), "body_text": "subject: Hi\r\n\r\nBody"}
    template = Template.from_doc(doc)
    assert (template.subject, template.body_text) == ("Hi", "Body")
    assert template.name == str(doc["_id"]), "a template without a name is shown by its id"


def test_template_subject_field_is_used_as_is() -> None:
    doc = {"_id": ObjectId(), "name": "t", "subject": "Quick question", "body_text": "Hello"}
    template = Template.from_doc(doc)
    assert (template.subject, template.body_text, template.body_html) == ("Quick question", "Hello", None)


@pytest.mark.parametrize("subject", [None, "", "   "])
def test_a_template_without_a_subject_of_its_own_is_read_for_a_reply_in_the_thread(subject: str | None) -> None:
    # Whether it can be sent (only as a follow-up, "Re: ...") is decided when it is sent: see test_threading.py.
    doc = {"_id": ObjectId(), "name": "t", "subject": subject, "body_text": "Hello {{first_name}}"}
    assert Template.from_doc(doc).subject == ""


@pytest.mark.parametrize(("value", "expected"), [(None, None), (True, True), (False, False)])
def test_a_sequence_steps_thread_field_is_true_false_or_unset(value: bool | None, expected: bool | None) -> None:
    doc = {"_id": "st1", "sequence_id": "s1", "step_order": 2, "template_id": "t1", "thread": value}
    assert SequenceStep.from_doc(doc).thread is expected


def test_a_sequence_steps_thread_field_must_be_true_or_false() -> None:
    doc = {"_id": "st1", "sequence_id": "s1", "step_order": 2, "template_id": "t1", "thread": "yes"}
    error = refused(SequenceStep.from_doc, doc)
    assert (error.collection, error.field) == ("sequence_steps", "thread")


def test_template_with_only_html_body_is_accepted() -> None:
    doc = {"_id": ObjectId(), "name": "t", "subject": "Hi", "body_html": "<p>Hello</p>"}
    template = Template.from_doc(doc)
    assert (template.body_text, template.body_html) == ("", "<p>Hello</p>")


def test_template_without_any_body_is_refused() -> None:
    error = refused(Template.from_doc, {"_id": ObjectId(), "name": "t", "subject": "Hi"})
    assert (error.field, error.reason) == ("body_text", "is required (or body_html)")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Subject: Hello\nBody", ("Hello", "Body")),
        ("SUBJECT:Hello\nBody", ("Hello", "Body")),
        ("\ufeffSubject: Hello\nBody", ("Hello", "Body")),
        ("Subject: only a subject", ("only a subject", "")),
        ("Hello\nSubject: not first", (None, "Hello\nSubject: not first")),
        ("", (None, "")),
    ],
)
def test_split_subject_line(body: str, expected: tuple[str | None, str]) -> None:
    assert split_subject_line(body) == expected


# Accounts and their settings


def test_seed_account_loads() -> None:
    doc = seed_account()
    account = EmailAccount.from_doc(doc)
    assert account.id == str(doc["_id"])
    assert (account.email, account.smtp_host, account.smtp_port) == ("sender@example.com", "smtp.gmail.com", 587)
    assert (account.smtp_username, account.smtp_password) == ("sender@example.com", "app_password")
    assert (account.status, account.provider, account.security) == ("active", "Gmail", None)


def test_account_password_is_not_in_its_repr() -> None:
    assert "app_password" not in repr(EmailAccount.from_doc(seed_account()))


def test_account_optional_fields_are_read() -> None:
    doc = seed_account()
    doc.update(smtp_security="tls", smtp_port=465, sender_name="Sam Sender")
    account = EmailAccount.from_doc(doc)
    assert (account.security, account.smtp_port, account.sender_name) == ("tls", 465, "Sam Sender")


def test_account_without_status_or_port_uses_defaults() -> None:
    doc = seed_account()
    del doc["status"], doc["smtp_port"]
    account = EmailAccount.from_doc(doc)
    assert (account.status, account.smtp_port) == ("active", 587)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("smtp_port", 70000, "must be a TCP port (1-65535), got 70000"),
        ("smtp_port", 0, "must be >= 1, got 0"),
        ("smtp_port", -25, "must be >= 1"),
        ("smtp_port", "587", "must be a whole number"),
        ("email", "not-an-address", "is not a valid address"),
        ("email", "a@b.com\r\nBcc: x@y.com", "line break"),
        ("smtp_host", None, "is required"),
        ("smtp_host", "smtp.example.com\r\nX: y", "is not a host name"),
        ("smtp_host", "smtp example.com", "is not a host name"),
        ("smtp_security", "ssl", "must be one of starttls, tls, none"),
        ("status", "banned", "must be one of active, paused, disabled, auth_failed"),
    ],
)
def test_malformed_account_field_is_refused_with_the_reason(field: str, value: Any, reason: str) -> None:
    doc = with_field(seed_account(), field, value)
    error = refused(EmailAccount.from_doc, doc)
    assert (error.collection, error.doc_id, error.field) == ("email_accounts", doc["_id"], field)
    assert reason in error.reason


def test_seed_account_campaign_settings_load() -> None:
    settings = AccountCampaignSettings.from_doc(seed_account_campaign_settings())
    assert settings.email_id == "account_object_id"
    assert (settings.daily_limit, settings.min_wait_time, settings.max_daily_sends) == (50, 4.0, 100)


def test_account_campaign_settings_accept_fractional_wait_and_object_id() -> None:
    account = ObjectId()
    doc = seed_account_campaign_settings()
    doc.update(email_id=account, min_wait_time=0.5)
    settings = AccountCampaignSettings.from_doc(doc)
    assert (settings.email_id, settings.min_wait_time) == (str(account), 0.5)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("email_id", None, "is required"),
        ("daily_limit", "50", "must be a whole number"),
        ("max_daily_sends", -1, "must be >= 0"),
        ("min_wait_time", -0.5, "must be >= 0"),
    ],
)
def test_malformed_account_campaign_settings_are_refused(field: str, value: Any, reason: str) -> None:
    doc = with_field(seed_account_campaign_settings(), field, value)
    error = refused(AccountCampaignSettings.from_doc, doc)
    assert (error.collection, error.doc_id, error.field) == ("email_campaign_settings", doc["_id"], field)
    assert reason in error.reason


def test_general_settings_load() -> None:
    doc = {"_id": ObjectId(), "email_id": "acc", "signature": "-- Sam", "sender_first_name": "Sam"}
    settings = GeneralSettings.from_doc(doc)
    assert (settings.email_id, settings.signature, settings.sender_first_name) == ("acc", "-- Sam", "Sam")
    assert settings.sender_name is None


# Addresses and keys


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("John.Doe@Example.COM", "John.Doe@example.com"),
        ("  user@example.com \t", "user@example.com"),
        ("user@例子.广告", "user@例子.广告"),
        # A non-ASCII local part is accepted (sent with SMTPUTF8); its domain reads in Unicode, lower-cased.
        ("jöhn@example.com", "jöhn@example.com"),
        ("Zoë@XN--MLLER-KVA.example", "Zoë@müller.example"),
        ("zoe\u0308@müller.example", "zo\u00eb@müller.example"),  # Unicode normal form C
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "address is empty"),
        ("   ", "address is empty"),
        (None, "address is empty"),
        (["a@b.com"], "address is empty"),
        ("plainaddress", "is not a valid address"),
        ("two@@example.com", "is not a valid address"),
        ("user@example", "is not a valid address"),
        ("a@b.com\r\nBcc: x@y.com", "contains a line break"),
        ("a@b.com\nx", "contains a line break"),
    ],
)
def test_normalize_email_refuses_invalid_addresses_with_a_reason(raw: Any, reason: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalize_email(raw)
    assert reason in str(caught.value)


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\r\nb", "a\u2028b", "a\x0bb", "a\x0cb", "a\u2029b", "a\x85b"])
def test_has_line_break_detects_every_line_break(value: str) -> None:
    assert has_line_break(value)


@pytest.mark.parametrize("value", ["", "plain subject", "tab\tseparated", "ünïcödé"])
def test_has_line_break_is_false_for_single_lines(value: str) -> None:
    assert not has_line_break(value)


def test_recipient_key_uses_seed_001_format() -> None:
    assert recipient_key(1, 0) == "step_1_recipient_0"
    assert recipient_key(3, 12) == "step_3_recipient_12"
