"""Shared fixtures: a real SecantusDB server process for the session, a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase
from typer.testing import CliRunner

from app.store import embedded
from app.store.client import Database, make_client
from app.store.schema import ensure_schema


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test starts with the logging set-up the one before found: a CLI command run in-process configures
    structlog (at WARNING, say), which would otherwise filter out the events a later test captures."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SecantusDB server for the whole test session, on loopback, with test commands (fail points)."""
    log = tmp_path_factory.mktemp("secantus") / "server.log"
    proc, port = embedded.spawn_server(
        ":memory:", log, extra_args=("--enable-test-commands",), detach=False, timeout=120
    )
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except Exception:
            proc.kill()


@pytest.fixture
def db_name() -> str:
    """A database name unique to this test."""
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def sync_db(mongo_uri: str, db_name: str) -> Iterator[SyncDatabase[dict[str, Any]]]:
    """A blocking handle on this test's database (for sync tests and CLI checks); dropped afterwards."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[db_name]
    finally:
        client.drop_database(db_name)
        client.close()


@pytest.fixture
async def db(mongo_uri: str, db_name: str) -> AsyncIterator[Database]:
    """An async handle on this test's database, schema ensured; dropped afterwards."""
    client = make_client(mongo_uri)
    database = client[db_name]
    await ensure_schema(database)
    try:
        yield database
    finally:
        await client.drop_database(db_name)
        await client.close()


@pytest.fixture
def cli_env(mongo_uri: str, db_name: str, tmp_path: Path) -> dict[str, str]:
    """Environment for invoking the CLI against this test's database."""
    return {
        "MONGO_URI": mongo_uri,
        "DB_NAME": db_name,
        "OUTBOUND_HOME": str(tmp_path / "home"),
        "LOG_LEVEL": "WARNING",
        "OUTBOUND_LOG_FORMAT": "json",
    }


class Cli:
    """Runs `outbound ...` in-process with the test's environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        from app.cli.main import app

        old = Path.cwd()
        os.chdir(self.cwd)  # no stray .env from the repository is read
        try:
            return self.runner.invoke(app, list(args), env={**self.env, **(env or {})}, input=input)
        finally:
            os.chdir(old)


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path) -> Cli:
    """Invoke the CLI: `result = cli("list-campaigns", "--json")`."""
    return Cli(cli_env, tmp_path)
