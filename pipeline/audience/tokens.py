"""Signed tokens for unsubscribe and preferences links, made with itsdangerous.

The secret comes from the environment (CAMPAIGN_SECRET); without it, a random secret is made
once and kept in the workspace's .campaign-secret file (readable by its owner only), so links
in mail already sent keep working.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from pipeline.errors import InvalidToken

SECRET_FILE = ".campaign-secret"
MAX_AGE_DAYS = 400  # links in old newsletters keep working for more than a year
_SALT = "subscriber-link"


def load_secret(workspace_root: Path) -> str:
    env = os.environ.get("CAMPAIGN_SECRET")
    if env:
        return env
    path = workspace_root / SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    # Written whole to a private file, then linked into place: of two processes starting at
    # once, one links and the other finds the file complete, so both sign with one secret.
    fd, scratch = tempfile.mkstemp(prefix=f".{SECRET_FILE}.", dir=workspace_root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(scratch, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(scratch)
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class LinkData:
    subscriber_id: int
    campaign: str | None


class Tokens:
    """"<subscriber id>.<campaign>.<time>.<signature>": itsdangerous's timestamp signer over a
    short plain payload (no JSON or compression: tokens are made once per message sent)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret  # also keys Message-IDs (delivery.message_ids)
        # The key is derived once here rather than at every signature (one per message sent);
        # tokens stay exactly those of TimestampSigner(secret, salt=_SALT).
        key = TimestampSigner(secret, salt=_SALT).derive_key()
        self._signer = TimestampSigner(key, salt=_SALT, key_derivation="none")

    @classmethod
    def of_workspace(cls, workspace_root: Path) -> Tokens:
        """The workspace's signer: its secret from CAMPAIGN_SECRET or .campaign-secret."""
        return cls(load_secret(workspace_root))

    def make(self, subscriber_id: int, campaign: str | None = None) -> str:
        return self._signer.sign(f"{subscriber_id}.{campaign or ''}").decode("ascii")

    def read(self, token: str) -> LinkData:
        try:
            payload = self._signer.unsign(token, max_age=MAX_AGE_DAYS * 86400).decode("ascii")
        except SignatureExpired:
            raise InvalidToken("this link has expired") from None
        except (BadSignature, UnicodeDecodeError):
            raise InvalidToken("this link is not valid") from None
        subscriber, _, campaign = payload.partition(".")
        if not subscriber.isdigit():
            raise InvalidToken("this link is not valid")
        return LinkData(int(subscriber), campaign or None)
