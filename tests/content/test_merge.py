from __future__ import annotations

from pipeline.content.merge import Slot, prepare, tag


def test_tags_with_fallbacks_and_mailchimp_aliases() -> None:
    prepared = prepare("Hi *|FNAME|*, *|first_name:friend|*! <a href=\"*|UNSUB|*\">x</a> *|city|*")
    assert prepared.parts == ("Hi ", Slot("first_name", ""), ", ", Slot("first_name", "friend"), "! <a href=\"",
                              Slot("unsubscribe_url", ""), "\">x</a> ", Slot("city", ""))
    assert prepared.fields == {"first_name", "unsubscribe_url", "city"}


def test_fill_escapes_for_html_but_not_text() -> None:
    prepared = prepare("Hi *|first_name:there|* from *|city|*")
    values = {"first_name": 'Eve"><script>', "city": "A&B"}
    assert prepared.fill(values, html=True) == "Hi Eve&quot;&gt;&lt;script&gt; from A&amp;B"
    assert prepared.fill(values, html=False) == 'Hi Eve"><script> from A&B'


def test_empty_values_fall_back_to_the_tag_then_the_default() -> None:
    assert prepare("*|first_name:there|*").fill({"first_name": ""}, html=True) == "there"
    assert prepare("*|first_name|*").fill({}, html=True, defaults={"first_name": "R&D"}) == "R&amp;D"
    assert prepare("*|first_name|*").fill({}, html=False, defaults={"first_name": "R&D"}) == "R&D"
    assert prepare("[*|missing|*]").fill({}, html=True) == "[]"


def test_tag_keeps_fallbacks_parseable() -> None:
    assert tag("first_name", "friend|*") == "*|first_name:friend/|*"
    assert prepare(tag("first_name", "a|b")).parts == (Slot("first_name", "a/b"),)
    assert tag("email") == "*|email|*"
