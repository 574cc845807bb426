"""The web service's systemd unit runs `outbound serve` unprivileged on loopback, as deploy/README.md says."""

from __future__ import annotations

from pathlib import Path

from app.cli.serve_cmds import DEFAULT_HOST, DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_unit_serves_on_loopback_unprivileged_with_the_dispatchers_environment_file() -> None:
    unit = (ROOT / "deploy/outbound-web.service").read_text()
    dispatcher = (ROOT / "deploy/outbound-dispatcher.service").read_text()
    for line in (
        "User=outbound",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "NoNewPrivileges=true",
        f"serve --host {DEFAULT_HOST} --port {DEFAULT_PORT}",
    ):
        assert line in unit
    [environment] = [line for line in dispatcher.splitlines() if line.startswith("EnvironmentFile=")]
    assert environment in unit.splitlines()


def test_the_proxy_snippets_forward_the_unsubscribe_path_to_the_units_address() -> None:
    readme = (ROOT / "deploy/README.md").read_text()
    assert f"proxy_pass http://{DEFAULT_HOST}:{DEFAULT_PORT};" in readme  # nginx
    assert f"reverse_proxy {DEFAULT_HOST}:{DEFAULT_PORT}" in readme  # Caddy
    assert "location /u/" in readme and "handle /u/*" in readme


def test_the_proxy_snippets_forward_the_team_routes_with_the_client_scheme_and_keep_monitoring_local() -> None:
    readme = (ROOT / "deploy/README.md").read_text()
    nginx = readme.split("```nginx", 1)[1].split("```", 1)[0]
    caddy = readme.split("```caddy", 1)[1].split("```", 1)[0]
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx  # Secure cookies and per-client login limits
    for route in ("login", "logout", "dashboard", "static"):
        assert route in nginx and f"/{route}" in caddy
    assert "location /api/v1/" in nginx and "/api/v1/*" in caddy
    for local_only in ("/metrics", "/health", "/ready"):
        assert local_only not in nginx and local_only not in caddy
    assert "return 404;" in nginx and "respond 404" in caddy
