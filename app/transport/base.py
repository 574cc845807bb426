"""What every sender shares: the Sender protocol and what a send returns.

The rest of the transport's common ground lives in modules of its own and is re-exported here, so callers
import it from one place: the outgoing message and its header checks (outgoing_message.py), the message as
built for the wire (mime.py), and the classified send errors the worker acts on (send_errors.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.domain.accounts import EmailAccount
from app.transport.mime import build_message as build_message
from app.transport.outgoing_message import RESERVED_HEADERS as RESERVED_HEADERS
from app.transport.outgoing_message import InvalidHeader as InvalidHeader
from app.transport.outgoing_message import OutgoingMessage as OutgoingMessage
from app.transport.outgoing_message import ValidatedMessage as ValidatedMessage
from app.transport.outgoing_message import make_message_id as make_message_id
from app.transport.outgoing_message import validate_message as validate_message
from app.transport.outgoing_message import validated as validated
from app.transport.outgoing_message import wire_address as wire_address
from app.transport.send_errors import ACCOUNT_STAGES as ACCOUNT_STAGES
from app.transport.send_errors import AUTH_REPLY_CODES as AUTH_REPLY_CODES
from app.transport.send_errors import STAGES as STAGES
from app.transport.send_errors import AccountAuthError as AccountAuthError
from app.transport.send_errors import AccountConfigError as AccountConfigError
from app.transport.send_errors import PermanentSendError as PermanentSendError
from app.transport.send_errors import SendError as SendError
from app.transport.send_errors import TransientSendError as TransientSendError
from app.transport.send_errors import UnsupportedAddressError as UnsupportedAddressError
from app.transport.send_errors import classify_smtp_reply as classify_smtp_reply


@dataclass(frozen=True)
class SendResult:
    """The server accepted the message: its final reply and when."""

    message_id: str
    code: int
    reply: str
    accepted_at: datetime


class Sender(Protocol):
    """Anything that can hand a message to a mail server for an account (SMTP, dry run)."""

    async def send(self, account: EmailAccount, message: OutgoingMessage | ValidatedMessage) -> SendResult:
        """Send `message` through `account` (checked first unless already validated); raise a SendError
        subclass on failure, InvalidHeader before any I/O when the message is unsafe."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
