"""show-account-stats splits the reserved sends: those already handed to SMTP and those not yet."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.integration.cli_documents import TODAY, add_account, as_json, ok


def test_show_account_stats_counts_reservations_not_yet_handed_to_smtp(cli, sync_db) -> None:
    acc = add_account(sync_db)
    at = datetime.now(UTC)
    sync_db.account_usage.insert_one(
        {
            "_id": f"{acc}:{TODAY}",
            "account_id": acc,
            "day": TODAY,
            "sent": 5,
            "committed": 2,
            "campaigns": {"c1": 5},
            "open": {
                "a1": {"owner": "vm:1:aa", "campaign": "c1", "at": at, "flown": False},
                "a2": {"owner": "vm:1:aa", "campaign": "c1", "at": at, "flown": False},
                "b1": {"owner": "vm:2:bb", "campaign": "c1", "at": at, "flown": True},  # may have been delivered
            },
        }
    )

    row = as_json(cli("show-account-stats", "--json"))["accounts"][0]
    table = ok(cli("show-account-stats")).stdout

    assert (row["sent"], row["committed"], row["reserved"], row["reserved_unsent"]) == (5, 2, 3, 2)
    header, values = (line for line in table.splitlines() if "reserved-but-unsent" in line or acc in line)
    assert values.split("│")[header.split("┃").index(" reserved-but-unsent ")].strip() == "2"
