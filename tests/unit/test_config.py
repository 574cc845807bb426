"""Settings: every variable is parsed, bad values are refused naming the variable, `.env` is overridable."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from app.config import VARIABLES, ConfigError, Settings, load_settings, parse_variable

FERNET_KEY = "x1mDDv8t8WZoWgZSHQwq0CnTbPlNqBUpr1eEcU4Q5eU="
OTHER_FERNET_KEY = "p9nQfdbp9WcnHpZTFSVK1Kab0Wk8qEPHDLpNA7iC8Io="


def load(environ: dict[str, str], env_file: Path | None = None) -> Settings:
    """Settings from exactly `environ` (never the test process's own environment)."""
    return load_settings(environ=environ, env_file=env_file)


def test_defaults_when_nothing_is_set() -> None:
    settings = load({})
    assert settings == Settings()
    assert settings.mongo_uri is None
    assert settings.uses_embedded
    assert settings.db_name == "outbound"
    assert settings.smtp_starttls is True
    assert settings.log_level == "INFO"
    assert settings.env == "development"
    assert settings.home == Path("~/.outbound").expanduser()
    assert settings.log_format == "auto"
    assert settings.helo_name is None, "None: the sender greets with this machine's name"
    assert settings.retry_cap_seconds >= settings.retry_base_seconds


def test_missing_env_file_is_not_an_error(tmp_path: Path) -> None:
    assert load({}, env_file=tmp_path / "absent.env") == Settings()


def test_every_variable_is_parsed_into_its_field(tmp_path: Path) -> None:
    environ = {
        "MONGO_URI": "mongodb://db.internal:27017/?replicaSet=rs0",
        "DB_NAME": "outreach",
        "SMTP_STARTTLS": "false",
        "LOG_LEVEL": "debug",
        "ENV": "production",
        "OUTBOUND_HOME": str(tmp_path / "home"),
        "OUTBOUND_LOG_FORMAT": "json",
        "OUTBOUND_SMTP_TIMEOUT": "12.5",
        "OUTBOUND_HELO_NAME": "mail.sender.example",
        "OUTBOUND_LEASE_SECONDS": "90",
        "OUTBOUND_POLL_INTERVAL": "0.5",
        "OUTBOUND_CONCURRENCY": "8",
        "OUTBOUND_BATCH_SIZE": "50",
        "OUTBOUND_RETRY_BASE_SECONDS": "30",
        "OUTBOUND_RETRY_CAP_SECONDS": "600",
        "OUTBOUND_RETRY_MAX_ATTEMPTS": "3",
        "OUTBOUND_SHUTDOWN_GRACE_SECONDS": "10",
        "OUTBOUND_PAUSE_ERROR_RATE": "0.25",
        "OUTBOUND_PAUSE_MIN_ATTEMPTS": "40",
        "OUTBOUND_DB_TIMEOUT": "3",
        "OUTBOUND_INBOX_POLL_SECONDS": "15",
        "OUTBOUND_PUBLIC_URL": "https://outreach.example.com/",
        "OUTBOUND_SECRET_KEY": "k" * 40,
        "OUTBOUND_SESSION_HOURS": "8",
        "OUTBOUND_CREDENTIALS_KEY": f" {FERNET_KEY} , {OTHER_FERNET_KEY} ",
        "OUTBOUND_DNS_SERVERS": "192.0.2.53, [2001:db8::53]:5353",
        "OUTBOUND_DEFAULT_DOMAIN_LIMIT": "30",
        "OUTBOUND_REPORT_TO": " ops@example.com, Founder@Example.COM ",
        "OUTBOUND_REPORT_ACCOUNT": " 665f1c2e9b1e8a3d4c5b6a72 ",
        "OUTBOUND_REPORT_AT": "6:30",
        "OUTBOUND_REPORT_TIMEZONE": "Europe/Berlin",
        "OUTBOUND_JOB_RETENTION_DAYS": "90",
    }
    assert set(environ) == set(VARIABLES), "this test must cover every documented variable"
    settings = load(environ)
    assert settings == Settings(
        mongo_uri="mongodb://db.internal:27017/?replicaSet=rs0",
        db_name="outreach",
        smtp_starttls=False,
        log_level="DEBUG",
        env="production",
        home=tmp_path / "home",
        log_format="json",
        smtp_timeout=12.5,
        helo_name="mail.sender.example",
        lease_seconds=90.0,
        poll_interval=0.5,
        concurrency=8,
        batch_size=50,
        retry_base_seconds=30.0,
        retry_cap_seconds=600.0,
        retry_max_attempts=3,
        shutdown_grace_seconds=10.0,
        pause_error_rate=0.25,
        pause_min_attempts=40,
        db_timeout=3.0,
        inbox_poll_seconds=15.0,
        public_url="https://outreach.example.com",
        secret_key="k" * 40,
        session_hours=8.0,
        credentials_key=f"{FERNET_KEY},{OTHER_FERNET_KEY}",
        dns_servers=(("192.0.2.53", 53), ("2001:db8::53", 5353)),
        default_domain_limit=30,
        report_to=("ops@example.com", "Founder@example.com"),
        report_account="665f1c2e9b1e8a3d4c5b6a72",
        report_at=time(6, 30),
        report_timezone="Europe/Berlin",
        job_retention_days=90,
    )
    assert not settings.uses_embedded
    assert FERNET_KEY not in repr(settings)


@pytest.mark.parametrize("raw", ["0", "-0.1", "1.5", "half", "nan"])
def test_pause_error_rate_must_be_a_fraction(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_PAUSE_ERROR_RATE": raw})
    assert "OUTBOUND_PAUSE_ERROR_RATE" in str(caught.value) and "at most 1" in str(caught.value)


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_mongo_uri_means_the_embedded_server(raw: str) -> None:
    settings = load({"MONGO_URI": raw})
    assert settings.mongo_uri is None
    assert settings.uses_embedded


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://127.0.0.1:27017",
        "mongodb://user:pw@a:1,b:2/?replicaSet=rs0",
        "mongodb+srv://username:password@cluster.mongodb.net/",
    ],
)
def test_mongodb_and_srv_uris_are_accepted(uri: str) -> None:
    assert load({"MONGO_URI": uri}).mongo_uri == uri


