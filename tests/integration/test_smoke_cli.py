"""The CLI starts, reads settings, and reaches the test database."""

from __future__ import annotations

import pytest


def test_db_status_with_mongo_uri_reports_external(cli) -> None:
    result = cli("db", "status", "--json")
    assert result.exit_code == 0, result.output
    assert '"mode": "external"' in result.stdout


def test_invalid_setting_names_the_variable(cli) -> None:
    result = cli("db", "status", env={"OUTBOUND_CONCURRENCY": "many"})
    assert result.exit_code == 2
    assert "OUTBOUND_CONCURRENCY" in result.stderr
    assert "positive whole number" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "variable"),
    [
        ("--log-level", "verbose", "LOG_LEVEL"),
        ("--db-name", "a/b", "DB_NAME"),
        ("--log-format", "xml", "OUTBOUND_LOG_FORMAT"),
    ],
)
def test_a_bad_option_names_the_option_typed(cli, option: str, value: str, variable: str) -> None:
    result = cli(option, value, "list-campaigns")
    assert result.exit_code == 2
    assert f"{option} {value!r} is invalid: {option} accepts" in result.stderr and variable in result.stderr
