"""A reply from a shared inbox, composed with the standard library's ``email`` package. Pure.

Threading as mail clients expect it (RFC 5322 section 3.6.4): ``In-Reply-To`` names the message being
answered and ``References`` carries the whole chain (that message's references, then its own id),
folded by the policy; ``Subject`` gets one ``Re: `` however many the thread already carries.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

# "Re:", "RE :", "Re[2]:", "Aw:", "Sv:" ... at the start, any number of times: one "Re: " replaces them.
_REPLY_PREFIX = re.compile(r"^(\s*(re|aw|sv|antw|vs)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
MAX_REFERENCES = 30   # keep the first and the latest: enough for every client to thread


def reply_subject(subject: str) -> str:
    rest = _REPLY_PREFIX.sub("", subject or "").strip()
    return f"Re: {rest}" if rest else "Re:"


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip().lower() or "localhost"


def new_message_id(address: str) -> str:
    return make_msgid(domain=domain_of(address))


def references(parent_refs: list[str], parent_id: str | None) -> list[str]:
    chain = [r for r in parent_refs if r] + ([parent_id] if parent_id else [])
    chain = list(dict.fromkeys(chain))
    if len(chain) > MAX_REFERENCES:  # RFC 5322 allows trimming; the first (the root) and the latest stay
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1):]]
    return chain


def compose(*, from_address: str, from_name: str, to: list[tuple[str, str]], cc: list[str], subject: str,
            message_id: str, in_reply_to: str | None, refs: list[str], text: str, html: str, sent_at: float,
            files: list[tuple[str, str, bytes]]) -> EmailMessage:
    """``to`` as (name, address) pairs; ``files`` as (name, MIME type, bytes)."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(display_name=from_name, addr_spec=from_address)
    msg["To"] = [Address(display_name=name, addr_spec=address) for name, address in to]
    if cc:
        msg["Cc"] = [Address(addr_spec=address) for address in cc]
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(sent_at, UTC))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if refs:
        msg["References"] = " ".join(refs)
    msg.set_content(text or "")
    if html:
        msg.add_alternative(html, subtype="html")
    for name, kind, data in files:
        maintype, _, subtype = kind.partition("/")
        msg.add_attachment(data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=name)
    return msg