@pytest.mark.parametrize("uri", ["http://127.0.0.1:27017", "127.0.0.1:27017", "postgres://x", "mongodb:/x"])
def test_other_uri_schemes_are_refused(uri: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"MONGO_URI": uri})
    assert caught.value.variable == "MONGO_URI"
    assert "MONGO_URI" in str(caught.value)
    assert "mongodb://" in str(caught.value)
    assert "mongodb+srv://" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("on", True),
        ("ON", True),
        (" true ", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
        ("off", False),
        ("Off", False),
    ],
)
def test_booleans_accept_the_usual_spellings_in_any_case(raw: str, expected: bool) -> None:
    assert load({"SMTP_STARTTLS": raw}).smtp_starttls is expected


@pytest.mark.parametrize("raw", ["", "maybe", "2", "enabled", "t"])
def test_unknown_boolean_is_refused_listing_the_accepted_spellings(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"SMTP_STARTTLS": raw})
    message = str(caught.value)
    assert "SMTP_STARTTLS" in message
    for spelling in ("true", "false", "yes", "no", "on", "off"):
        assert spelling in message


@pytest.mark.parametrize(
    ("raw", "expected"), [("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING"), ("error", "ERROR")]
)
def test_log_level_is_case_insensitive(raw: str, expected: str) -> None:
    assert load({"LOG_LEVEL": raw}).log_level == expected


@pytest.mark.parametrize("raw", ["verbose", "TRACE", "", "critical"])
def test_unknown_log_level_is_refused_listing_the_choices(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"LOG_LEVEL": raw})
    message = str(caught.value)
    assert "LOG_LEVEL" in message
    assert "DEBUG, INFO, WARNING, ERROR" in message


@pytest.mark.parametrize(
    ("raw", "expected"), [("production", "production"), ("Test", "test"), ("DEVELOPMENT", "development")]
)
def test_env_accepts_its_choices_in_any_case(raw: str, expected: str) -> None:
    assert load({"ENV": raw}).env == expected


def test_unknown_env_is_refused_listing_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"ENV": "staging"})
    assert caught.value.variable == "ENV"
    assert "development, production, test" in str(caught.value)


def test_unknown_log_format_is_refused_listing_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_LOG_FORMAT": "xml"})
    assert "OUTBOUND_LOG_FORMAT" in str(caught.value)
    assert "auto, console, json" in str(caught.value)


def test_outbound_home_expands_the_user_directory() -> None:
    home = load({"OUTBOUND_HOME": "~/outbound-data"}).home
    assert home == Path.home() / "outbound-data"
    assert "~" not in str(home)


