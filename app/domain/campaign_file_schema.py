"""What a campaign file may hold: its fields, their types and the checks that need no other file. Pure.

Separate from `campaign_file.py` (reading the YAML and naming the line of each problem) because this is the
file's format alone, declared as strict pydantic models: a field not listed here is an error, and a newcomer
finds every field a campaign file accepts in one place.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScheduleEntry(_Strict):
    """`settings.schedule:` the sending window (checked by `parse_schedule` once the types are right)."""

    timezone: str
    days: list[str] | None = None
    start: str
    end: str
    blackout_dates: list[str] | None = None
    recipient_timezone: bool | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted_time(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 17:00 as the number 1020 (base 60).
            raise ValueError("must be a local time in quotes, such as '17:00' (unquoted, YAML reads it as a number)")
        return value

    @field_validator("blackout_dates", mode="before")
    @classmethod
    def _dates_as_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 2025-12-25 as a date; it is stored as the text `YYYY-MM-DD`.
        if isinstance(value, list):
            return [v.isoformat() if type(v) is date else v for v in value]
        return value


class SettingsEntry(_Strict):
    """`settings:` of a campaign file (see `campaigns.settings`)."""

    daily_limit: int | None = Field(default=None, ge=0)
    min_wait_time: float | None = Field(default=None, ge=0)
    batch_size: int | None = Field(default=None, ge=1)
    stop_on_reply: Literal["lead", "recipient", "none"] | None = None
    uncertain_after_hours: float | None = Field(default=None, ge=0)
    hourly_limit: int | None = Field(default=None, ge=0)
    wait_jitter: float | None = Field(default=None, ge=0)  # minutes
    schedule: ScheduleEntry | None = None


class VariantEntry(_Strict):
    """One of a template's `variants:` (see Variants and spintax); every field is optional."""

    name: str | None = Field(default=None, min_length=1)
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    weight: float | None = Field(default=None, gt=0)


class TemplateEntry(_Strict):
    """One template: inline (`subject`, `body_text`, `body_html`) or from files relative to the campaign file."""

    id: str | None = None
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    file: str | None = None  # seed 001's form: a first line `Subject: ...`, then the text body
    body_text_file: str | None = None
    body_html_file: str | None = None
    variants: list[VariantEntry] | None = None

    @model_validator(mode="after")
    def _one_source_each(self) -> TemplateEntry:
        texts = [n for n in ("body_text", "body_text_file", "file") if getattr(self, n) is not None]
        if len(texts) > 1:
            raise ValueError(f"give one text body, not {' and '.join(texts)}")
        if self.body_html is not None and self.body_html_file is not None:
            raise ValueError("give body_html or body_html_file, not both")
        if not texts and self.body_html is None and self.body_html_file is None:
            raise ValueError("needs a body: body_text, body_text_file, file, body_html or body_html_file")
        return self


class StepEntry(_Strict):
    """One sequence step: a template named in `templates:`, the delay after the previous step, threading."""

    template: str = Field(min_length=1)
    delay_minutes: float = Field(default=0.0, ge=0)
    thread: bool | None = None


class CampaignFileModel(_Strict):
    """The whole file."""

    id: str | None = None
    name: str = Field(min_length=1)
    status: Literal["draft", "active", "paused", "completed"] | None = None
    settings: SettingsEntry = SettingsEntry()
    accounts: list[str] | None = None  # ids or emails; absent or empty: every active account
    templates: dict[str, TemplateEntry] = Field(min_length=1)
    steps: list[StepEntry] = Field(min_length=1)
