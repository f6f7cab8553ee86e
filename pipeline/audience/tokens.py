"""Signed tokens for unsubscribe and preferences links, made with itsdangerous.

A token names a subscriber by id and is bound to their address by a keyed hash, so it can
only ever reach the reader it was made for: once that reader is erased, no one else (not even
a later subscriber) answers to it. Tokens carry no time, so a reader's link is the same in every
copy of a campaign: the preview shows the bytes a reader gets, and old newsletters keep working.

The secret comes from the environment (CAMPAIGN_SECRET); without it, a random secret is made
once and kept in the workspace's .campaign-secret file (readable by its owner only). A secret
too short or too plain to resist guessing is refused.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, Signer, TimestampSigner

from pipeline.errors import ConfigError, InvalidToken

SECRET_FILE = ".campaign-secret"
MIN_SECRET_LENGTH = 32
MIN_SECRET_SYMBOLS = 16
LEGACY_MAX_AGE_DAYS = 400  # tokens made before they were bound to an address: the old limit
_SALT = "subscriber-link"  # the old, timestamped tokens
_BOUND_SALT = "subscriber-link.bound"


def check_secret(secret: str, source: str) -> str:
    """The secret, or a ConfigError when it is too weak to sign with: anyone who guesses it can
    unsubscribe every reader and forge Message-IDs."""
    if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < MIN_SECRET_SYMBOLS:
        raise ConfigError(f"the secret is too weak: use at least {MIN_SECRET_LENGTH} random characters, "
                          "for example the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
                          where=source)
    return secret


def create_secret(workspace_root: Path) -> Path:
    """Write a new random secret to workspace_root/.campaign-secret unless one is there already.

    Written whole to a private file, then linked into place: of two processes starting at once,
    one links and the other finds the file complete, so both sign with one secret.
    """
    path = workspace_root / SECRET_FILE
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
    return path


def load_secret(workspace_root: Path) -> str:
    env = os.environ.get("CAMPAIGN_SECRET")
    if env is not None:
        return check_secret(env.strip(), "CAMPAIGN_SECRET")
    path = workspace_root / SECRET_FILE
    if not path.exists():
        create_secret(workspace_root)
    return check_secret(path.read_text(encoding="utf-8").strip(), str(path))


@dataclass(frozen=True)
class LinkData:
    subscriber_id: int
    campaign: str | None
    binding: str | None = None  # the keyed hash of the reader's address; None in an old token


def signed(key: bytes, payload: str) -> str:
    """`payload` signed as itsdangerous's Signer signs it with this key and no key derivation
    (HMAC-SHA1, the signature in unpadded URL-safe base64 after a "."), so the Signer reads it.
    Made here in one call into OpenSSL: the Signer builds its HMAC in Python, which costs more
    than the rest of a message's links, and every message sent carries two signatures."""
    data = payload.encode("ascii")
    signature = base64.urlsafe_b64encode(hmac.digest(key, data, "sha1")).rstrip(b"=")
    return (data + b"." + signature).decode("ascii")


class Tokens:
    """"<subscriber id>.<address binding>.<campaign>.<signature>": itsdangerous's signature over a
    short plain payload (no JSON or compression: tokens are made once per message sent)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret  # also keys Message-IDs (delivery.message_ids)
        # Keys are derived once here rather than at every signature (one per message sent).
        self._key = Signer(secret, salt=_BOUND_SALT).derive_key()
        self._signer = Signer(self._key, salt=_BOUND_SALT, key_derivation="none")
        legacy = TimestampSigner(secret, salt=_SALT).derive_key()
        self._legacy = TimestampSigner(legacy, salt=_SALT, key_derivation="none")
        # A message's links all name its reader: the last address's binding is kept for the next.
        self._last: tuple[str, str] = ("", "")

    @classmethod
    def of_workspace(cls, workspace_root: Path) -> Tokens:
        """The workspace's signer: its secret from CAMPAIGN_SECRET or .campaign-secret."""
        return cls(load_secret(workspace_root))

    def binding(self, email: str) -> str:
        last = self._last  # one read: sending threads share these tokens
        if last[0] == email and email:
            return last[1]
        digest = hmac.digest(self._key, email.strip().lower().encode("utf-8"), "sha256")
        binding = base64.urlsafe_b64encode(digest[:9]).decode("ascii")  # 72 bits, "." never among them
        self._last = (email, binding)
        return binding

    def make(self, subscriber_id: int, email: str, campaign: str | None = None) -> str:
        return signed(self._key, f"{subscriber_id}.{self.binding(email)}.{campaign or ''}")

    def read(self, token: str) -> LinkData:
        """What a token names; InvalidToken for anything not signed by this workspace."""
        try:
            subscriber, binding, campaign = self._signer.unsign(token).decode("ascii").split(".", 2)
        except (BadSignature, UnicodeDecodeError, ValueError):
            return self._read_legacy(token)
        if not subscriber.isdigit():
            raise InvalidToken("this link is not valid")
        return LinkData(int(subscriber), campaign or None, binding)

    def _read_legacy(self, token: str) -> LinkData:
        try:
            payload = self._legacy.unsign(token, max_age=LEGACY_MAX_AGE_DAYS * 86400).decode("ascii")
        except SignatureExpired:
            raise InvalidToken("this link has expired") from None
        except (BadSignature, UnicodeDecodeError):
            raise InvalidToken("this link is not valid") from None
        subscriber, _, campaign = payload.partition(".")
        if not subscriber.isdigit():
            raise InvalidToken("this link is not valid")
        return LinkData(int(subscriber), campaign or None)

    def belongs(self, link: LinkData, email: str) -> bool:
        """Whether the reader with this address is the one the token was made for. Tokens made
        before the binding existed name an id alone: ids are never given twice."""
        return link.binding is None or hmac.compare_digest(link.binding, self.binding(email))
