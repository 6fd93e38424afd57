"""Page blocks: paragraphs, headings, lists, captions, equations, tables (figures live in figures.py).

Each renderer draws on a white RGB canvas as wide as its column and returns a `Block`, or None when it cannot fit
in `max_height`. A block's parts (a table and its caption, say) get boxes computed from the pixels they actually
inked, so every box is tight around drawn content. Category ids follow PubLayNet; captions are text there, and
running headers, page numbers and display equations carry no label (category 0 = not annotated).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from edgekd.tasks.layout.fonts import FontFamily, WordBank, line_of_words, stamp, text_stamp, word_bank

UNLABELED, TEXT, TITLE, LIST, TABLE, FIGURE = 0, 1, 2, 3, 4, 5
CATEGORY_NAMES = {TEXT: "text", TITLE: "title", LIST: "list", TABLE: "table", FIGURE: "figure"}
WHITE = (255, 255, 255)
TABLE_RULES = ("booktabs", "grid", "header", "shaded")
BULLETS = ("•", "–", "number", "letter")


@dataclass(frozen=True)
class Style:
    """What stays the same across one page: typeface, sizes (pixels), ink and conventions."""

    family: FontFamily
    scale: float  # page width / 256: sizes below are already multiplied by it
    line_height: int
    body_size: int
    heading_size: int
    title_size: int
    small_size: int  # captions, tables, running heads
    ink: tuple[int, int, int]
    indent: int
    title_centered: bool
    heading_numbered: bool
    table_rules: str
    bullet: str

    def px(self, base: float) -> int:
        """A length given for a 256-px-wide page, at this page's scale (at least 1)."""
        return max(1, round(base * self.scale))


@dataclass
class Block:
    """A rendered block: its canvas and the (tight xyxy, category) of each part, in canvas pixels."""

    image: Image.Image
    parts: list[tuple[tuple[int, int, int, int], int]] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.image.height


def ink_box(canvas: Image.Image) -> tuple[int, int, int, int] | None:
    """The tight box (x0, y0, x1, y1; ends exclusive) of everything not pure white, or None for a blank canvas."""
    return ImageOps.invert(canvas.convert("L")).getbbox()


def stack(parts: list[tuple[Image.Image, int]], gap: int, width: int, align: str = "left") -> Block | None:
    """Stack part canvases vertically (`gap` px apart) into one block; blank parts are dropped."""
    boxes = [ink_box(canvas) for canvas, _ in parts]
    kept = [(canvas, category, box) for (canvas, category), box in zip(parts, boxes) if box is not None]
    if not kept:
        return None
    height = sum(canvas.height for canvas, _, _ in kept) + gap * (len(kept) - 1)
    block = Block(Image.new("RGB", (width, height), WHITE))
    y = 0
    for canvas, category, (x0, y0, x1, y1) in kept:
        x = (width - canvas.width) // 2 if align == "center" else 0
        block.image.paste(canvas, (x, y))
        block.parts.append(((x + x0, y + y0, x + x1, y + y1), category))
        y += canvas.height + gap
    return block


