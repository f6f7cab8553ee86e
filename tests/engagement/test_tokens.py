"""Tracking tokens: one per message and link, readable only with the secret, refused when altered."""

from __future__ import annotations

import base64
import time

import pytest

from pipeline.engagement.tokens import LENGTH, TrackingTokens

SECRET = "a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3"


@pytest.fixture(scope="module")
def codec() -> TrackingTokens:
    return TrackingTokens(SECRET)


def test_each_link_of_a_message_has_its_own_token_and_reads_back(codec: TrackingTokens) -> None:
    sent = int(time.time())
    head = codec.message(7, 123456, sent)
    tokens = [codec.token(head, n) for n in range(12)]
    assert len(set(tokens)) == 12 and all(len(t) == LENGTH for t in tokens)
    for number, token in enumerate(tokens):
        reading = codec.read(token)
        assert reading is not None
        assert (reading.send_id, reading.subscriber_id, int(reading.sent_at.timestamp()), reading.link) == \
               (7, 123456, sent, number)
    other = codec.message(7, 123457, sent)
    assert codec.token(other, 1) != tokens[1]  # another reader: another token for the same link


def test_nothing_about_the_reader_can_be_read_from_a_token(codec: TrackingTokens) -> None:
    token = codec.token(codec.message(3, 424242, int(time.time())), 1)
    raw = base64.urlsafe_b64decode(token)
    assert (424242).to_bytes(4, "big") not in raw and (3).to_bytes(4, "big") not in raw
    assert "424242" not in token


def test_every_altered_character_truncation_and_foreign_secret_is_refused(codec: TrackingTokens) -> None:
    token = codec.token(codec.message(3, 42, int(time.time())), 2)
    for index in range(LENGTH):
        for char in "AQgw09-_z":
            if char != token[index]:
                assert codec.read(token[:index] + char + token[index + 1:]) is None, (index, char)
    for cut in (0, 1, 27, 28, 35):
        assert codec.read(token[:cut]) is None
    assert codec.read(token + "A") is None
    assert codec.read("%" * LENGTH) is None and codec.read("é" * LENGTH) is None
    assert TrackingTokens("another-secret: 9a8b7c6d5e4f3g2h1i0j").read(token) is None
