"""Passwords out of messages: the one redaction every error text that may hold a URL passes through.

Transport and database URLs are typed by people, and error messages end up in terminals, cron
mail and logs. Database URLs may carry a password (`postgresql://user:secret@host/db`); transport
URLs must not, but someone will try. A top-level module because both the database and the
delivery side need it, and neither should import the other for it.
"""

from __future__ import annotations

import re

HIDDEN = "***"  # what SQLAlchemy shows for a hidden password, so both read the same

# scheme://user:password@ ... The password runs to the last "@" before whitespace: people type
# passwords unencoded, and one with "@", "/" or "#" in it must still vanish whole. A host, port or
# path that happens to sit between is hidden too, which is the safe way to be wrong.
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@'\"]*):[^\s]*@")


def redact_url(text: str) -> str:
    """`text` with the password of every `scheme://user:password@` URL in it replaced by ***."""
    return _CREDENTIALS.sub(lambda found: f"{found['head']}:{HIDDEN}@", text)
