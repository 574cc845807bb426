"""Who paused a campaign (`campaigns.paused_by`), as stored and as people read it."""

from __future__ import annotations

# How each kind of actor reads in "paused by ...": the audit's kinds, and the dispatcher's automatic pauses.
ACTOR_KINDS = {"cli": "command line", "token": "API token", "user": "dashboard", "dispatcher": "automatic"}


def pauser(kind: str, name: str) -> dict[str, str]:
    """The `paused_by` of a campaign paused by this actor (an audit `Actor`'s kind and name)."""
    return {"kind": kind, "name": name}


def paused_by_label(value: object) -> str | None:
    """`paused_by` as people read it: "alice (command line)", "dispatcher (automatic)"; None when not recorded."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    kind = value.get("kind")
    return f"{value['name']} ({ACTOR_KINDS.get(str(kind), str(kind))})"