def test_empty_outbound_home_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_HOME": "  "})
    assert "OUTBOUND_HOME" in str(caught.value)
    assert "directory" in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    ["mail.example.com", "Outbound-1.Example.COM", "mx1", "localhost", "[192.0.2.1]", "[IPv6:2001:db8::1]"],
)
def test_helo_name_accepts_host_names_and_address_literals(raw: str) -> None:
    assert load({"OUTBOUND_HELO_NAME": raw}).helo_name == raw


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_helo_name_means_this_machines_name(raw: str) -> None:
    assert load({"OUTBOUND_HELO_NAME": raw}).helo_name is None


@pytest.mark.parametrize(
    "raw",
    [
        "mail example.com",
        "mail_1.example.com",
        "-mail.example.com",
        "mail-.example.com",
        "mail..example.com",
        "mail.example.com.",
        "exämple.com",
        "mail.example.com\r\nMAIL FROM:<x@y>",
        "192.0.2.1",
        "[192.0.2.300]",
        "[2001:db8::1]",
        "[IPv6:not-an-address]",
        "a" * 64 + ".example.com",
        ".".join(["a" * 63] * 4) + ".com",
    ],
)
def test_helo_name_that_is_not_a_host_name_is_refused_saying_what_is_accepted(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_HELO_NAME": raw})
    assert caught.value.variable == "OUTBOUND_HELO_NAME"
    message = str(caught.value)
    assert message.startswith("OUTBOUND_HELO_NAME=")
    assert "letters, digits, hyphens and dots" in message
    assert "[192.0.2.1]" in message


NUMBER_VARIABLES = [
    "OUTBOUND_SMTP_TIMEOUT",
    "OUTBOUND_LEASE_SECONDS",
    "OUTBOUND_POLL_INTERVAL",
    "OUTBOUND_RETRY_BASE_SECONDS",
    "OUTBOUND_RETRY_CAP_SECONDS",
    "OUTBOUND_SHUTDOWN_GRACE_SECONDS",
]
WHOLE_VARIABLES = ["OUTBOUND_CONCURRENCY", "OUTBOUND_BATCH_SIZE", "OUTBOUND_RETRY_MAX_ATTEMPTS"]


@pytest.mark.parametrize("variable", NUMBER_VARIABLES)
@pytest.mark.parametrize("raw", ["0", "-1", "abc", "", "nan", "inf"])
def test_non_positive_numbers_are_refused(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_variable(variable, raw)
    assert caught.value.variable == variable
    assert variable in str(caught.value)
    assert "a positive number" in str(caught.value)


@pytest.mark.parametrize("variable", NUMBER_VARIABLES)
def test_fractional_numbers_are_accepted(variable: str) -> None:
    assert parse_variable(variable, "0.25") == 0.25


@pytest.mark.parametrize("variable", WHOLE_VARIABLES)
@pytest.mark.parametrize("raw", ["0", "-3", "2.5", "many", ""])
def test_non_positive_whole_numbers_are_refused(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_variable(variable, raw)
    assert caught.value.variable == variable
    assert variable in str(caught.value)
    assert "a positive whole number" in str(caught.value)


@pytest.mark.parametrize("raw", ["bad/name", "a.b", "has space", "x$y", "", "n" * 64])
def test_invalid_db_name_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"DB_NAME": raw})
    assert "DB_NAME" in str(caught.value)
    assert "MongoDB database name" in str(caught.value)


@pytest.mark.parametrize("raw", ["secret", "x" * 44, FERNET_KEY[:-4], f"{FERNET_KEY},nope"])
def test_a_credentials_key_that_is_not_a_fernet_key_is_refused_without_showing_it(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_CREDENTIALS_KEY": raw})
    assert "OUTBOUND_CREDENTIALS_KEY" in str(caught.value) and "Fernet key" in str(caught.value)
    assert raw not in str(caught.value)


def test_an_empty_credentials_key_means_the_key_file() -> None:
    assert load({"OUTBOUND_CREDENTIALS_KEY": " "}).credentials_key is None


def test_config_error_carries_variable_value_and_accepted_values() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_CONCURRENCY": "many"})
    error = caught.value
    assert (error.variable, error.value, error.accepts) == ("OUTBOUND_CONCURRENCY", "many", "a positive whole number")
    assert str(error) == "OUTBOUND_CONCURRENCY='many' is invalid: OUTBOUND_CONCURRENCY accepts a positive whole number"


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# MongoDB Configuration\n"
        "MONGO_URI=mongodb+srv://username:password@cluster.mongodb.net/\n"
        "DB_NAME=your_database_name\n"
        "SMTP_STARTTLS=True\n"
        "LOG_LEVEL=WARNING\n"
    )
    settings = load({}, env_file=env_file)
    assert settings.mongo_uri == "mongodb+srv://username:password@cluster.mongodb.net/"
    assert settings.db_name == "your_database_name"
    assert settings.smtp_starttls is True
    assert settings.log_level == "WARNING"


def test_environment_overrides_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DB_NAME=from_file\nLOG_LEVEL=DEBUG\nOUTBOUND_CONCURRENCY=2\n")
    settings = load({"DB_NAME": "from_env", "OUTBOUND_CONCURRENCY": "6"}, env_file=env_file)
    assert settings.db_name == "from_env"
    assert settings.concurrency == 6
    assert settings.log_level == "DEBUG", "values only in the file still apply"


def test_environment_can_clear_mongo_uri_from_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MONGO_URI=mongodb://db.internal:27017\n")
    assert load({"MONGO_URI": ""}, env_file=env_file).uses_embedded


def test_invalid_value_in_env_file_is_refused(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OUTBOUND_BATCH_SIZE=lots\n")
    with pytest.raises(ConfigError, match="OUTBOUND_BATCH_SIZE"):
        load({}, env_file=env_file)


def test_unknown_variables_are_ignored() -> None:
    assert load({"PATH": "/usr/bin", "OUTBOUND_UNRELATED_THING": "x"}) == Settings()


def test_retry_cap_below_base_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_RETRY_BASE_SECONDS": "120", "OUTBOUND_RETRY_CAP_SECONDS": "60"})
    assert caught.value.variable == "OUTBOUND_RETRY_CAP_SECONDS"
    assert "OUTBOUND_RETRY_BASE_SECONDS" in str(caught.value)


def test_retry_cap_equal_to_base_is_accepted() -> None:
    settings = load({"OUTBOUND_RETRY_BASE_SECONDS": "60", "OUTBOUND_RETRY_CAP_SECONDS": "60"})
    assert settings.retry_cap_seconds == settings.retry_base_seconds == 60.0


def test_with_overrides_applies_given_values_and_ignores_none() -> None:
    base = Settings(db_name="outreach", log_level="WARNING")
    changed = base.with_overrides(db_name="other", log_level=None, mongo_uri=None)
    assert changed.db_name == "other"
    assert changed.log_level == "WARNING"
    assert changed.mongo_uri is None
    assert base.db_name == "outreach", "settings are immutable; a copy is returned"


def test_with_overrides_rejects_unknown_names() -> None:
    with pytest.raises(TypeError, match="unknown settings"):
        Settings().with_overrides(db_nmae="typo")


def test_with_overrides_of_nothing_is_equal() -> None:
    assert Settings().with_overrides() == Settings()


@pytest.mark.parametrize(
    "raw",
    ["http://outreach.example.com", "ftp://x.example", "https://", "https://x.example/?a=1", "https://x.example/#f"],
)
def test_public_url_must_be_https_except_on_loopback(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_PUBLIC_URL": raw, "OUTBOUND_SECRET_KEY": "k" * 40})
    assert "OUTBOUND_PUBLIC_URL" in str(caught.value) and "https" in str(caught.value)


@pytest.mark.parametrize("raw", ["http://127.0.0.1:8025", "http://localhost:8025/", "http://[::1]:8025"])
def test_public_url_may_be_plain_http_on_loopback(raw: str) -> None:
    assert load({"OUTBOUND_PUBLIC_URL": raw, "OUTBOUND_SECRET_KEY": "k" * 40}).public_url == raw.rstrip("/")


def test_public_url_needs_a_secret_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_PUBLIC_URL": "https://outreach.example.com"})
    assert "OUTBOUND_SECRET_KEY" in str(caught.value) and "required" in str(caught.value)


def test_short_secret_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_SECRET_KEY": "short-secret"})
    assert "at least 32" in str(caught.value) and "short-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "servers"),
    [
        ("", ()),
        ("127.0.0.1", (("127.0.0.1", 53),)),
        ("127.0.0.1:5353, 9.9.9.9", (("127.0.0.1", 5353), ("9.9.9.9", 53))),
        ("2001:db8::1", (("2001:db8::1", 53),)),
        ("[2001:db8::1]:10053", (("2001:db8::1", 10053),)),
    ],
)
def test_dns_servers_are_addresses_with_optional_ports(raw: str, servers: tuple[tuple[str, int], ...]) -> None:
    assert load({"OUTBOUND_DNS_SERVERS": raw}).dns_servers == servers


@pytest.mark.parametrize("raw", ["dns.google", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", "[::1]x", "1.2.3"])
def test_dns_servers_refuse_names_and_bad_ports(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_DNS_SERVERS": raw})
    assert "OUTBOUND_DNS_SERVERS" in str(caught.value) and "optional port" in str(caught.value)


@pytest.mark.parametrize("raw", ["0", "-3", "ten"])
def test_default_domain_limit_is_a_positive_number_per_hour(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_DEFAULT_DOMAIN_LIMIT": raw})
    assert "OUTBOUND_DEFAULT_DOMAIN_LIMIT" in str(caught.value)
    assert load({"OUTBOUND_DEFAULT_DOMAIN_LIMIT": ""}).default_domain_limit is None


def test_no_report_recipients_by_default_and_duplicates_are_dropped() -> None:
    assert load({}).report_to == ()
    assert load({"OUTBOUND_REPORT_TO": " , "}).report_to == ()
    assert load({"OUTBOUND_REPORT_TO": "a@example.com,a@EXAMPLE.com, a@example.com"}).report_to == ("a@example.com",)


@pytest.mark.parametrize(
    "raw", ["ops", "ops@example.com, not an address", "a@b@c.example", "ops@example.com;x@y.example"]
)
def test_a_report_recipient_that_is_not_an_address_is_refused_naming_it(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_REPORT_TO": raw})
    assert caught.value.variable == "OUTBOUND_REPORT_TO"
    assert "separated by commas" in str(caught.value) and "is not a valid address" in str(caught.value)


@pytest.mark.parametrize(("raw", "expected"), [("07:00", time(7, 0)), ("0:05", time(0, 5)), ("23:59", time(23, 59))])
def test_report_at_is_a_local_time_of_day(raw: str, expected: time) -> None:
    assert load({"OUTBOUND_REPORT_AT": raw}).report_at == expected


@pytest.mark.parametrize("raw", ["24:00", "7", "7:5", "07:60", "7am", "-1:00", "07:00:00"])
def test_report_at_that_is_not_hh_mm_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_REPORT_AT": raw})
    assert "OUTBOUND_REPORT_AT" in str(caught.value) and "HH:MM" in str(caught.value)


def test_empty_report_time_and_zone_mean_their_defaults() -> None:
    settings = load({"OUTBOUND_REPORT_AT": "", "OUTBOUND_REPORT_TIMEZONE": " ", "OUTBOUND_REPORT_ACCOUNT": ""})
    assert (settings.report_at, settings.report_timezone, settings.report_account) == (time(7, 0), "UTC", None)


@pytest.mark.parametrize("raw", ["Mars/Olympus", "CEST", "../etc/passwd", "Europe/"])
def test_report_timezone_must_be_an_iana_zone(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_REPORT_TIMEZONE": raw})
    assert "OUTBOUND_REPORT_TIMEZONE" in str(caught.value) and "IANA" in str(caught.value)


def test_report_account_with_spaces_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_REPORT_ACCOUNT": "my account"})
    assert "OUTBOUND_REPORT_ACCOUNT" in str(caught.value) and "list-accounts" in str(caught.value)


@pytest.mark.parametrize("raw", ["0", "-1", "721", "a day", "nan"])
def test_session_hours_must_be_positive_and_at_most_a_month(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"OUTBOUND_SESSION_HOURS": raw})
    assert caught.value.variable == "OUTBOUND_SESSION_HOURS" and "at most 720" in str(caught.value)
    assert load({"OUTBOUND_SESSION_HOURS": "0.5"}).session_hours == 0.5
    assert load({}).session_hours == 12.0


@pytest.mark.parametrize(("raw", "days"), [("0", 0), (" 7 ", 7), ("365", 365)])
def test_job_retention_days_is_a_whole_number_and_zero_keeps_everything(raw: str, days: int) -> None:
    assert load({"OUTBOUND_JOB_RETENTION_DAYS": raw}).job_retention_days == days


@pytest.mark.parametrize("raw", ["-1", "1.5", "a month", ""])
def test_job_retention_days_refuses_what_is_not_a_whole_number_of_days(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"OUTBOUND_JOB_RETENTION_DAYS.*whole number of days"):
        load({"OUTBOUND_JOB_RETENTION_DAYS": raw})
