"""A send's links numbered once, its parts with a slot per token, and the MIME encoding of those parts."""

from __future__ import annotations

import binascii
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.content.merge import Prepared, Slot, prepare
from pipeline.delivery.mime import Base64Part
from pipeline.engagement.links import TOKENS, TokenSlot, bare, numbering, tracked
from pipeline.engagement.tokens import TrackingTokens

BASE = "https://clinic.example/email"
CODEC = TrackingTokens("a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3")
HTML = prepare(
    '<html><body style="margin:0"><p>Hi *|first_name|*,</p>'
    '<a href="https://clinic.example/?utm_source=n&amp;utm_medium=email">home</a>'
    '<a href="https://clinic.example/book">book</a><a href="mailto:desk@clinic.example">write</a>'
    '<a href="https://clinic.example/p?who=*|email|*">personal</a><a href="https://clinic.example/book">again</a>'
    '<a href="*|unsubscribe_url|*">Unsubscribe</a><a href="https://clinic.example/email/preferences/x">prefs</a>'
    "</body></html>")
TEXT = prepare("Hi *|first_name|*,\nBook: https://clinic.example/book.\nHome https://clinic.example/new\n"
               "Yours https://clinic.example/p?who=*|email|*\nUnsubscribe: *|unsubscribe_url|*\n")


def test_links_are_numbered_once_per_address_html_first_and_personal_or_own_links_are_left_alone() -> None:
    assert numbering(HTML, TEXT, BASE) == ("https://clinic.example/?utm_source=n&utm_medium=email",
                                           "https://clinic.example/book", "https://clinic.example/new")


def test_tracked_parts_have_a_slot_per_link_and_the_pixel_just_inside_body() -> None:
    html, text = tracked(HTML, TEXT, BASE, CODEC.code, opens=True, clicks=True)
    html_slots = [p for p in html.parts if isinstance(p, TokenSlot)]
    assert [s.number for s in html_slots] == [0, 1, 2, 2]
    assert html.parts[0] == '<html><body style="margin:0">'
    assert [s.number for s in text.parts if isinstance(s, TokenSlot)] == [2, 3]
    head = CODEC.message(5, 9, int(time.time()))
    values = {"first_name": "Ana", "email": "ana@example.com", "unsubscribe_url": "https://u", TOKENS: head}
    filled = html.fill(values, html=True)
    assert f'<img src="{BASE}/o/{CODEC.token(head, 0)}" width="1" height="1" alt=""' in filled
    assert f'href="{BASE}/c/{CODEC.token(head, 1)}">home' in filled
    assert filled.count(f'href="{BASE}/c/{CODEC.token(head, 2)}"') == 2
    for kept in ('href="mailto:desk@clinic.example"', 'href="https://clinic.example/p?who=ana@example.com"',
                 'href="https://u"', 'href="https://clinic.example/email/preferences/x"'):
        assert kept in filled
    text_filled = text.fill(values, html=False)
    assert f"Book: {BASE}/c/{CODEC.token(head, 2)}.\n" in text_filled
    assert "Yours https://clinic.example/p?who=ana@example.com" in text_filled
    # Without tokens (a preview, a test send), a tracked part is the original.
    assert html.fill({"first_name": "Ana", "email": "e", "unsubscribe_url": "u"}, html=True).endswith(
        HTML.fill({"first_name": "Ana", "email": "e", "unsubscribe_url": "u"}, html=True)[len('<html><body style="margin:0">'):])


def test_only_clicks_or_only_opens() -> None:
    html, text = tracked(HTML, TEXT, BASE, CODEC.code, opens=False, clicks=True)
    assert 0 not in [p.number for p in html.parts if isinstance(p, TokenSlot)]
    html, text = tracked(HTML, TEXT, BASE, CODEC.code, opens=True, clicks=False)
    assert [p.number for p in html.parts if isinstance(p, TokenSlot)] == [0]
    assert text == TEXT


def test_bare_drops_only_utm_parameters() -> None:
    assert bare("https://c.example/b?x=1&utm_source=n&UTM_medium=e") == "https://c.example/b?x=1"
    assert bare("https://c.example/b?utm_campaign=x") == "https://c.example/b"


def _reference(body: bytes) -> bytes:
    return b"".join(binascii.b2a_base64(body[i:i + 57], newline=False) + b"\r\n" for i in range(0, len(body), 57))


pieces = st.lists(st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=150),
    st.sampled_from(["%", "%s", "%(c)s", "%%"]),
    st.builds(lambda n: Slot("name", ""), st.just(0)),
    st.builds(lambda n: TokenSlot("", "", n, f"{BASE}/c/", CODEC.code(n), "plain"), st.integers(0, 20)),
), max_size=30)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=120)


@settings(max_examples=300, deadline=None)
@given(pieces, st.lists(names, min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_the_encoder_gives_exactly_the_base64_of_the_whole_body(parts: list[object], people: list[str],
                                                                 subscriber: int) -> None:
    prepared = Prepared(tuple(p for p in parts if p != ""))  # type: ignore[misc]
    encoder = Base64Part(prepared, True, {})
    for name in people * 2:  # the second time round, every run comes from the cache
        head = CODEC.message(1, subscriber, int(time.time()))
        values = {"name": name, TOKENS: head}
        expected = _reference(prepared.fill(values, html=True).encode("utf-8"))
        assert b"".join(encoder.encode(values, head)) == expected
