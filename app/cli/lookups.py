"""Lookups the inspection and repair commands share: a campaign by id, its documents, ids in every stored form.

They are the shared operations' own (`app/ops/campaign_views.py`), so the CLI, the API and the dashboard find a
campaign and its documents the same way.
"""

from __future__ import annotations

from app.ops.campaign_views import any_of as any_of
from app.ops.campaign_views import campaign_ref as campaign_ref
from app.ops.campaign_views import load_campaign as load_campaign
