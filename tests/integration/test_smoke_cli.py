"""The CLI starts, reads settings, and reaches the test database."""

from __future__ import annotations

import json
import socket

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


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_an_unreachable_database_is_one_line_naming_the_host_in_the_log_format(cli, log_format: str) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"mongodb://app:s3cret@127.0.0.1:{port}/"
    result = cli("--mongo-uri", uri, "--log-format", log_format, "list-campaigns", env={"OUTBOUND_DB_TIMEOUT": "1"})
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "connection refused" in lines[0] and "s3cret" not in result.output
    if log_format == "json":
        assert json.loads(lines[0])["event"] == "db.unreachable"
    else:
        assert lines[0].startswith("error: cannot reach MongoDB at") and "MONGO_URI" in lines[0]
        assert "within 1 s (OUTBOUND_DB_TIMEOUT)" in lines[0]
