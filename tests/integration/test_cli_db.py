"""`outbound db status|stop` with the embedded server, and settings errors reported by the CLI."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from app.store import embedded, schema

EMBEDDED = {"MONGO_URI": ""}


@pytest.fixture
def home(cli_env: dict[str, str]) -> Iterator[Path]:
    """The OUTBOUND_HOME the CLI uses in these tests; its embedded server is stopped afterwards, even on failure."""
    path = Path(cli_env["OUTBOUND_HOME"])
    yield path
    recorded = embedded._read_state(path)
    embedded.stop(path, timeout=10)
    if recorded is not None and embedded._pid_is_server(recorded.pid):
        os.kill(recorded.pid, signal.SIGKILL)


def _status_json(cli: Any) -> dict[str, Any]:
    result = cli("db", "status", "--json", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_db_status_says_not_running_before_anything_started_it(cli: Any, home: Path) -> None:
    result = cli("db", "status", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "not running" in result.stdout
    assert str(home) in result.stdout
    assert embedded.status(home) is None, "status must not start the server"


def test_db_status_json_when_not_running(cli: Any, home: Path) -> None:
    assert _status_json(cli) == {"mode": "embedded", "home": str(home), "running": False}


def test_db_status_shows_pid_address_and_collection_counts(cli: Any, home: Path, cli_env: dict[str, str]) -> None:
    info = embedded.ensure_running(home)
    with MongoClient(info.uri, serverSelectionTimeoutMS=10_000) as client:
        client[cli_env["DB_NAME"]].campaigns.insert_many([{"name": "One"}, {"name": "Two"}])

    result = cli("db", "status", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert f"pid {info.pid}" in result.stdout
    assert f"127.0.0.1:{info.port}" in result.stdout
    assert info.storage_path in result.stdout
    campaigns_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("campaigns "))
    assert campaigns_line.split()[-1] == "2"


def test_db_status_json_shows_pid_address_and_collection_counts(cli: Any, home: Path, cli_env: dict[str, str]) -> None:
    info = embedded.ensure_running(home)
    with MongoClient(info.uri, serverSelectionTimeoutMS=10_000) as client:
        client[cli_env["DB_NAME"]].email_accounts.insert_one({"email": "sender@example.com"})

    data = _status_json(cli)
    assert data["mode"] == "embedded"
    assert data["running"] is True
    assert data["pid"] == info.pid
    assert data["address"] == f"127.0.0.1:{info.port}"
    assert data["uri"] == info.uri
    assert data["db_name"] == cli_env["DB_NAME"]
    assert set(data["collections"]) == set(schema.ALL_COLLECTIONS)
    assert data["collections"]["email_accounts"] == 1
    assert data["collections"]["campaigns"] == 0


def test_db_stop_stops_the_server_and_status_then_says_not_running(cli: Any, home: Path) -> None:
    info = embedded.ensure_running(home)

    result = cli("db", "stop", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert f"pid {info.pid}" in result.stdout
    assert embedded.status(home) is None
    assert not embedded._pid_is_server(info.pid)

    assert _status_json(cli)["running"] is False


def test_db_stop_when_not_running_says_so(cli: Any, home: Path) -> None:
    result = cli("db", "stop", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "was not running" in result.stdout


def test_db_stop_with_mongo_uri_set_has_nothing_to_stop(cli: Any, home: Path) -> None:
    result = cli("db", "stop")
    assert result.exit_code == 1
    assert "MONGO_URI is set" in result.stderr
    assert "nothing to stop" in result.stderr


def test_db_status_with_mongo_uri_does_not_start_a_local_server(cli: Any, home: Path) -> None:
    result = cli("db", "status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mode"] == "external"
    assert embedded.status(home) is None


def test_db_name_option_with_a_slash_is_refused_naming_db_name(cli: Any) -> None:
    result = cli("--db-name", "bad/name", "db", "status")
    assert result.exit_code == 2
    assert "DB_NAME" in result.stderr
    assert "MongoDB database name" in result.stderr


def test_invalid_mongo_uri_in_environment_is_refused(cli: Any) -> None:
    result = cli("db", "status", env={"MONGO_URI": "http://127.0.0.1:27017"})
    assert result.exit_code == 2
    assert "MONGO_URI" in result.stderr
    assert "mongodb://" in result.stderr


def test_env_file_option_is_read_and_environment_wins(cli: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("OUTBOUND_BATCH_SIZE=lots\n")
    result = cli("--env-file", str(env_file), "db", "status")
    assert result.exit_code == 2
    assert "OUTBOUND_BATCH_SIZE" in result.stderr

    result = cli("--env-file", str(env_file), "db", "status", env={"OUTBOUND_BATCH_SIZE": "10"})
    assert result.exit_code == 0, result.output
