"""Which sending accounts can render a campaign's templates: the account-provided variables they lack. Pure.

A template that reads `{{ sender_name }}` cannot be rendered by an account with no sender name anywhere (its
`email_general_settings` or the account itself): the send pipeline then gives the recipient to another account
(compose's `account` error). These functions say so ahead of time, for the operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from app.domain.models import Campaign, EmailAccount, GeneralSettings, Template
from app.domain.templating import RESERVED_VARIABLES, sender_variables

# The variables a template gets from the sending account, not from the lead or the campaign (as compose sees them).
ACCOUNT_VARIABLES = frozenset(v for v in RESERVED_VARIABLES if v.startswith("sender_") or v == "account_signature")

# The Renderer's settings: strict and sandboxed, HTML autoescaped.
_TEXT_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
# A name read only through these is safe when undefined, even under StrictUndefined.
_DEFAULT_FILTERS = frozenset({"default", "d"})
_DEFINED_TESTS = frozenset({"defined", "undefined"})
# Other places (besides email_general_settings.<variable>) that provide a variable, per _sender_context.
_ALSO_FROM = {
    "sender_name": " (or sender_name on the account itself)",
    "sender_first_name": " (or a sender_name)",
    "sender_last_name": " (or a sender_name of two words or more)",
}


@dataclass(frozen=True)
class Ineligible:
    """One account that cannot render a campaign's templates, and the account variables it lacks."""

    account: EmailAccount
    missing: tuple[str, ...]


def _guarded(ast: nodes.Template) -> set[int]:
    """The Name nodes (by id) read directly through a `default` filter or an `is defined` test."""
    guarded: set[int] = set()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        names = _DEFINED_TESTS if isinstance(node, nodes.Test) else _DEFAULT_FILTERS
        if node.name in names and isinstance(node.node, nodes.Name):
            guarded.add(id(node.node))
    return guarded


def _required(env: SandboxedEnvironment, source: str) -> set[str]:
    try:
        ast = env.parse(source)
    except TemplateSyntaxError:
        return set()  # the template's own error (the campaign pauses), not the account's
    undeclared = meta.find_undeclared_variables(ast)
    guarded = _guarded(ast)
    return {
        name.name
        for name in ast.find_all(nodes.Name)
        if name.ctx == "load" and name.name in undeclared and id(name) not in guarded
    }


def account_variables_used(templates: Iterable[Template]) -> frozenset[str]:
    """The account-provided variables these templates read without a fallback (subject, text and HTML bodies).

    Found with Jinja2's `meta.find_undeclared_variables` on each parsed source. A variable read only as
    `{{ x | default(...) }}` (or `| d(...)`) or tested with `is defined` is not needed; one read that way in one
    place and bare in another is. A part that does not parse is skipped: that error is the template's.
    """
    used: set[str] = set()
    for template in templates:
        used |= _required(_TEXT_ENV, template.subject) | _required(_TEXT_ENV, template.body_text)
        if template.body_html is not None:
            used |= _required(_HTML_ENV, template.body_html)
    return frozenset(used & ACCOUNT_VARIABLES)


def unsupplied(needed: Set[str], account: EmailAccount, general: GeneralSettings | None) -> tuple[str, ...]:
    """Of the account variables `needed`, those this account cannot supply, sorted (empty: it is eligible)."""
    return tuple(sorted(needed - sender_variables(account, general)))


def missing_account_variables(
    templates: Iterable[Template], account: EmailAccount, general: GeneralSettings | None
) -> tuple[str, ...]:
    """The account-provided variables the templates read that this account cannot supply (empty: eligible).

    `general` is the account's `email_general_settings` (None when it has none). Whether a value is supplied is
    decided by the templating context itself (sender_name from the general settings, else the account, else the
    general first and last names; account_signature and sender_email are always there).
    """
    return unsupplied(account_variables_used(templates), account, general)


def ineligible_accounts(
    templates: Iterable[Template], accounts: Iterable[EmailAccount], general: Mapping[str, GeneralSettings]
) -> list[Ineligible]:
    """The accounts (in their order) that cannot render the templates; `general` maps account id to its settings."""
    needed = account_variables_used(templates)
    found = ((account, unsupplied(needed, account, general.get(account.id))) for account in accounts)
    return [Ineligible(account, missing) for account, missing in found if missing]


def may_send(campaign: Campaign, account: EmailAccount) -> bool:
    """Whether the campaign may send from this account: it is listed in settings.account_ids, or, with no list,
    it is active."""
    if campaign.settings.account_ids:
        return account.id in campaign.settings.account_ids
    return account.status == "active"


def fix_hint(variable: str, account_email: str) -> str:
    """Where to set a missing variable, e.g. "set sender_name in email_general_settings for account a@b.example"."""
    return f"set {variable} in email_general_settings for account {account_email}{_ALSO_FROM.get(variable, '')}"
