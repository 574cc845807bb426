"""`job create`'s options checked into a JobSpec, or a JobSpecError naming the option to fix; nothing is stored.

Pure, given `now`. The schedule follows from the options when `--schedule` is not given: recurring with
`--cron`, delayed with `--run-at`, immediate otherwise. A naive `--run-at` is read in `--timezone` (UTC by
default); a wall-clock time that the zone skips or repeats (a daylight-saving change) needs an offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.domain.addresses import InvalidAddress
from app.domain.import_columns import import_email
from app.domain.import_encoding import codec_name
from app.domain.import_rows import ImportFileError
from app.domain.job_recipients import RecipientSource, RecipientSourceError, parse_filters
from app.domain.job_schedule import MISFIRE_POLICIES, Cron, CronError, Misfire, next_run, parse_cron

Schedule = Literal["immediate", "delayed", "recurring"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
MAX_RETRIES = 20
MAX_NAME_CHARS = 200


class JobSpecError(ValueError):
    """An option of `job create` that cannot be accepted; `option` is the CLI option ("--cron", "--run-at")."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class JobInput:
    """`job create`'s options as given on the command line (None: not given)."""

    name: str
    template: str
    recipients: str | None = None
    recipient_file: str | None = None
    recipient_filters: tuple[str, ...] = ()
    encoding: str | None = None
    schedule: str | None = None
    run_at: str | None = None
    cron: str | None = None
    timezone: str | None = None
    misfire: str | None = None
    campaign_id: str | None = None
    accounts: str | None = None
    max_retries: str | int | None = None


@dataclass(frozen=True)
class JobSpec:
    """A job as validated: what to send to whom, when, and through which accounts.

    `run_at` (delayed jobs) is aware UTC; `cron` and `misfire` are set for recurring jobs only; `account_ids`
    is empty when the job uses `campaign_id`'s accounts (or every active account when neither is given);
    `max_retries` None means the dispatcher's OUTBOUND_RETRY_MAX_ATTEMPTS.
    """

    name: str
    template_id: str
    source: RecipientSource
    schedule: Schedule
    run_at: datetime | None
    cron: Cron | None
    timezone: str
    misfire: Misfire | None
    campaign_id: str | None
    account_ids: tuple[str, ...]
    max_retries: int | None


def validate_job(raw: JobInput, now: datetime, *, allow_past: bool) -> JobSpec:
    """Check every option of `job create` and return the job; raise JobSpecError naming the first bad option.

    A relative --recipient-file is made absolute against the current directory, since dispatchers re-read it
    from their own working directories.
    """
    name = _text("--name", raw.name)
    if len(name) > MAX_NAME_CHARS:
        raise JobSpecError("--name", f"--name is {len(name)} characters long; keep it to {MAX_NAME_CHARS}")
    template_id = _text("--template", raw.template)
    source = _source(raw)
    tz_name, tz = _zone(raw.timezone)
    schedule = _schedule(raw)
    run_at = _run_at(raw.run_at, tz, tz_name, now, allow_past) if schedule == "delayed" else None
    cron = _cron(raw.cron) if schedule == "recurring" else None
    misfire = _misfire(raw.misfire, schedule)
    campaign_id, account_ids = _senders(raw.campaign_id, raw.accounts)
    return JobSpec(
        name=name,
        template_id=template_id,
        source=source,
        schedule=schedule,
        run_at=run_at,
        cron=cron,
        timezone=tz_name,
        misfire=misfire,
        campaign_id=campaign_id,
        account_ids=account_ids,
        max_retries=_max_retries(raw.max_retries),
    )


def first_run_at(spec: JobSpec, now: datetime) -> datetime:
    """When a new job first runs: now (immediate), its --run-at (delayed) or its next cron time (recurring)."""
    if spec.cron is not None:
        return next_run(spec.cron, ZoneInfo(spec.timezone), now)
    return spec.run_at or now.astimezone(UTC)


def _text(option: str, value: str | None) -> str:
    text = (value or "").strip()
    if not text:
        raise JobSpecError(option, f"{option} is required and cannot be blank")
    if any(ch in text for ch in "\r\n\x00"):
        raise JobSpecError(option, f"{option} must be one line of text")
    return text


def _source(raw: JobInput) -> RecipientSource:
    given = [o for o, v in (("--recipients", raw.recipients), ("--recipient-file", raw.recipient_file)) if v]
    if len(given) > 1:
        raise JobSpecError("--recipients", "give --recipients or --recipient-file, not both")
    try:
        filters = parse_filters(raw.recipient_filters)
    except RecipientSourceError as exc:
        raise JobSpecError("--recipient-filter", str(exc)) from None
    if raw.encoding is not None and not raw.recipient_file:
        raise JobSpecError("--encoding", "--encoding is the encoding of a --recipient-file; give the file too")
    if raw.recipients:
        if filters:
            raise JobSpecError(
                "--recipient-filter",
                "--recipient-filter narrows a --recipient-file or the stored recipients, "
                "not a --recipients list: drop the addresses that do not match instead",
            )
        return RecipientSource("static", addresses=_addresses(raw.recipients))
    if raw.recipient_file:
        path = _text("--recipient-file", raw.recipient_file)
        encoding = _encoding(raw.encoding)
        return RecipientSource("file", path=str(Path(path).expanduser().absolute()), filters=filters, encoding=encoding)
    if filters:
        return RecipientSource("filter", filters=filters)
    raise JobSpecError(
        "--recipients",
        "a job needs recipients: --recipients a@example.com,b@example.com, --recipient-file FILE (CSV or JSON) "
        "or --recipient-filter KEY=VALUE (stored recipients)",
    )


