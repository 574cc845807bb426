"""list-accounts, show-account-stats and reset-account-limits against a real database: output and changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bson import ObjectId

from tests.integration.cli_documents import (
    FUTURE,
    PAST,
    SECRET,
    TODAY,
    add_account,
    as_json,
    ok,
)

# --- list-accounts / show-account-stats -----------------------------------------------------------------------


def test_list_accounts_never_prints_the_smtp_password(cli, sync_db) -> None:
    acc = add_account(sync_db, status="auth_failed", disabled_reason="535 bad credentials")
    sync_db.email_campaign_settings.insert_one({"email_id": acc, "max_daily_sends": 50, "min_wait_time": 3})
    sync_db.account_usage.insert_one({"account_id": acc, "day": TODAY, "sent": 7, "committed": 7, "campaigns": {}})

    json_result = ok(cli("list-accounts", "--json"))
    table_result = ok(cli("list-accounts"))
    for result in (json_result, table_result):
        assert SECRET not in result.output
        assert "smtp_password" not in result.output
    row = json.loads(json_result.stdout)["accounts"][0]
    assert row["status"] == "auth_failed"
    assert row["disabled_reason"] == "535 bad credentials"
    assert (row["smtp"], row["max_daily_sends"], row["min_wait_time"], row["sent"], row["limit"]) == (
        "127.0.0.1:2525",
        50,
        3.0,
        7,
        50,
    )
    assert "7/50" in table_result.stdout


def test_list_accounts_reports_a_malformed_account_without_its_password(cli, sync_db) -> None:
    add_account(sync_db, "good@mail.example")
    bad = add_account(sync_db, "bad@mail.example", smtp_port=99999)
    result = ok(cli("list-accounts"))
    assert "Accounts (1)" in result.stdout
    assert [a["email"] for a in as_json(cli("list-accounts", "--json"))["accounts"]] == ["good@mail.example"]
    assert f"email_accounts {bad}: field 'smtp_port'" in result.stderr
    assert SECRET not in result.output


def test_list_accounts_shows_where_each_inbox_is_read(cli, sync_db) -> None:
    add_account(sync_db, "reads@mail.example", imap_host="imap.mail.example", imap_password="imap-" + SECRET)
    add_account(sync_db, "starttls@mail.example", imap_host="127.0.0.1", imap_security="starttls")
    add_account(sync_db, "sends-only@mail.example")

    rows = {a["email"]: a for a in as_json(cli("list-accounts", "--json"))["accounts"]}
    table = ok(cli("list-accounts"))

    assert rows["reads@mail.example"]["inbox"] == "imap.mail.example:993 (tls)"
    assert rows["starttls@mail.example"]["inbox"] == "127.0.0.1:143 (starttls)"
    assert rows["sends-only@mail.example"]["inbox"] == "not read"
    assert "imap.mail.example:993 (tls)" in table.stdout and "not read" in table.stdout
    assert SECRET not in table.output and "inbox" not in as_json(cli("show-account-stats", "--json"))["accounts"][0]


def test_show_account_stats_splits_sent_into_committed_and_reserved_for_the_day(cli, sync_db) -> None:
    acc = add_account(sync_db, next_available_at=FUTURE, last_used_at=PAST)
    sync_db.email_campaign_settings.insert_one({"email_id": acc, "max_daily_sends": 10})
    sync_db.account_usage.insert_many(
        [
            {"account_id": acc, "day": "2025-01-31", "sent": 6, "committed": 4, "campaigns": {"c1": 5, "c2": 1}},
            {"account_id": acc, "day": TODAY, "sent": 1, "committed": 1, "campaigns": {"c1": 1}},
        ]
    )
    data = as_json(cli("show-account-stats", "--json", "--day", "2025-01-31"))
    row = data["accounts"][0]
    assert data["day"] == "2025-01-31"
    assert (row["sent"], row["committed"], row["reserved"], row["remaining"]) == (6, 4, 2, 4)
    assert row["campaigns"] == {"c1": 5, "c2": 1}
    # BSON keeps milliseconds.
    assert abs(datetime.fromisoformat(row["next_available_at"]) - FUTURE) < timedelta(milliseconds=1)
    assert abs(datetime.fromisoformat(row["last_used_at"]) - PAST) < timedelta(milliseconds=1)
    assert SECRET not in json.dumps(data)

    today = as_json(cli("show-account-stats", "--json"))
    assert today["day"] == TODAY and today["accounts"][0]["sent"] == 1
    table = ok(cli("show-account-stats", "--day", "2025-01-31")).stdout
    assert "Account usage on 2025-01-31 (each account's day, in its time zone)" in table
    assert "sender@mail.example: next available" in table


def test_show_account_stats_refuses_a_malformed_day(cli, sync_db) -> None:
    result = cli("show-account-stats", "--day", "31/01/2025")
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.stderr


# --- reset-account-limits -------------------------------------------------------------------------------------


def test_reset_account_limits_clears_the_days_usage_wait_window_and_auth_failure(cli, sync_db) -> None:
    acc = add_account(
        sync_db, status="auth_failed", disabled_reason="535", next_available_at=FUTURE, reservation_token="tok"
    )
    other = add_account(sync_db, "other@mail.example", next_available_at=FUTURE)
    sync_db.account_usage.insert_many(
        [
            {"account_id": acc, "day": TODAY, "sent": 9, "committed": 8, "campaigns": {}},
            {"account_id": acc, "day": "2025-01-31", "sent": 3, "committed": 3, "campaigns": {}},
            {"account_id": other, "day": TODAY, "sent": 2, "committed": 2, "campaigns": {}},
        ]
    )

    refused = cli("reset-account-limits", acc)
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    assert sync_db.account_usage.count_documents({}) == 3

    result = ok(cli("reset-account-limits", acc, "--yes"))
    assert "sent 9, committed 8" in result.stdout
    assert "auth_failed -> active" in result.stdout
    assert SECRET not in result.output
    doc = sync_db.email_accounts.find_one({"_id": ObjectId(acc)})
    assert doc["status"] == "active"
    for gone in ("next_available_at", "reservation_token", "disabled_reason"):
        assert gone not in doc
    assert sorted((u["account_id"], u["day"]) for u in sync_db.account_usage.find()) == sorted(
        [(acc, "2025-01-31"), (other, TODAY)]
    )
    assert "next_available_at" in sync_db.email_accounts.find_one({"_id": ObjectId(other)})


def test_reset_account_limits_for_another_day_and_unknown_account(cli, sync_db) -> None:
    acc = add_account(sync_db)
    sync_db.account_usage.insert_one({"account_id": acc, "day": "2025-01-31", "sent": 3, "committed": 3})
    ok(cli("reset-account-limits", acc, "--day", "2025-01-31", "--yes"))
    assert sync_db.account_usage.count_documents({}) == 0

    missing = cli("reset-account-limits", "65f000000000000000000000", "--yes")
    assert missing.exit_code == 1
    assert "account 65f000000000000000000000 not found" in missing.stderr
    assert cli("reset-account-limits", acc, "--day", "tomorrow", "--yes").exit_code == 2


def test_show_account_stats_shows_replies_and_the_bounce_rate_of_the_last_30_days(cli, sync_db) -> None:
    acc = add_account(sync_db)
    now = datetime.now(UTC)
    sync_db.activities.insert_many(
        [{"account_id": acc, "type": "sent", "created_at": now} for _ in range(40)]
        + [{"account_id": acc, "type": "replied", "created_at": now} for _ in range(3)]
        + [{"account_id": acc, "type": "bounced", "created_at": now} for _ in range(2)]
        + [{"account_id": acc, "type": "unsubscribed", "created_at": now}]
        # Older than 30 days: not counted.
        + [{"account_id": acc, "type": "bounced", "created_at": now - timedelta(days=31)}]
    )
    row = as_json(cli("show-account-stats", "--json"))["accounts"][0]
    assert row["answers_30d"] == {
        "sent": 40,
        "replied": 3,
        "auto_replies": 0,
        "bounced": 2,
        "soft_bounces": 0,
        "unsubscribed": 1,
        "bounce_rate": 0.05,
    }
    table = ok(cli("show-account-stats")).stdout
    assert "Answers over the last 30 days" in table and "5.0%" in table


def test_show_account_stats_names_the_campaigns_of_the_days_sends(cli, sync_db) -> None:
    acc = add_account(sync_db)
    cid = str(sync_db.campaigns.insert_one({"name": "Spring outreach", "status": "active"}).inserted_id)
    sync_db.account_usage.insert_one(
        {"account_id": acc, "day": "2025-01-31", "sent": 3, "committed": 3, "campaigns": {cid: 2, "gone": 1}}
    )
    row = as_json(cli("show-account-stats", "--json", "--day", "2025-01-31"))["accounts"][0]
    assert row["campaign_names"] == {cid: "Spring outreach", "gone": None}
    table = ok(cli("show-account-stats", "--day", "2025-01-31")).stdout
    assert "Spring outreach: 2" in table and "gone: 1" in table


def test_show_account_stats_uses_each_accounts_own_day_and_todays_ramp_step(cli, sync_db) -> None:
    now = datetime.now(UTC)
    # Kiritimati is UTC+14 and Pago Pago UTC-11: at any moment their days differ (by one, sometimes two).
    east_day = now.astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    west_day = now.astimezone(ZoneInfo("Pacific/Pago_Pago")).date()
    east = add_account(
        sync_db, "east@mail.example", timezone="Pacific/Kiritimati", ramp_started_on=east_day.isoformat()
    )
    west = add_account(sync_db, "west@mail.example", timezone="Pacific/Pago_Pago")
    sync_db.email_campaign_settings.insert_many(
        [
            {"email_id": east, "max_daily_sends": 40, "max_hourly_sends": 6, "ramp": {"start": 5, "increase": 2}},
            {"email_id": west, "max_daily_sends": 40},
        ]
    )
    sync_db.account_usage.insert_many(
        [
            {"account_id": east, "day": east_day.isoformat(), "sent": 3, "committed": 3},
            {"account_id": west, "day": west_day.isoformat(), "sent": 9, "committed": 9},
            {"account_id": west, "day": east_day.isoformat(), "sent": 30, "committed": 30},  # not the west's today
        ]
    )

    rows = {r["email"]: r for r in as_json(cli("show-account-stats", "--json"))["accounts"]}

    assert (rows["east@mail.example"]["day"], rows["west@mail.example"]["day"]) == (
        east_day.isoformat(),
        west_day.isoformat(),
    )
    # Ramp day 0: 5 sends, not max_daily_sends.
    assert (rows["east@mail.example"]["sent"], rows["east@mail.example"]["limit"]) == (3, 5)
    assert rows["east@mail.example"]["remaining"] == 2
    assert rows["east@mail.example"]["max_hourly_sends"] == 6
    assert (rows["west@mail.example"]["sent"], rows["west@mail.example"]["limit"]) == (9, 40)
    table = ok(cli("show-account-stats")).output
    assert "ramp from" in table and "Pacific/Kiritimati" in table


def test_reset_account_limits_clears_the_accounts_own_today(cli, sync_db) -> None:
    zone = "Pacific/Kiritimati"
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date().isoformat()
    acc = add_account(sync_db, timezone=zone)
    sync_db.account_usage.insert_one({"account_id": acc, "day": today, "sent": 4, "committed": 4})

    result = ok(cli("reset-account-limits", acc, "--yes"))

    assert f"usage for {today}" in result.output
    assert sync_db.account_usage.count_documents({}) == 0
