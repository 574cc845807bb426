"""show-campaign and list-accounts name the accounts that cannot render a campaign's templates, and why."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from tests.integration.cli_documents import add_account, add_campaign, as_json, ok

FIX = "set sender_name in email_general_settings for account {}"


def add_template(sync_db: Any, campaign_name: str, body: str, step_order: int = 1) -> None:
    tpl = sync_db.templates.insert_one({"name": f"T{step_order}", "subject": "Hi", "body_text": body}).inserted_id
    sync_db.sequence_steps.insert_one(
        {"sequence_id": f"seq-{campaign_name}", "step_order": step_order, "template_id": str(tpl), "delay_minutes": 0}
    )


def three_accounts(sync_db: Any) -> dict[str, str]:
    """One account with general settings, one without, one with sender_name on the account document itself."""
    ids = {
        "with": add_account(sync_db, "with@mail.example"),
        "without": add_account(sync_db, "without@mail.example"),
        "named": add_account(sync_db, "named@mail.example", sender_name="Nina Named"),
    }
    sync_db.email_general_settings.insert_one({"email_id": ObjectId(ids["with"]), "sender_name": "Bob Smith"})
    return ids


def test_show_campaign_names_the_account_without_sender_name_and_the_fix(cli, sync_db) -> None:
    ids = three_accounts(sync_db)
    cid = add_campaign(sync_db, "Spring")
    add_template(sync_db, "Spring", "Hello {{ first_name | default('there') }},\n\n{{ sender_name }}")

    data = as_json(cli("show-campaign", cid, "--json"))
    assert data["ineligible_accounts"] == [
        {"id": ids["without"], "email": "without@mail.example", "missing": ["sender_name"]}
    ]
    assert len(data["accounts"]) == 3  # the existing keys are unchanged
    table = ok(cli("show-campaign", cid)).stdout
    assert "not eligible: 1 account(s)" in table
    assert f"without@mail.example ({ids['without']}): missing sender_name" in table
    assert FIX.format("without@mail.example") in table
    assert FIX.format("with@mail.example") not in table and FIX.format("named@mail.example") not in table


def test_show_campaign_checks_only_the_listed_accounts_even_paused_ones(cli, sync_db) -> None:
    listed = add_account(sync_db, "listed@mail.example", status="paused")
    add_account(sync_db, "other@mail.example")
    cid = add_campaign(sync_db, "Spring", account_ids=[listed, "65f000000000000000000000"])
    add_template(sync_db, "Spring", "Hi", step_order=1)
    add_template(sync_db, "Spring", "{{ sender_first_name }} {{ sender_last_name }}", step_order=2)
    sync_db.email_general_settings.insert_one({"email_id": listed, "sender_name": "Lee"})

    data = as_json(cli("show-campaign", cid, "--json"))
    assert data["ineligible_accounts"] == [
        {"id": listed, "email": "listed@mail.example", "missing": ["sender_last_name"]}
    ]


def test_show_campaign_prints_nothing_more_when_every_account_can_render(cli, sync_db) -> None:
    three_accounts(sync_db)
    cid = add_campaign(sync_db, "Spring")
    add_template(sync_db, "Spring", "Hello {{ sender_name | default('the team') }} {{ sender_email }}")

    assert as_json(cli("show-campaign", cid, "--json"))["ineligible_accounts"] == []
    assert "not eligible" not in ok(cli("show-campaign", cid)).stdout


def test_list_accounts_names_the_active_campaigns_each_account_cannot_render(cli, sync_db) -> None:
    ids = three_accounts(sync_db)
    spring = add_campaign(sync_db, "Spring")
    add_template(sync_db, "Spring", "Cheers, {{ sender_name }}")
    add_campaign(sync_db, "Autumn", status="paused")
    add_template(sync_db, "Autumn", "Cheers, {{ sender_name }}")
    add_campaign(sync_db, "Plain")
    add_template(sync_db, "Plain", "Cheers")

    data = as_json(cli("list-accounts", "--json"))
    cannot = {a["email"]: a["cannot_send"] for a in data["accounts"]}
    assert cannot == {
        "named@mail.example": [],
        "with@mail.example": [],
        "without@mail.example": [{"campaign_id": spring, "campaign": "Spring", "missing": ["sender_name"]}],
    }
    table = ok(cli("list-accounts")).stdout
    assert "cannot send" in table
    assert "Spring: sender_name" in table
    assert ids["without"] in table


def test_list_accounts_counts_a_campaign_only_for_the_accounts_it_lists(cli, sync_db) -> None:
    ids = three_accounts(sync_db)
    spring = add_campaign(sync_db, "Spring", account_ids=[ids["with"], ids["without"]])
    add_template(sync_db, "Spring", "{{ sender_last_name }}")
    sync_db.email_general_settings.update_one({"sender_name": "Bob Smith"}, {"$set": {"sender_name": "Bob"}})

    data = as_json(cli("list-accounts", "--json"))
    cannot = {a["email"]: a["cannot_send"] for a in data["accounts"]}
    entry = {"campaign_id": spring, "campaign": "Spring", "missing": ["sender_last_name"]}
    assert cannot == {"named@mail.example": [], "with@mail.example": [entry], "without@mail.example": [entry]}
