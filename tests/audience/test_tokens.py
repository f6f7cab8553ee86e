from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner

from pipeline.audience.tokens import SECRET_FILE, LinkData, Tokens, load_secret
from pipeline.errors import InvalidToken


class _SignedAt(TimestampSigner):
    """Signs as if it were `moment`, to make old tokens without waiting."""

    def __init__(self, secret: str, moment: int) -> None:
        super().__init__(secret, salt="subscriber-link")
        self.moment = moment

    def get_timestamp(self) -> int:
        return self.moment


def test_tokens_are_itsdangerous_timestamp_signatures() -> None:
    # Links in mail already sent must keep working whatever the signer's internals become.
    token = Tokens("a-long-secret").make(42, "back-pain")
    assert TimestampSigner("a-long-secret", salt="subscriber-link").unsign(token) == b"42.back-pain"
    older = _SignedAt("a-long-secret", int(time.time()) - 3600).sign("7.").decode()
    assert Tokens("a-long-secret").read(older) == LinkData(7, None)


def test_round_trip_and_rejections() -> None:
    tokens = Tokens("a-long-secret")
    assert tokens.read(tokens.make(42, "back-pain")) == LinkData(42, "back-pain")
    assert tokens.read(tokens.make(9)) == LinkData(9, None)
    token = tokens.make(42, "back-pain")
    with pytest.raises(InvalidToken, match="^this link is not valid$"):
        tokens.read(token.replace("42.", "43.", 1))
    with pytest.raises(InvalidToken, match="^this link is not valid$"):
        Tokens("another-secret").read(token)
    with pytest.raises(InvalidToken, match="^this link is not valid$"):
        tokens.read("not a token")
    stale = _SignedAt("a-long-secret", int(time.time()) - 401 * 86400).sign("42.x").decode()
    with pytest.raises(InvalidToken, match="^this link has expired$"):
        tokens.read(stale)


def test_secret_is_made_once_and_kept_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPAIGN_SECRET", raising=False)
    first = load_secret(tmp_path)
    assert len(first) >= 40
    assert load_secret(tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / SECRET_FILE).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]
    monkeypatch.setenv("CAMPAIGN_SECRET", "from-the-environment")
    assert load_secret(tmp_path) == "from-the-environment"
