"""`POST /api/v1/campaigns/{id}/imports` and the OpenAPI schema, against the real app under uvicorn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.web.api import imports as import_routes
from tests.integration.cli_documents import add_campaign
from tests.integration.test_api_helpers import Api, audit_entries
from tests.integration.test_api_helpers import api as api
from tests.integration.test_web_roles import app_routes

LEADS_CSV = (
    "Email Address;First Name;Company;Website;Segment\n"
    "ann@acme.example;Ann;Acme;acme.example;enterprise\n"
    "bob@acme.example;Bob;Acme;acme.example;enterprise\n"
    "cy@globex.example;Cy;Globex;globex.example;smb\n"
    "not-an-address;Dee;Initech;initech.example;smb\n"
)


def _upload(api: Api, campaign_id: str, data: bytes, role: str = "operator", **fields: Any) -> Any:
    files = {"file": ("export.csv", data, "text/csv")}
    return api.post(f"/api/v1/campaigns/{campaign_id}/imports", role=role, files=files, data=fields)


def test_an_upload_gives_the_report_of_import_leads_json(api: Api, sync_db: Any, cli: Any, tmp_path: Path) -> None:
    by_api, by_cli = add_campaign(sync_db, "Via API"), add_campaign(sync_db, "Via CLI")
    response = _upload(api, by_api, LEADS_CSV.encode())
    assert response.status_code == 200, response.text
    report = response.json()
    path = tmp_path / "export.csv"
    path.write_bytes(LEADS_CSV.encode())
    shown = cli("import-leads", "--campaign-id", by_cli, str(path), "--json")
    assert shown.exit_code == 0, shown.output
    expected = json.loads(shown.stdout)
    for body, campaign_id in ((report, by_api), (expected, by_cli)):
        assert body.pop("campaign_id") == campaign_id
        body.pop("file")
    assert report.pop("all_rejected") is False
    assert report == expected
    assert (report["leads_created"], report["recipients_added"], report["rejected"]) == (2, 3, 1)
    assert report["rejections"][0]["row"] == 5
    assert sync_db.campaign_leads.count_documents({"campaign_id": by_api}) == 2
    (entry,) = audit_entries(sync_db, "leads.import")
    assert entry["target"] == {"campaign_id": by_api, "file": "export.csv"}
    assert entry["details"]["leads_created"] == 2

    again = _upload(api, by_api, LEADS_CSV.encode()).json()
    assert (again["leads_created"], again["duplicates_skipped"]) == (0, 3)


def test_options_are_form_fields_and_a_dry_run_writes_nothing(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    data = b"Work Email,Name\nann@acme.example,Ann\n"
    report = _upload(api, campaign_id, data, dry_run="true", map=["email=Work Email"], delimiter=",").json()
    assert report["dry_run"] is True and report["preview"]["rows"][0]["recipient"]["email"] == "ann@acme.example"
    assert sync_db.campaign_leads.count_documents({}) == 0


def test_bad_options_and_unknown_campaigns_are_refused_naming_them(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    data = LEADS_CSV.encode()
    fmt = _upload(api, campaign_id, data, format="pdf")
    assert fmt.status_code == 422 and fmt.json()["detail"].startswith("format:")
    group = _upload(api, campaign_id, data, group_by="Region")
    assert group.status_code == 422 and "group_by" in group.json()["detail"]
    dry = _upload(api, campaign_id, data, dry_run="perhaps")
    assert dry.status_code == 422 and dry.json()["detail"].startswith("dry_run:")
    missing = _upload(api, "665f1c2e9b1e8a3d4c5b6a70", data)
    assert missing.status_code == 404 and missing.json()["detail"] == "campaign 665f1c2e9b1e8a3d4c5b6a70 not found"
    no_file = api.post(f"/api/v1/campaigns/{campaign_id}/imports", data={"format": "csv"})
    assert no_file.status_code == 422 and no_file.json()["detail"].startswith("file:")
    viewer = _upload(api, campaign_id, data, role="viewer")
    assert viewer.status_code == 403
    assert sync_db.campaign_leads.count_documents({}) == 0
    assert {e["outcome"] for e in audit_entries(sync_db, "leads.import")} == {"refused"}


def test_an_upload_over_the_cap_is_413(api: Api, sync_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign_id = add_campaign(sync_db)
    monkeypatch.setattr(import_routes, "MAX_UPLOAD_BYTES", 1000)
    big = LEADS_CSV.encode() * 40  # about 6 KB
    # Within the declared size (the form's allowance) but over the cap once the file is read.
    read = _upload(api, campaign_id, big)
    assert read.status_code == 413 and read.json()["detail"].startswith("file:")
    # Over the cap by its Content-Length: refused before the body is read.
    monkeypatch.setattr(import_routes, "MAX_FORM_OVERHEAD", 100)
    declared = _upload(api, campaign_id, big)
    assert declared.status_code == 413 and "bytes; at most" in declared.json()["detail"]
    assert sync_db.campaign_leads.count_documents({}) == 0


def test_the_openapi_schema_lists_every_api_route_and_nothing_else(api: Api, settings: Settings) -> None:
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    documented = {f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops}
    served = {r for r in app_routes(settings) if r.split(" ", 1)[1].startswith("/api/v1/") and "openapi" not in r}
    assert documented == {r for r in served if not r.startswith("HEAD ")}
    campaign = schema["components"]["schemas"]["CampaignProgress"]
    assert "percent_complete" in campaign["properties"]
    upload = schema["paths"]["/api/v1/campaigns/{campaign_id}/imports"]["post"]["requestBody"]
    assert "file" in upload["content"]["multipart/form-data"]["schema"]["properties"]
    assert "password" not in response.text


@pytest.fixture
def settings(mongo_uri: str, db_name: str, tmp_path: Path) -> Settings:
    return Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home2", secret_key="a" * 40)
