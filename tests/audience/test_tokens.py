from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from itsdangerous import Signer, TimestampSigner

from pipeline.audience.tokens import SECRET_FILE, LinkData, Tokens, load_secret, signed
from pipeline.errors import ConfigError, InvalidToken

SECRET = "a-long-secret, 0123456789 abcdefXYZ"


class _SignedAt(TimestampSigner):
    """Signs as if it were `moment`, to make old tokens without waiting."""

    def __init__(self, secret: str, moment: int) -> None:
        super().__init__(secret, salt="subscriber-link")
        self.moment = moment

    def get_timestamp(self) -> int:
        return self.moment


def test_tokens_are_itsdangerous_signatures_bound_to_the_address() -> None:
    tokens = Tokens(SECRET)
    token = tokens.make(42, "Ana@Example.com", "back-pain")
    payload = Signer(SECRET, salt="subscriber-link.bound").unsign(token).decode()
    subscriber, binding, campaign = payload.split(".")
    assert (subscriber, campaign) == ("42", "back-pain")
    assert binding == tokens.binding("ana@example.com") and len(binding) == 12
    assert "ana" not in token.lower()  # the address is not readable from the link
    # No time inside: every copy of a campaign carries the same link for the same reader.
    assert tokens.make(42, "ana@example.com", "back-pain") == token
    assert tokens.make(42, "ben@example.com", "back-pain") != token


def test_signed_makes_the_bytes_itsdangerous_makes() -> None:
    key = Signer(SECRET, salt="view-link").derive_key()
    signer = Signer(key, salt="view-link", key_derivation="none")
    for payload in ("1.abc.def", "", "9" * 300, "42.Ab-_9xYz.0123456789ab.back-pain"):
        assert signed(key, payload) == signer.sign(payload).decode("ascii")
        assert signer.unsign(signed(key, payload)).decode("ascii") == payload


def test_the_kept_binding_is_only_ever_the_last_address() -> None:
    tokens, fresh = Tokens(SECRET), Tokens(SECRET)
    for email in ("ana@example.com", "ana@example.com", "ben@example.com", "ana@example.com", "Ana@Example.com"):
        assert tokens.binding(email) == Tokens(SECRET).binding(email)
    assert tokens.binding("ben@example.com") != fresh.binding("ana@example.com")


def test_round_trip_belonging_and_rejections() -> None:
    tokens = Tokens(SECRET)
    link = tokens.read(tokens.make(42, "ana@example.com", "back-pain"))
    assert (link.subscriber_id, link.campaign) == (42, "back-pain")
    assert tokens.belongs(link, "ANA@example.com")
    assert not tokens.belongs(link, "someone.new@example.com")  # the id given to someone else
    assert tokens.read(tokens.make(9, "ana@example.com")).campaign is None
    token = tokens.make(42, "ana@example.com", "back-pain")
    for bad in (token.replace("42.", "43.", 1), "not a token", "", token + "x"):
        with pytest.raises(InvalidToken, match="^this link is not valid$"):
            tokens.read(bad)
    with pytest.raises(InvalidToken, match="^this link is not valid$"):
        Tokens("another-secret, 0123456789 abcdefXYZ").read(token)


def test_links_in_mail_sent_before_tokens_were_bound_keep_working_for_their_time() -> None:
    tokens = Tokens(SECRET)
    older = _SignedAt(SECRET, int(time.time()) - 3600).sign("7.back-pain").decode()
    assert tokens.read(older) == LinkData(7, "back-pain", None)
    assert tokens.belongs(tokens.read(older), "whoever@example.com")
    stale = _SignedAt(SECRET, int(time.time()) - 401 * 86400).sign("42.x").decode()
    with pytest.raises(InvalidToken, match="^this link has expired$"):
        tokens.read(stale)


def test_secret_is_made_once_and_kept_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPAIGN_SECRET", raising=False)
    first = load_secret(tmp_path)
    assert len(first) >= 40
    assert load_secret(tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / SECRET_FILE).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]
    monkeypatch.setenv("CAMPAIGN_SECRET", "from the environment: 0123456789abcdef")
    assert load_secret(tmp_path) == "from the environment: 0123456789abcdef"


@pytest.mark.parametrize("weak", ["", "   ", "x", "hunter2hunter2hunter2hunter2hunter2", "a" * 64])
def test_weak_secrets_are_refused_from_the_environment_and_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    weak: str) -> None:
    monkeypatch.setenv("CAMPAIGN_SECRET", weak)
    with pytest.raises(ConfigError) as caught:
        load_secret(tmp_path)
    assert str(caught.value).startswith("CAMPAIGN_SECRET: the secret is too weak: use at least 32 random characters")
    monkeypatch.delenv("CAMPAIGN_SECRET")
    (tmp_path / SECRET_FILE).write_text(weak + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_secret(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / SECRET_FILE}: the secret is too weak")
