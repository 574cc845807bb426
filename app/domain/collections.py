"""Collection names: seed 001's, then Outbound's own (indexes live in `app/store/schema.py`)."""

from __future__ import annotations

# Seed 001's collections.
CAMPAIGNS = "campaigns"
CAMPAIGN_LEADS = "campaign_leads"
SEQUENCE_STEPS = "sequence_steps"
TEMPLATES = "templates"
EMAIL_ACCOUNTS = "email_accounts"
EMAIL_GENERAL_SETTINGS = "email_general_settings"
EMAIL_CAMPAIGN_SETTINGS = "email_campaign_settings"
ACTIVITIES = "activities"
# Ours.
SENDS = "sends"
ACCOUNT_USAGE = "account_usage"
SUPPRESSIONS = "suppressions"
DISPATCHERS = "dispatchers"  # heartbeats
INBOUND = "inbound"  # one record per inbound message read (and per deferred answer)
INBOUND_SYNC = "inbound_sync"  # per account: the sync lease and backoff; per folder: UIDVALIDITY and last UID
DOMAIN_LIMITS = "domain_limits"  # per recipient domain: max_per_hour, optional max_per_day and group_by_mx
DOMAIN_USAGE = "domain_usage"  # per (bucket, UTC day): sends counted, in total and per hour
USERS = "users"  # dashboard users: email, role, argon2 password hash
API_TOKENS = "api_tokens"  # API tokens: name, role, SHA-256 of the token, display prefix
SESSIONS = "sessions"  # dashboard sessions: hashed id, user, expires_at (TTL)
LOGIN_ATTEMPTS = "login_attempts"  # failed sign-ins per email and client address (TTL), for the login limit
AUDIT = "audit"  # who did what, when, from where, through the API, the dashboard or the CLI
REPORT_RUNS = "report_runs"  # per report day: the daily report's claim and who it reached
JOBS = "jobs"  # scheduled and recurring sends: the spec, status and next run time
JOB_EXECUTIONS = "job_executions"  # one per run of a job: its state and counts

ALL_COLLECTIONS = (
    CAMPAIGNS,
    CAMPAIGN_LEADS,
    SEQUENCE_STEPS,
    TEMPLATES,
    EMAIL_ACCOUNTS,
    EMAIL_GENERAL_SETTINGS,
    EMAIL_CAMPAIGN_SETTINGS,
    ACTIVITIES,
    SENDS,
    ACCOUNT_USAGE,
    SUPPRESSIONS,
    DISPATCHERS,
    INBOUND,
    INBOUND_SYNC,
    DOMAIN_LIMITS,
    DOMAIN_USAGE,
    USERS,
    API_TOKENS,
    SESSIONS,
    LOGIN_ATTEMPTS,
    AUDIT,
    REPORT_RUNS,
    JOBS,
    JOB_EXECUTIONS,
)