def _lines_that_fit(max_height: int, line_height: int, stamp_height: int) -> int:
    return max(0, (max_height - stamp_height) // line_height + 1) if max_height >= stamp_height else 0


def _draw_lines(canvas: Image.Image, rng: np.random.Generator, bank: WordBank, lines: list[tuple[int, int]],
                line_height: int, ink: tuple[int, int, int], numbers: bool = False, top: int = 0) -> None:
    """Fill line i (at y = top + i * line_height) with words from x = lines[i][0] to at most lines[i][1]."""
    for row, (x0, x1) in enumerate(lines):
        for x, word in line_of_words(rng, bank, max(1, x1 - x0), numbers):
            stamp(canvas, word, (x0 + x, top + row * line_height), ink)


def _paragraph_lines(rng: np.random.Generator, width: int, count: int, indent: int) -> list[tuple[int, int]]:
    lines = [(0, width) for _ in range(count)]
    lines[0] = (indent, width)
    if count > 1 or rng.random() < 0.5:  # the last line of a paragraph stops short
        x0 = lines[-1][0]
        lines[-1] = (x0, x0 + max(8, int((width - x0) * rng.uniform(0.2, 0.95))))
    return lines


def paragraph(rng: np.random.Generator, style: Style, width: int, max_height: int,
              lines: tuple[int, int] = (2, 8)) -> Block | None:
    """A text block of lines[0]..lines[1] lines (fewer if the space is short)."""
    bank = word_bank(style.family.regular, style.body_size)
    count = min(int(rng.integers(lines[0], lines[1] + 1)), _lines_that_fit(max_height, style.line_height, bank.height))
    if count < 1:
        return None
    canvas = Image.new("RGB", (width, (count - 1) * style.line_height + bank.height), WHITE)
    indent = style.indent if rng.random() < 0.7 else 0
    _draw_lines(canvas, rng, bank, _paragraph_lines(rng, width, count, indent), style.line_height, style.ink)
    return stack([(canvas, TEXT)], 0, width)


def _short_line(rng: np.random.Generator, bank: WordBank, width: int, fraction: float) -> tuple[list, int]:
    """Words filling `fraction` of `width`, and how far they reach (for centring or right alignment)."""
    placed = line_of_words(rng, bank, max(1, int(width * fraction)))
    extent = placed[-1][0] + placed[-1][1].width
    return placed, extent


def doc_title(rng: np.random.Generator, style: Style, width: int, max_height: int) -> Block | None:
    """The document title: 1–2 large bold lines, centered or flush left."""
    bank = word_bank(style.family.bold, style.title_size)
    line_height = round(bank.height * 1.1)
    count = min(int(rng.integers(1, 3)), _lines_that_fit(max_height, line_height, bank.height))
    if count < 1:
        return None
    canvas = Image.new("RGB", (width, (count - 1) * line_height + bank.height), WHITE)
    for row in range(count):
        placed, extent = _short_line(rng, bank, width, rng.uniform(0.5, 1.0) if row == 0 else rng.uniform(0.3, 0.8))
        x0 = (width - extent) // 2 if style.title_centered else 0
        for x, word in placed:
            stamp(canvas, word, (x0 + x, row * line_height), style.ink)
    return stack([(canvas, TITLE)], 0, width)


def heading(rng: np.random.Generator, style: Style, width: int, max_height: int) -> Block | None:
    """A section heading (PubLayNet's 'title'): one bold line, often numbered."""
    bank = word_bank(style.family.bold, style.heading_size)
    if max_height < bank.height:
        return None
    canvas = Image.new("RGB", (width, bank.height), WHITE)
    x0 = 0
    if style.heading_numbered:
        number = text_stamp(style.family.bold, style.heading_size, _section_number(rng))
        stamp(canvas, number, (0, 0), style.ink)
        x0 = number.width + 2 * bank.space
    for x, word in line_of_words(rng, bank, max(1, int((width - x0) * rng.uniform(0.25, 0.8)))):
        stamp(canvas, word, (x0 + x, 0), style.ink)
    return stack([(canvas, TITLE)], 0, width)


def _section_number(rng: np.random.Generator) -> str:
    major = int(rng.integers(1, 9))
    return f"{major}." if rng.random() < 0.5 else f"{major}.{int(rng.integers(1, 6))}"


def _bullet_text(style: Style, item: int) -> str:
    if style.bullet == "number":
        return f"{item + 1}."
    if style.bullet == "letter":
        return f"({'abcdefgh'[item % 8]})"
    return style.bullet


def bullet_list(rng: np.random.Generator, style: Style, width: int, max_height: int) -> Block | None:
    """A list: 2–6 items, each a bullet (or number) and 1–3 lines with a hanging indent."""
    bank = word_bank(style.family.regular, style.body_size)
    lh = style.line_height
    room = _lines_that_fit(max_height, lh, bank.height)
    sizes = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(2, 7)))]
    while sizes and sum(sizes) > room:
        sizes.pop()
    if len(sizes) < 2:
        return None
    canvas = Image.new("RGB", (width, (sum(sizes) - 1) * lh + bank.height), WHITE)
    margin = int(rng.integers(0, style.indent + 1))
    hang = margin + text_stamp(style.family.regular, style.body_size, "(m)").width + bank.space
    row = 0
    for item, size in enumerate(sizes):
        mark = text_stamp(style.family.regular, style.body_size, _bullet_text(style, item))
        stamp(canvas, mark, (margin, row * lh), style.ink)
        lines = [(hang + a, hang + b) for a, b in _paragraph_lines(rng, width - hang, size, 0)]
        _draw_lines(canvas, rng, bank, lines, lh, style.ink, top=row * lh)
        row += size
    return stack([(canvas, LIST)], 0, width)


def caption(rng: np.random.Generator, style: Style, width: int, label: str, max_lines: int = 3) -> Image.Image:
    """'Figure 3.' / 'Table 2.' in bold, then 1–3 lines of small text (a PubLayNet 'text' part)."""
    bank = word_bank(style.family.regular, style.small_size)
    lh = round(bank.height * 1.05)
    count = int(rng.integers(1, max_lines + 1))
    canvas = Image.new("RGB", (width, (count - 1) * lh + bank.height), WHITE)
    head = text_stamp(style.family.bold, style.small_size, f"{label} {int(rng.integers(1, 10))}.")
    stamp(canvas, head, (0, 0), style.ink)
    lines = _paragraph_lines(rng, width, count, min(width - 1, head.width + bank.space))
    _draw_lines(canvas, rng, bank, lines, lh, style.ink)
    return canvas


