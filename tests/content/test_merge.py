from __future__ import annotations

from pipeline.content.merge import PerPart, Slot, prepare, tag


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


def test_a_value_per_part_reads_its_own_way_in_html_and_text() -> None:
    prepared = prepare("Why you get this.*|notice|*\nLeave: *|unsubscribe_url|*")
    notice = PerPart("We count <opens>.", "\nWe count <opens>.")
    values = {"notice": notice, "unsubscribe_url": "https://u"}
    assert prepared.fill(values, html=True) == "Why you get this.We count &lt;opens&gt;.\nLeave: https://u"
    assert prepared.fill(values, html=False) == "Why you get this.\nWe count <opens>.\nLeave: https://u"


def test_a_settled_field_becomes_literal_text_and_the_other_tags_stay() -> None:
    prepared = prepare("a *|notice|* b *|first_name|* c *|notice|*")
    notice = PerPart("<x>", "\n<x>")
    html = prepared.settled("notice", notice, html=True)
    assert html.parts == ("a &lt;x&gt; b ", Slot("first_name", ""), " c &lt;x&gt;")
    assert prepared.settled("notice", notice, html=False).parts == ("a \n<x> b ", Slot("first_name", ""), " c \n<x>")
    assert prepared.settled("notice", "", html=True).parts == ("a  b ", Slot("first_name", ""), " c ")
    assert html.fill({"first_name": "Ana", "notice": "ignored"}, html=True) == "a &lt;x&gt; b Ana c &lt;x&gt;"
