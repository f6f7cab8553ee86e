"""The colours an email is drawn in: WCAG contrast, and a light and a dark palette from [brand].

Every text colour the templates use is checked against the background it sits on, in both
modes: 4.5:1 for body-sized text, 3:1 for large headings and buttons (WCAG 2.x AA). A colour
from campaign.toml is used as written when it passes; only one that fails is made darker or
lighter, keeping its hue, by as little as needed, and the change is recorded so lint can say
so. The dark palette is ours entirely (neutral surfaces, the brand's colours lifted to read on
them), and so is never reported.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass
from functools import lru_cache

from pipeline.settings.workspace import Brand

BODY = 4.5  # normal text (WCAG 1.4.3 AA)
LARGE = 3.0  # 24 px, or 18.66 px bold, and up; and buttons
# In the dark a brand colour lifted only to the minimum reads as dim text rather than as a
# highlight: headings, links and buttons are lifted to AAA's 7:1 instead.
DARK_HIGHLIGHT = 7.0
BLACK, WHITE = "#000000", "#ffffff"
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")

# Our own colours in the light mode; brand colours come from campaign.toml.
CARD = WHITE  # the article's background
MUTED = "#6b7280"  # byline, captions, footer
CODE = "#f3f4f6"  # behind preformatted text
# And in the dark mode, where every colour is ours.
DARK_PAGE = "#111618"
DARK_CARD = "#1c2326"
DARK_CODE = "#273034"
DARK_TEXT = "#e7ecee"
DARK_MUTED = "#a7b0b4"


def rgb(colour: str) -> tuple[int, int, int]:
    """#rgb or #rrggbb as three 0-255 channels."""
    match = _HEX.match(colour.strip())
    if not match:
        raise ValueError(f"{colour!r} is not a colour like #1f6f5c")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def to_hex(channels: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in channels)


def luminance(colour: str) -> float:
    """WCAG relative luminance: 0 for black, 1 for white."""
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours, from 1 (the same) to 21 (black on white)."""
    la, lb = luminance(a), luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def mix(colour: str, other: str, amount: float) -> str:
    """colour moved `amount` (0 to 1) of the way to other, channel by channel."""
    a, b = rgb(colour), rgb(other)
    return to_hex(tuple(x + (y - x) * amount for x, y in zip(a, b)))  # type: ignore[arg-type]


def _passes(colour: str, backgrounds: tuple[str, ...], ratio: float) -> bool:
    return all(contrast(colour, bg) >= ratio for bg in backgrounds)


def _towards(colour: str, end: float, amount: float) -> str:
    """colour with its HLS lightness moved `amount` (0 to 1) of the way to `end` (0 black, 1 white):
    hue and saturation stay, so an adjusted brand colour still looks like the brand's."""
    r, g, b = (c / 255 for c in rgb(colour))
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    channels = colorsys.hls_to_rgb(hue, lightness + (end - lightness) * amount, saturation)
    return to_hex(tuple(c * 255 for c in channels))  # type: ignore[arg-type]


def meet(colour: str, backgrounds: str | tuple[str, ...], ratio: float) -> str:
    """colour itself when it has `ratio` against every background; otherwise the nearest colour of
    the same hue, darker or lighter (whichever moves it less), that has.

    Along either way luminance only falls (or rises), so contrast with a background only grows
    once the colour is past it: the first amount that passes is found by halving.
    """
    backgrounds = (backgrounds,) if isinstance(backgrounds, str) else backgrounds
    colour = to_hex(rgb(colour))
    if _passes(colour, backgrounds, ratio):
        return colour
    found: list[tuple[float, str]] = []
    for end, extreme in ((0.0, BLACK), (1.0, WHITE)):
        if not _passes(extreme, backgrounds, ratio):
            continue
        low, high = 0.0, 1.0
        for _ in range(12):
            middle = (low + high) / 2
            if _passes(_towards(colour, end, middle), backgrounds, ratio):
                high = middle
            else:
                low = middle
        candidate = _towards(colour, end, high)
        while not _passes(candidate, backgrounds, ratio):  # rounding to whole channels
            high = min(1.0, high + 1 / 255)
            candidate = _towards(colour, end, high)
        found.append((high, candidate))
    if found:
        return min(found)[1]
    # No lightness is enough against all of them: the extreme that does best.
    return max((BLACK, WHITE), key=lambda c: min(contrast(c, bg) for bg in backgrounds))


