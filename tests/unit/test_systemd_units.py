"""The systemd units: Type=notify with a watchdog, notifications from the main process only, hardening kept."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("deploy/outbound-dispatcher.service", "deploy/outbound-web.service")


def _directives(path: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (ROOT / path).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_is_notify_with_a_watchdog_and_keeps_its_hardening(unit: str) -> None:
    d = _directives(unit)
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert 10 <= int(d["WatchdogSec"][0]) <= 300
    for key, value in (
        ("User", "outbound"),
        ("NoNewPrivileges", "true"),
        ("PrivateTmp", "true"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "true"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
    ):
        assert d[key] == [value], (unit, key)


def test_the_web_unit_may_reach_the_notify_socket() -> None:
    # RestrictAddressFamilies would otherwise keep the datagram to systemd from leaving.
    families = _directives("deploy/outbound-web.service")["RestrictAddressFamilies"][0].split()
    assert "AF_UNIX" in families


def test_the_dispatcher_unit_serves_its_metrics_on_loopback() -> None:
    [command] = _directives("deploy/outbound-dispatcher.service")["ExecStart"]
    assert command.endswith("outbound run-dispatcher --metrics-port 9105")
    assert "--metrics-host" not in command  # the default, 127.0.0.1
