from __future__ import annotations

import colorsys
import random

import pytest

from pipeline.content.colours import (
    BODY,
    DARK_HIGHLIGHT,
    LARGE,
    Scheme,
    contrast,
    luminance,
    meet,
    palette,
    rgb,
)
from pipeline.settings.workspace import Brand


def brand(**colours: str) -> Brand:
    return Brand("Clinic", "1 Main Street", "https://clinic.example", **colours)  # type: ignore[arg-type]


# Text colour, background, and the ratio each text colour must reach on it.
PAIRS = [
    ("text", "card", BODY), ("text", "code", BODY), ("heading", "card", LARGE), ("link", "card", BODY),
    ("brand", "page", LARGE), ("muted", "card", BODY), ("footer", "page", BODY), ("accent", "card", BODY),
    ("cta_text", "cta", BODY), ("button_text", "button", LARGE), ("outline_text", "outline", LARGE),
]


def shortfalls(scheme: Scheme) -> list[str]:
    return [f"{fg} {getattr(scheme, fg)} on {bg} {getattr(scheme, bg)}: {contrast(getattr(scheme, fg), getattr(scheme, bg)):.2f}"
            for fg, bg, ratio in PAIRS if contrast(getattr(scheme, fg), getattr(scheme, bg)) < ratio]


@pytest.mark.parametrize(("colour", "expected"), [("#000000", 0.0), ("#ffffff", 1.0), ("#fff", 1.0),
                                                  ("#808080", 0.2158605), ("#ff0000", 0.2126)])
def test_relative_luminance(colour: str, expected: float) -> None:
    assert luminance(colour) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("#000000", "#ffffff", 21.0), ("#ffffff", "#000000", 21.0), ("#777777", "#ffffff", 4.48),
    ("#767676", "#ffffff", 4.54), ("#6b7280", "#f4f1ea", 4.29), ("#123456", "#123456", 1.0),
])
def test_contrast_ratio(a: str, b: str, expected: float) -> None:
    assert contrast(a, b) == pytest.approx(expected, abs=0.005)


def test_colours_are_parsed_strictly() -> None:
    assert rgb("#1F6F5C") == (31, 111, 92) and rgb("#abc") == (170, 187, 204)
    with pytest.raises(ValueError, match="is not a colour"):
        rgb("teal")


def test_a_colour_that_passes_is_left_as_it_is() -> None:
    assert meet("#1f6f5c", "#ffffff", BODY) == "#1f6f5c"
    assert meet("#1F6F5C", "#ffffff", BODY) == "#1f6f5c"  # written the way the email writes colours


def test_a_failing_colour_moves_as_little_as_needed_and_keeps_its_hue() -> None:
    moved = meet("#6b7280", "#f4f1ea", BODY)
    assert contrast(moved, "#f4f1ea") >= BODY
    assert contrast(moved, "#f4f1ea") < BODY + 0.1  # no darker than it has to be
    assert luminance(moved) < luminance("#6b7280")  # darker, on a light ground
    hue = colorsys.rgb_to_hls(*(c / 255 for c in rgb("#6b7280")))[0]
    assert colorsys.rgb_to_hls(*(c / 255 for c in rgb(moved)))[0] == pytest.approx(hue, abs=0.02)


def test_on_a_dark_ground_a_colour_is_lightened() -> None:
    moved = meet("#1f6f5c", "#181f25", BODY)
    assert luminance(moved) > luminance("#1f6f5c") and contrast(moved, "#181f25") >= BODY


def test_mid_grey_goes_whichever_way_is_shorter() -> None:
    # On #777777 both black and white reach 3:1: a lighter grey lightens, a darker one darkens.
    assert luminance(meet("#999999", "#777777", LARGE)) > luminance("#999999")
    assert luminance(meet("#555555", "#777777", LARGE)) < luminance("#555555")


def test_against_several_grounds_at_once() -> None:
    moved = meet("#999999", ("#ffffff", "#f3f4f6"), BODY)
    assert min(contrast(moved, "#ffffff"), contrast(moved, "#f3f4f6")) >= BODY


def test_when_no_colour_can_reach_the_ratio_the_best_extreme_is_given() -> None:
    assert meet("#888888", ("#000000", "#ffffff"), BODY) in ("#000000", "#ffffff")


def test_the_default_brand_is_used_as_configured() -> None:
    colours = palette(brand())
    light = colours.light
    assert (light.text, light.heading, light.link, light.brand) == ("#22313f", "#1f6f5c", "#1f6f5c", "#1f6f5c")
    assert (light.page, light.cta, light.rule) == ("#f4f1ea", "#1f6f5c", "#c8553d")
    # Only the accent is a shade too light for small text (read-more links): 4.35:1.
    assert [(a.setting, a.role, round(a.before, 2)) for a in colours.adjustments] == [
        ("accent_color", "read-more links", 4.35)]
    # Our own grey was 4.29:1 on the cream footer; it is darkened just enough.
    assert light.footer != "#6b7280" and 4.5 <= contrast(light.footer, light.page) < 4.6
    assert light.muted == "#6b7280"  # 4.83:1 on white already


def test_the_dark_scheme_is_dark_and_readable() -> None:
    dark = palette(brand()).dark
    assert shortfalls(dark) == []
    assert all(luminance(getattr(dark, ground)) < 0.1 for ground in ("page", "card", "code", "cta", "outline"))
    assert contrast(dark.heading, dark.card) >= DARK_HIGHLIGHT


def test_an_adjustment_says_what_and_by_how_much() -> None:
    (adjustment,) = palette(brand(text_color="#aaaaaa", accent_color="#b5452f")).adjustments
    assert adjustment.setting == "text_color" and adjustment.configured == "#aaaaaa"
    assert adjustment.before < BODY <= adjustment.after
    assert str(adjustment).startswith("text_color #aaaaaa as body text on the white article background")
    assert f"the email uses {adjustment.used} ({adjustment.after:.2f}:1) instead" in str(adjustment)


def test_any_palette_meets_aa_in_both_modes_and_only_failing_colours_change() -> None:
    rng = random.Random(20261201)
    for _ in range(300):
        picked = {key: f"#{rng.randrange(0x1000000):06x}"
                  for key in ("primary_color", "accent_color", "background_color", "text_color")}
        colours = palette(brand(**picked))
        assert shortfalls(colours.light) == [], picked
        assert shortfalls(colours.dark) == [], picked
        changed = {a.setting for a in colours.adjustments}
        if "text_color" not in changed:
            assert colours.light.text == picked["text_color"]
        if "primary_color" not in changed:
            assert colours.light.heading == colours.light.link == colours.light.brand == picked["primary_color"]
        assert colours.light.page == picked["background_color"]  # a background is never changed
