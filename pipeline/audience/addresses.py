"""E-mail addresses: validated and normalised with email-validator, without DNS look-ups.

email-validator costs about 25 µs an address, too slow for a million-row import, and nearly
all of that is the domain. So each domain is validated once, and a plain ASCII local part
(the dot-atom every mailbox provider uses) is checked here with the same rules; anything
unusual (quoted, non-ASCII, odd lengths) still goes through email-validator whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
MAX_LOCAL = 64
MAX_ADDRESS = 254


class InvalidEmail(ValueError):
    """Why an address was refused, in email-validator's words."""


@lru_cache(maxsize=65536)
def _domain(domain: str) -> str:
    """The normalised domain, validated once per distinct spelling."""
    try:
        return validate_email(f"postmaster@{domain}", check_deliverability=False).domain
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None


def normalize_email(raw: str) -> str:
    """The address as it should be stored, or InvalidEmail with the reason."""
    address = raw.strip()
    local, at, domain = address.rpartition("@")
    if at and local.isascii() and _DOT_ATOM.match(local) and len(local) <= MAX_LOCAL:
        normalized = f"{local}@{_domain(domain)}"
        if len(normalized) <= MAX_ADDRESS:
            return normalized
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None


# An address's key: addresses are unique regardless of case. The method itself, not a function
# around it, as an import calls it for every row.
email_key: Callable[[str], str] = str.lower


def email_hash(address: str) -> str:
    """What an erased address leaves behind: enough to refuse it, not to read it."""
    return hashlib.sha256(email_key(address).encode("utf-8")).hexdigest()
