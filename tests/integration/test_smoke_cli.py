"""The CLI starts, reads settings, and reaches the test database."""

from __future__ import annotations


def test_db_status_with_mongo_uri_reports_external(cli) -> None:
    result = cli("db", "status", "--json")
    assert result.exit_code == 0, result.output
    assert '"mode": "external"' in result.stdout


def test_invalid_setting_names_the_variable(cli) -> None:
    result = cli("db", "status", env={"OUTBOUND_CONCURRENCY": "many"})
    assert result.exit_code == 2
    assert "OUTBOUND_CONCURRENCY" in result.stderr
    assert "positive whole number" in result.stderr
