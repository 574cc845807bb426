"""The catalog against a real database: sender settings are found whichever id form seed 001 stored."""

from __future__ import annotations

import pytest
from bson import ObjectId

from app.store import schema
from app.store.catalog import Catalog
from app.store.client import Database


@pytest.mark.parametrize("stored_as", [ObjectId, str], ids=["object_id", "string"])
async def test_general_settings_are_found_whether_email_id_is_an_object_id_or_its_string(
    db: Database, stored_as: type
) -> None:
    account_id = ObjectId()
    await db[schema.EMAIL_GENERAL_SETTINGS].insert_one(
        {"email_id": stored_as(account_id), "sender_name": "Ada Lovelace", "signature": "-- Ada"}
    )

    general = await Catalog(db).general_settings(str(account_id))

    assert general is not None
    assert general.sender_name == "Ada Lovelace"
    assert general.signature == "-- Ada"


async def test_another_accounts_general_settings_are_not_used(db: Database) -> None:
    await db[schema.EMAIL_GENERAL_SETTINGS].insert_one({"email_id": ObjectId(), "sender_name": "Someone Else"})

    assert await Catalog(db).general_settings(str(ObjectId())) is None


@pytest.mark.parametrize("stored_as", [ObjectId, str], ids=["object_id", "string"])
async def test_a_sequences_steps_are_found_whether_sequence_id_is_an_object_id_or_its_string(
    db: Database, stored_as: type
) -> None:
    sequence_id = ObjectId()
    await db[schema.SEQUENCE_STEPS].insert_many(
        [
            {"sequence_id": stored_as(sequence_id), "step_order": 1, "template_id": "t1", "delay_minutes": 0},
            {"sequence_id": stored_as(sequence_id), "step_order": 2, "template_id": "t2", "delay_minutes": 60},
        ]
    )

    steps = await Catalog(db).steps(str(sequence_id))

    assert sorted(steps) == [1, 2]
    assert steps[2].template_id == "t2"