def equation(rng: np.random.Generator, style: Style, width: int, max_height: int) -> Block | None:
    """A centred display formula with its number at the right margin (not annotated, as in PubLayNet)."""
    bank = word_bank(style.family.regular, style.body_size)
    if max_height < bank.height:
        return None
    canvas = Image.new("RGB", (width, bank.height), WHITE)
    formula = text_stamp(style.family.regular, style.body_size, _formula(rng))
    number = text_stamp(style.family.regular, style.body_size, f"({int(rng.integers(1, 30))})")
    if formula.width + number.width + 4 * bank.space > width:
        return None
    stamp(canvas, formula, ((width - formula.width) // 2, 0), style.ink)
    stamp(canvas, number, (width - number.width, 0), style.ink)
    return stack([(canvas, UNLABELED)], 0, width)


def _formula(rng: np.random.Generator) -> str:
    symbols = "xyzabkntαβλσ"
    count = int(rng.integers(2, 5))
    terms = [f"{rng.choice(list(symbols))}{rng.choice(['', '²', '_i', '(t)'])}" for _ in range(count)]
    operators = [str(rng.choice(["+", "−", "·", "/"])) for _ in range(len(terms) - 1)]
    body = terms[0] + "".join(f" {op} {term}" for op, term in zip(operators, terms[1:]))
    return f"{rng.choice(list('fgLEP'))}({rng.choice(list(symbols))}) = {rng.choice(['', 'Σ ', '∫ '])}{body}"


def running_line(rng: np.random.Generator, style: Style, width: int, page_number: bool) -> Block | None:
    """A running header (small words, flush left or right) or a page number (centred): not annotated."""
    bank = word_bank(style.family.regular, style.small_size)
    canvas = Image.new("RGB", (width, bank.height), WHITE)
    if page_number:
        mark = text_stamp(style.family.regular, style.small_size, str(int(rng.integers(1, 400))))
        stamp(canvas, mark, ((width - mark.width) // 2, 0), style.ink)
    else:
        placed, extent = _short_line(rng, bank, width, rng.uniform(0.3, 0.7))
        x0 = 0 if rng.random() < 0.5 else width - extent
        for x, word in placed:
            stamp(canvas, word, (x0 + x, 0), style.ink)
    return stack([(canvas, UNLABELED)], 0, width)


def table(rng: np.random.Generator, style: Style, width: int, max_height: int) -> Block | None:
    """A ruled table (3–12 rows, 2–6 columns) with its caption above (or, sometimes, none)."""
    regular, bold = word_bank(style.family.regular, style.small_size), word_bank(style.family.bold, style.small_size)
    with_caption = rng.random() < 0.8
    cap = caption(rng, style, width, "Table", max_lines=2) if with_caption else None
    gap = style.px(3)
    room = max_height - (cap.height + gap if cap is not None else 0)
    row_height = regular.height + style.px(2)
    rows = min(int(rng.integers(3, 13)), room // row_height - 1)
    if rows < 2:
        return None
    grid = _table_canvas(rng, style, width, rows + 1, row_height, regular, bold)
    if grid is None:
        return None
    parts = ([(cap, TEXT)] if cap is not None else []) + [(grid, TABLE)]
    return stack(parts, gap, width, align="center")


def _table_columns(rng: np.random.Generator, width: int, bank: WordBank, pad: int) -> list[int]:
    first = int(rng.integers(30, 60)) * width // 200
    columns = [first]
    for _ in range(int(rng.integers(1, 6))):
        column = max(s.width for s in bank.numbers[:8]) + 2 * pad + int(rng.integers(0, 8))
        if sum(columns) + column > width:
            break
        columns.append(column)
    return columns


def _table_canvas(rng: np.random.Generator, style: Style, width: int, rows: int, row_height: int,
                  regular: WordBank, bold: WordBank) -> Image.Image | None:
    pad = style.px(2)
    columns = _table_columns(rng, width, regular, pad)
    if len(columns) < 2:
        return None
    table_width = sum(columns)
    canvas = Image.new("RGB", (table_width, rows * row_height + 1), WHITE)
    draw = ImageDraw.Draw(canvas)
    if style.table_rules == "shaded":
        for row in range(1, rows, 2):
            draw.rectangle((0, row * row_height, table_width - 1, (row + 1) * row_height - 1), fill=(232, 232, 232))
    lefts = np.concatenate([[0], np.cumsum(columns)[:-1]])
    for row in range(rows):
        for col, (x, w) in enumerate(zip(lefts, columns)):
            bank = bold if row == 0 else regular
            placed = line_of_words(rng, bank, max(1, w - 2 * pad), numbers=row > 0 and col > 0)
            for dx, word in placed[: 1 if col > 0 else 2]:
                stamp(canvas, word, (int(x) + pad + dx, row * row_height + pad // 2), style.ink)
    _table_rules(draw, style, lefts, table_width, rows, row_height)
    return canvas


def _table_rules(draw: ImageDraw.ImageDraw, style: Style, lefts: np.ndarray, width: int, rows: int,
                 row_height: int) -> None:
    bottom = rows * row_height
    heavy = style.px(1.2)
    if style.table_rules == "grid":
        for row in range(rows + 1):
            draw.line((0, row * row_height, width, row * row_height), fill=style.ink, width=1)
        for x in list(lefts) + [width - 1]:
            draw.line((int(x), 0, int(x), bottom), fill=style.ink, width=1)
        return
    draw.line((0, 0, width, 0), fill=style.ink, width=heavy)
    draw.line((0, row_height, width, row_height), fill=style.ink, width=1)
    draw.line((0, bottom, width, bottom), fill=style.ink, width=heavy)