def _addresses(value: str) -> tuple[str, ...]:
    """The comma-separated addresses, validated and normalised, duplicates (any case) removed, order kept."""
    found: dict[str, None] = {}
    bad: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            found.setdefault(import_email(item), None)
        except InvalidAddress as exc:
            bad.append(str(exc))
    if bad:
        listed = "; ".join(bad)
        raise JobSpecError("--recipients", f"--recipients has {len(bad)} invalid address(es): {listed}")
    if not found:
        raise JobSpecError(
            "--recipients", "--recipients lists no address: e.g. --recipients a@example.com,b@example.com"
        )
    return tuple(found)


def _encoding(value: str | None) -> str | None:
    if value is None or value.strip().lower() in ("", "auto"):
        return None
    try:
        return codec_name(value)
    except ImportFileError as exc:
        raise JobSpecError("--encoding", str(exc)) from None


def _zone(value: str | None) -> tuple[str, ZoneInfo]:
    name = (value or "UTC").strip()
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise JobSpecError(
            "--timezone", f"--timezone {value!r} is not an IANA time zone: use e.g. Europe/Berlin, America/New_York"
        ) from None


def _schedule(raw: JobInput) -> Schedule:
    if raw.schedule is None or not raw.schedule.strip():
        if raw.cron and raw.run_at:
            raise JobSpecError("--run-at", "--run-at is for a delayed job and --cron for a recurring one: give one")
        return "recurring" if raw.cron else "delayed" if raw.run_at else "immediate"
    schedule = raw.schedule.strip().lower()
    if schedule not in SCHEDULES:
        raise JobSpecError("--schedule", f"--schedule {raw.schedule!r} is not one of {', '.join(SCHEDULES)}")
    if raw.cron and schedule != "recurring":
        raise JobSpecError("--cron", f"--cron is for --schedule recurring, not {schedule}: drop one of them")
    if raw.run_at and schedule != "delayed":
        raise JobSpecError("--run-at", f"--run-at is for --schedule delayed, not {schedule}: drop one of them")
    if schedule == "delayed" and not raw.run_at:
        raise JobSpecError("--run-at", "a delayed job needs --run-at, e.g. --run-at 2026-06-01T09:00+02:00")
    if schedule == "recurring" and not raw.cron:
        raise JobSpecError("--cron", "a recurring job needs --cron, e.g. --cron '0 8 * * 1-5' (08:00 on weekdays)")
    return cast(Schedule, schedule)


def _run_at(value: str | None, tz: ZoneInfo, tz_name: str, now: datetime, allow_past: bool) -> datetime:
    text = (value or "").strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise JobSpecError(
            "--run-at", f"--run-at {value!r} is not an ISO 8601 time: e.g. 2026-06-01T09:00+02:00 or 2026-06-01 09:00"
        ) from None
    if when.tzinfo is None:
        when = _local(when, tz, tz_name, text)
    when = when.astimezone(UTC)
    if when < now and not allow_past:
        raise JobSpecError(
            "--run-at",
            f"--run-at {text} is in the past (now is {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC): pass a later time, "
            "or --allow-past to run the job at once",
        )
    return when


def _local(naive: datetime, tz: ZoneInfo, tz_name: str, text: str) -> datetime:
    """A wall-clock time in `tz`; refused when a daylight-saving change skips or repeats it."""
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    skipped = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive
    what = "does not exist (the clocks skip it)" if skipped else "happens twice (the clocks go back)"
    raise JobSpecError(
        "--run-at", f"--run-at {text} {what} in {tz_name}: give the offset, e.g. {first.isoformat(timespec='minutes')}"
    )


def _cron(value: str | None) -> Cron:
    try:
        return parse_cron(value or "")
    except CronError as exc:
        raise JobSpecError("--cron", f"--cron: {exc}") from None


def _misfire(value: str | None, schedule: Schedule) -> Misfire | None:
    if value is None or not value.strip():
        return "run_once" if schedule == "recurring" else None
    if schedule != "recurring":
        raise JobSpecError("--misfire", "--misfire is for recurring jobs (--cron): drop it")
    misfire = value.strip().lower().replace("-", "_")
    if misfire not in MISFIRE_POLICIES:
        raise JobSpecError("--misfire", f"--misfire {value!r} is not one of {', '.join(MISFIRE_POLICIES)}")
    return cast(Misfire, misfire)


def _senders(campaign_id: str | None, accounts: str | None) -> tuple[str | None, tuple[str, ...]]:
    if campaign_id and accounts:
        raise JobSpecError("--accounts", "give --campaign-id (its accounts) or --accounts, not both")
    if campaign_id is not None:
        return _text("--campaign-id", campaign_id), ()
    if accounts is None:
        return None, ()
    ids = tuple(dict.fromkeys(part.strip() for part in accounts.split(",") if part.strip()))
    if not ids:
        raise JobSpecError("--accounts", "--accounts lists no account id: e.g. --accounts ID1,ID2")
    return None, ids


def _max_retries(value: str | int | None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        retries = int(value)
    except ValueError:
        retries = -1
    if isinstance(value, bool) or not 0 <= retries <= MAX_RETRIES:
        raise JobSpecError("--max-retries", f"--max-retries {value!r} must be a whole number from 0 to {MAX_RETRIES}")
    return retries