@dataclass(frozen=True)
class Adjustment:
    """A colour from campaign.toml that had to change to be readable where the email uses it."""

    setting: str  # "text_color"
    role: str  # "body text"
    background: str  # "the white article background"
    required: float
    configured: str
    before: float
    used: str
    after: float

    def __str__(self) -> str:
        return (f"{self.setting} {self.configured} as {self.role} on {self.background} is "
                f"{self.before:.2f}:1, below {self.required:g}:1; the email uses {self.used} "
                f"({self.after:.2f}:1) instead")


@dataclass(frozen=True)
class Scheme:
    """One mode's colours, by what they colour; each text colour meets its ratio on its ground."""

    page: str  # the page, header and footer bands
    card: str  # the article's band
    text: str  # body text on the card
    heading: str  # headings and titles on the card (large)
    link: str  # links in body text on the card
    brand: str  # the brand's name in the header, on the page (large)
    muted: str  # byline and captions on the card
    footer: str  # disclaimer, address and footer links on the page
    code: str  # behind preformatted text on the card
    accent: str  # "read more" links on the card
    rule: str  # the quote's border (no text on it)
    cta: str  # the call-to-action band
    cta_text: str  # text on the call-to-action band
    button: str  # the call to action's button, on its band
    button_text: str
    outline: str  # the outlined "read the full article" button, on the card
    outline_text: str  # its text and border


@dataclass(frozen=True)
class Palette:
    light: Scheme
    dark: Scheme
    adjustments: tuple[Adjustment, ...]  # brand colours the light scheme had to change


def palette(brand: Brand) -> Palette:
    """The light and dark schemes for a brand's colours, and what had to change in them."""
    return _palette(brand.primary_color, brand.accent_color, brand.background_color, brand.text_color)


@lru_cache(maxsize=64)
def _palette(primary: str, accent: str, background: str, text: str) -> Palette:
    adjustments: list[Adjustment] = []

    def brand_colour(setting: str, configured: str, role: str, ground: str, ground_name: str,
                     ratio: float, also: tuple[str, ...] = ()) -> str:
        used = meet(configured, (ground, *also), ratio)
        if used != to_hex(rgb(configured)):
            adjustments.append(Adjustment(setting, role, ground_name, ratio, configured,
                                          min(contrast(configured, g) for g in (ground, *also)),
                                          used, min(contrast(used, g) for g in (ground, *also))))
        return used

    page = to_hex(rgb(background))
    card_name, page_name = "the white article background", f"background_color {page}"
    heading = brand_colour("primary_color", primary, "headings", CARD, card_name, LARGE)
    light = Scheme(
        page=page,
        card=CARD,
        text=brand_colour("text_color", text, "body text", CARD, f"{card_name} and the {CODE} behind code",
                          BODY, (CODE,)),
        heading=heading,
        link=brand_colour("primary_color", primary, "links in the text", CARD, card_name, BODY),
        brand=brand_colour("primary_color", primary, "the name in the header", page, page_name, LARGE),
        muted=meet(MUTED, CARD, BODY),
        footer=meet(MUTED, page, BODY),
        code=CODE,
        accent=brand_colour("accent_color", accent, "read-more links", CARD, card_name, BODY),
        rule=to_hex(rgb(accent)),
        cta=to_hex(rgb(primary)),
        # The band is the brand's colour; the text on it is ours, white unless white fails.
        cta_text=meet(WHITE, primary, BODY),
        button=WHITE,
        button_text=heading,
        outline=CARD,
        outline_text=heading,
    )
    return Palette(light, _dark(primary, accent), tuple(adjustments))


def _dark(primary: str, accent: str) -> Scheme:
    """Neutral dark surfaces and light text, the same for every brand; the brand's colours
    lifted until they read on them."""
    page, card = DARK_PAGE, DARK_CARD
    body = meet(DARK_TEXT, (card, DARK_CODE), BODY)
    highlight = meet(primary, (card, page), DARK_HIGHLIGHT)  # headings, links, the name, buttons
    muted = meet(DARK_MUTED, (card, page), BODY)
    cta = meet(mix(primary, page, 0.35), body, BODY)  # the brand's band, deepened
    return Scheme(
        page=page, card=card, text=body, heading=highlight, link=highlight, brand=highlight,
        muted=muted, footer=muted, code=DARK_CODE,
        accent=meet(accent, card, BODY), rule=meet(accent, card, LARGE),
        cta=cta, cta_text=meet(body, cta, BODY),
        button=highlight, button_text=meet(page, highlight, BODY),
        outline=card, outline_text=highlight,
    )
