"""Writing a stored campaign back as a campaign file: `export`. Pure.

Separate from `campaign_file.py` (reading and checking a file) because it goes the other way, from stored
values to YAML, and shares none of the reading's line-finding; what it writes is a file that
`campaign_file.parse` accepts and `campaign_plan.plan` finds nothing to change in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import yaml

from app.domain.campaign_plan import Stored
from app.domain.campaign_specs import SCHEDULE_KEYS, SETTINGS_KEYS, TemplateSpec
from app.domain.sequence_edits import StepSpec


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so exported templates read like the files people write."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Times always quoted: YAML reads 17:00 unquoted as a number, and 09:00 alone would look safe to copy.
    style = "|" if "\n" in value else "'" if re.fullmatch(r"\d\d:\d\d", value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def export(stored: Stored, accounts: Sequence[str]) -> str:
    """A campaign file for a stored campaign; `accounts` are its accounts as emails (ids where unknown)."""
    campaign = stored.campaign
    if campaign is None:
        raise ValueError("nothing to export: the campaign is not stored")
    used = list(dict.fromkeys(spec.template for _key, spec in stored.steps))
    data: dict[str, Any] = {"id": campaign.id, "name": campaign.name, "status": campaign.status}
    settings = {k: stored.settings[k] for k in SETTINGS_KEYS if stored.settings.get(k) is not None}
    if isinstance(settings.get("schedule"), Mapping):
        settings["schedule"] = _schedule_entry(settings["schedule"])
    if settings:
        data["settings"] = settings
    if accounts:
        data["accounts"] = list(accounts)
    missing = [name for name in used if name not in stored.templates]
    if missing:
        raise ValueError(f"the campaign's steps use templates that are not stored: {', '.join(missing)}")
    data["templates"] = {name: _template_entry(stored.templates[name]) for name in used}
    data["steps"] = [_step_entry(spec) for _key, spec in stored.steps]
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=120)


def _schedule_entry(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """The stored schedule's fields a file knows, in their order; a BSON date as its `YYYY-MM-DD` text."""
    entry = {k: schedule[k] for k in SCHEDULE_KEYS if schedule.get(k) is not None}
    if isinstance(entry.get("blackout_dates"), list):
        entry["blackout_dates"] = [
            d.date().isoformat() if isinstance(d, datetime) else d for d in entry["blackout_dates"]
        ]
    return entry


def _template_entry(t: TemplateSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": t.id} if t.id else {}
    if t.subject:
        entry["subject"] = t.subject
    entry["body_text"] = t.body_text
    if t.body_html is not None:
        entry["body_html"] = t.body_html
    if t.variants:
        entry["variants"] = [dict(v) for v in t.variants]
    return entry


def _step_entry(step: StepSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"template": step.template, "delay_minutes": step.delay_minutes}
    if step.thread is not None:
        entry["thread"] = step.thread
    return entry
