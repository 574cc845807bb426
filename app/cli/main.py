"""The `outbound` command line (also `python -m app.cli.main`): seed 001's commands and ours."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli import (
    account_admin_cmds,
    account_cmds,
    apply_cmds,
    audit_cmds,
    campaign_admin_cmds,
    campaign_cmds,
    db_cmds,
    demo_cmds,
    dispatch_cmds,
    imap_cmds,
    import_cmds,
    inbox_cmds,
    job_cmds,
    lead_cmds,
    lead_repair_cmds,
    ledger_cmds,
    report_cmds,
    send_cmds,
    serve_cmds,
    status_cmds,
    step_cmds,
    suppress_cmds,
    template_cmds,
    token_cmds,
    user_cmds,
    validate_cmds,
)
from app.cli.common import fail
from app.config import LOG_FORMATS, LOG_LEVELS, ConfigError, load_settings, parse_variable
from app.logging import configure_logging

app = typer.Typer(
    name="outbound",
    help="Outbound: multi-step cold-outreach email sequences from MongoDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Path = typer.Option(Path(".env"), "--env-file", help="Read settings from this .env file."),
    mongo_uri: str | None = typer.Option(None, "--mongo-uri", help="Override MONGO_URI."),
    db_name: str | None = typer.Option(None, "--db-name", help="Override DB_NAME."),
    home: str | None = typer.Option(None, "--home", help="Override OUTBOUND_HOME (embedded database data)."),
    log_level: str | None = typer.Option(None, "--log-level", help=f"Override LOG_LEVEL: {', '.join(LOG_LEVELS)}."),
    log_format: str | None = typer.Option(
        None, "--log-format", help=f"Override OUTBOUND_LOG_FORMAT: {', '.join(LOG_FORMATS)}."
    ),
) -> None:
    """Read settings once (environment, then .env, then these options) for every command."""
    try:
        settings = load_settings(env_file=env_file)
    except ConfigError as exc:
        fail(str(exc), code=2)
    given = {
        "--mongo-uri": ("MONGO_URI", "mongo_uri", mongo_uri),
        "--db-name": ("DB_NAME", "db_name", db_name),
        "--home": ("OUTBOUND_HOME", "home", home),
        "--log-level": ("LOG_LEVEL", "log_level", log_level),
        "--log-format": ("OUTBOUND_LOG_FORMAT", "log_format", log_format),
    }
    overrides = {}
    for option, (variable, name, raw) in given.items():
        if raw is None:
            continue
        try:
            overrides[name] = parse_variable(variable, raw)
        except ConfigError as exc:  # name what the user typed, not only the variable it overrides
            fail(f"{option} {raw!r} is invalid: {option} accepts {exc.accepts} (it overrides {variable})", code=2)
    settings = settings.with_overrides(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


for module in (
    campaign_cmds,
    account_cmds,
    account_admin_cmds,
    lead_cmds,
    lead_repair_cmds,
    import_cmds,
    demo_cmds,
    send_cmds,
    imap_cmds,
    inbox_cmds,
    dispatch_cmds,
    ledger_cmds,
    db_cmds,
    serve_cmds,
    status_cmds,
    suppress_cmds,
    campaign_admin_cmds,
    template_cmds,
    step_cmds,
    apply_cmds,
    validate_cmds,
    report_cmds,
    token_cmds,
    audit_cmds,
    user_cmds,
    job_cmds,
):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
