"""Typed, validated views of seed 001's documents (and ours), under the name the rest of the code imports.

Each concept lives in its own module: document_reader.py (reading fields, InvalidDocument), addresses.py
(address syntax), campaigns.py (campaigns, leads, sequence steps), template_docs.py (templates) and accounts.py
(sending accounts and their settings). This module re-exports them all.
"""

from __future__ import annotations

from app.domain.accounts import ACCOUNT_STATUSES as ACCOUNT_STATUSES
from app.domain.accounts import SMTP_SECURITY as SMTP_SECURITY
from app.domain.accounts import AccountCampaignSettings as AccountCampaignSettings
from app.domain.accounts import EmailAccount as EmailAccount
from app.domain.accounts import GeneralSettings as GeneralSettings
from app.domain.addresses import InvalidAddress as InvalidAddress
from app.domain.addresses import has_line_break as has_line_break
from app.domain.addresses import normalize_email as normalize_email
from app.domain.campaigns import CAMPAIGN_STATUSES as CAMPAIGN_STATUSES
from app.domain.campaigns import RECIPIENT_STATUSES as RECIPIENT_STATUSES
from app.domain.campaigns import Campaign as Campaign
from app.domain.campaigns import CampaignSettings as CampaignSettings
from app.domain.campaigns import Lead as Lead
from app.domain.campaigns import LeadProgress as LeadProgress
from app.domain.campaigns import Recipient as Recipient
from app.domain.campaigns import SequenceStep as SequenceStep
from app.domain.campaigns import recipient_key as recipient_key
from app.domain.document_reader import InvalidDocument as InvalidDocument
from app.domain.document_reader import id_str as id_str
from app.domain.template_docs import Template as Template
from app.domain.template_docs import split_subject_line as split_subject_line
