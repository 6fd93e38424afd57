"""Fonts found on disk and pre-rendered word stamps, so a page's text costs a paste per word, not a FreeType call.

Fonts come from matplotlib's bundled TrueType folder (always there: DejaVu, STIX) and, when present,
/usr/share/fonts (Liberation, ...). Nothing is downloaded. A family counts when it has a regular and a bold face.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SYSTEM_FONT_DIR = Path("/usr/share/fonts")
_REGULAR_STYLES = ("Book", "Regular")
# Symbol, display and monospace faces do not look like body text (or lack Latin glyphs).
_SKIP_FAMILY_WORDS = ("Math", "NonUnicode", "Size", "Last Resort", "Display", "Mono", "cm")
_WORDS_PER_BANK = 160
_NUMBERS_PER_BANK = 40
# English letter frequencies (percent), so pseudo-words have a text-like mix of x-height, ascenders and descenders.
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_FREQ = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0,
                         2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1])
_LETTER_P = _LETTER_FREQ / _LETTER_FREQ.sum()
_WORD_LENGTHS = np.arange(1, 12)
_WORD_LENGTH_P = np.array([3, 17, 21, 16, 12, 10, 8, 6, 4, 2, 1], float) / 100


@dataclass(frozen=True)
class FontFamily:
    """One typeface: the regular and the bold face's file paths."""

    name: str
    regular: str
    bold: str


def _font_files() -> list[Path]:
    import matplotlib  # a declared dependency; only its bundled font folder is used

    bundled = sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf"))
    system = sorted(SYSTEM_FONT_DIR.rglob("*.ttf")) if SYSTEM_FONT_DIR.is_dir() else []
    return bundled + system


@functools.lru_cache(maxsize=1)
def font_families() -> tuple[FontFamily, ...]:
    """Every family on disk with a regular and a bold face, sorted by name (matplotlib's copy wins duplicates)."""
    faces: dict[str, dict[str, str]] = {}
    for path in _font_files():
        try:
            family, style = ImageFont.truetype(str(path), 10).getname()
        except OSError:
            continue  # an unreadable or non-TrueType file
        if family and not any(word in family for word in _SKIP_FAMILY_WORDS):
            faces.setdefault(family, {}).setdefault(style or "", str(path))
    families = []
    for family, styles in sorted(faces.items()):
        regular = next((styles[s] for s in _REGULAR_STYLES if s in styles), None)
        if regular and "Bold" in styles:
            families.append(FontFamily(family, regular, styles["Bold"]))
    if not families:
        raise RuntimeError("no usable TrueType font found (matplotlib's bundled DejaVu fonts are missing)")
    return tuple(families)


@functools.lru_cache(maxsize=256)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: no shaping library needed, and the same glyph positions on every machine.
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


@functools.lru_cache(maxsize=4096)
def text_stamp(path: str, size: int, text: str) -> Image.Image:
    """`text` rendered once as an 'L' ink mask (255 = ink), top at the font's ascent line, width = advance."""
    font = load_font(path, size)
    ascent, descent = font.getmetrics()
    # The advance width, or the ink's right edge when a glyph overhangs it (italics, 'f'), so nothing is clipped.
    width = max(1, int(np.ceil(font.getlength(text))), font.getbbox(text)[2])
    stamp = Image.new("L", (width, ascent + descent), 0)
    ImageDraw.Draw(stamp).text((0, 0), text, font=font, fill=255)
    return stamp


@dataclass(frozen=True)
class WordBank:
    """Pre-rendered pseudo-words and numbers of one font face and size."""

    words: tuple[Image.Image, ...]
    numbers: tuple[Image.Image, ...]
    space: int
    height: int  # ascent + descent: the stamp height
    ascent: int


def pseudo_word(rng: np.random.Generator) -> str:
    """A word-like string: English letter mix, sometimes capitalised or ending in punctuation."""
    length = int(rng.choice(_WORD_LENGTHS, p=_WORD_LENGTH_P))
    word = "".join(rng.choice(list(_LETTERS), size=length, p=_LETTER_P))
    roll = rng.random()
    if roll < 0.12:
        word = word.capitalize()
    elif roll < 0.2:
        word += "," if roll < 0.16 else "."
    return word


def pseudo_number(rng: np.random.Generator) -> str:
    style = int(rng.integers(4))
    value = rng.uniform(0, 100)
    return (f"{value:.1f}", f"{value / 100:.2f}", f"{int(value)}", f"{value:.2f}")[style]


@functools.lru_cache(maxsize=128)
def word_bank(path: str, size: int) -> WordBank:
    """The bank of (path, size); its words depend only on those two, so pages are reproducible."""
    rng = np.random.default_rng([size, sum(map(ord, os.path.basename(path)))])
    words = tuple(text_stamp(path, size, pseudo_word(rng)) for _ in range(_WORDS_PER_BANK))
    numbers = tuple(text_stamp(path, size, pseudo_number(rng)) for _ in range(_NUMBERS_PER_BANK))
    font = load_font(path, size)
    ascent, descent = font.getmetrics()
    return WordBank(words, numbers, max(1, round(font.getlength(" "))), ascent + descent, ascent)


def stamp(canvas: Image.Image, mask: Image.Image, xy: tuple[int, int], color: tuple[int, int, int]) -> None:
    """Ink `mask` onto `canvas` at `xy` in `color` (anti-aliased edges blend; overlapping ink stays)."""
    canvas.paste(color, (xy[0], xy[1], xy[0] + mask.width, xy[1] + mask.height), mask)


def line_of_words(rng: np.random.Generator, bank: WordBank, width: int,
                  numbers: bool = False) -> list[tuple[int, Image.Image]]:
    """(x, stamp) pairs of whole words filling at most `width` pixels; at least one word, cropped if it must be."""
    pool = bank.numbers if numbers else bank.words
    picks = rng.integers(0, len(pool), size=max(4, width // 12))
    stamps = [pool[i] for i in picks]
    starts = np.concatenate([[0], np.cumsum([s.width + bank.space for s in stamps])[:-1]])
    ends = starts + np.array([s.width for s in stamps])
    count = max(1, int(np.searchsorted(ends, width, side="right")))
    placed = [(int(x), s) for x, s in zip(starts[:count], stamps[:count])]
    if placed[0][1].width > width:  # a single word wider than the column: keep its left part
        placed[0] = (0, placed[0][1].crop((0, 0, width, bank.height)))
    return placed
