"""`.env.example` and the deployment environment file stay in step with the settings Outbound reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import VARIABLES, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", [".env.example", "deploy/outbound.env.example"])
def test_example_environment_files_parse_and_mention_every_variable(name: str) -> None:
    path = ROOT / name
    text = path.read_text()
    missing = [variable for variable in VARIABLES if variable not in text]
    assert not missing, f"{name} does not document {missing}"
    settings = load_settings(environ={}, env_file=path)
    assert settings.concurrency >= 1


def test_readme_configuration_table_lists_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [v for v in VARIABLES if f"`{v}`" not in readme] == []


def test_systemd_unit_runs_the_dispatcher_unprivileged_with_an_environment_file() -> None:
    unit = (ROOT / "deploy/outbound-dispatcher.service").read_text()
    for line in ("User=outbound", "EnvironmentFile=", "run-dispatcher", "KillSignal=SIGTERM", "Restart=on-failure"):
        assert line in unit
