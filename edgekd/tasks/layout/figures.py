"""Figure blocks: line / scatter / bar plots, photo-like gradients, heat maps, box-and-arrow diagrams, panels.

Drawn with Pillow primitives on a white canvas; the figure's box is computed from the pixels drawn (blocks.stack).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from edgekd.tasks.layout.blocks import FIGURE, TEXT, WHITE, Block, Style, caption, stack
from edgekd.tasks.layout.fonts import line_of_words, stamp, text_stamp, word_bank

Box = tuple[int, int, int, int]
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (23, 190, 207), (40, 40, 40))


def figure(rng: np.random.Generator, style: Style, width: int, max_height: int) -> Block | None:
    """A figure (55–100% of the column wide) with, usually, a caption below it."""
    cap = caption(rng, style, width, "Figure") if rng.random() < 0.85 else None
    gap = style.px(3)
    room = max_height - (cap.height + gap if cap is not None else 0)
    fig_width = int(width * rng.uniform(0.55, 1.0))
    fig_height = min(int(fig_width * rng.uniform(0.45, 0.85)), room)
    if fig_height < style.px(24):
        return None
    canvas = Image.new("RGB", (fig_width, fig_height), WHITE)
    draw_figure(rng, canvas, style)
    parts = [(canvas, FIGURE)] + ([(cap, TEXT)] if cap is not None else [])
    return stack(parts, gap, width, align="center")


def draw_figure(rng: np.random.Generator, canvas: Image.Image, style: Style) -> None:
    kinds: list[Callable[[np.random.Generator, Image.Image, Box, Style], None]] = [
        _plot, _plot, _photo, _heatmap, _diagram, _panels]
    kinds[int(rng.integers(len(kinds)))](rng, canvas, (0, 0, canvas.width, canvas.height), style)


def _colors(rng: np.random.Generator, count: int) -> list[tuple[int, int, int]]:
    return [PALETTE[i] for i in rng.permutation(len(PALETTE))[:count]]


def _plot(rng: np.random.Generator, canvas: Image.Image, box: Box, style: Style) -> None:
    """Axes with ticks and numeric tick labels, then lines, scatter points or bars."""
    x0, y0, x1, y1 = box
    draw = ImageDraw.Draw(canvas)
    label = text_stamp(style.family.regular, style.small_size, "0.5")
    left, bottom = x0 + label.width + style.px(3), y1 - label.height - style.px(2)
    top, right = y0 + style.px(2), x1 - style.px(2)
    if right - left < 8 or bottom - top < 8:
        return _photo(rng, canvas, box, style)
    draw.line((left, top, left, bottom, right, bottom), fill=style.ink, width=1)
    if rng.random() < 0.4:
        draw.line((left, top, right, top, right, bottom), fill=style.ink, width=1)
    _ticks(rng, canvas, draw, style, (left, top, right, bottom))
    inner = (left + 2, top + 2, right - 2, bottom - 2)
    [_lines, _scatter, _bars][int(rng.integers(3))](rng, draw, inner, style)


def _ticks(rng: np.random.Generator, canvas: Image.Image, draw: ImageDraw.ImageDraw, style: Style, axes: Box) -> None:
    left, top, right, bottom = axes
    bank = word_bank(style.family.regular, style.small_size)
    tick = style.px(2)
    for i, x in enumerate(np.linspace(left, right, int(rng.integers(3, 6)))):
        draw.line((int(x), bottom, int(x), bottom + tick), fill=style.ink)
        if i % 2 == 0:
            number = bank.numbers[int(rng.integers(len(bank.numbers)))]
            stamp(canvas, number, (min(int(x) - number.width // 2, right - number.width), bottom + tick), style.ink)
    for y in np.linspace(bottom, top, int(rng.integers(3, 5))):
        draw.line((left - tick, int(y), left, int(y)), fill=style.ink)
        number = text_stamp(style.family.regular, style.small_size, f"{rng.uniform(0, 1):.1f}")
        stamp(canvas, number, (max(0, left - tick - number.width - 1), int(y) - number.height // 2), style.ink)


def _lines(rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: Box, style: Style) -> None:
    x0, y0, x1, y1 = box
    xs = np.linspace(x0, x1, max(4, (x1 - x0) // 4))
    for color in _colors(rng, int(rng.integers(1, 4))):
        walk = np.cumsum(rng.normal(0, 1, len(xs))) + rng.uniform(-3, 3) * np.sin(np.linspace(0, 6, len(xs)))
        span = np.ptp(walk) or 1.0
        ys = y1 - (walk - walk.min()) / span * (y1 - y0) * rng.uniform(0.5, 1.0)
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=color, width=style.px(1))


def _scatter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: Box, style: Style) -> None:
    x0, y0, x1, y1 = box
    radius = style.px(1.2)
    for color in _colors(rng, int(rng.integers(1, 4))):
        centre = rng.uniform([x0, y0], [x1, y1])
        points = rng.normal(centre, [(x1 - x0) / 6, (y1 - y0) / 6], size=(int(rng.integers(10, 40)), 2))
        for x, y in np.clip(points, [x0 + radius, y0 + radius], [x1 - radius, y1 - radius]):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)


def _bars(rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: Box, style: Style) -> None:
    x0, y0, x1, y1 = box
    count = int(rng.integers(3, 10))
    slot = (x1 - x0) / count
    colors = _colors(rng, 2)
    for i in range(count):
        height = rng.uniform(0.1, 1.0) * (y1 - y0)
        left = x0 + i * slot + slot * 0.15
        color = colors[i % 2] if rng.random() < 0.3 else colors[0]
        draw.rectangle((int(left), int(y1 - height), int(left + slot * 0.7), y1), fill=color)


def _photo(rng: np.random.Generator, canvas: Image.Image, box: Box, style: Style) -> None:
    """A smooth random image (a micrograph, a photograph): a coarse random grid upsampled bicubically."""
    x0, y0, x1, y1 = box
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    coarse = rng.uniform(0, 255, size=(int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
    if rng.random() < 0.5:
        coarse[...] = coarse.mean(axis=2, keepdims=True)  # a grey-scale photo
    image = Image.fromarray(coarse.astype(np.uint8)).resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC)
    canvas.paste(image, (x0, y0))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform([x0, y0], [x1, y1])
        r = rng.uniform(2, max(3, (x1 - x0) / 5))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))


def _heatmap(rng: np.random.Generator, canvas: Image.Image, box: Box, style: Style) -> None:
    x0, y0, x1, y1 = box
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    values = rng.random((int(rng.integers(4, 12)), int(rng.integers(4, 12))))
    low, high = (np.array(c, float) for c in _colors(rng, 2))
    cells = (low + values[..., None] * (high - low)).astype(np.uint8)
    canvas.paste(Image.fromarray(cells).resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST), (x0, y0))


def _diagram(rng: np.random.Generator, canvas: Image.Image, box: Box, style: Style) -> None:
    """Boxes with a word inside, joined left to right by arrows (a pipeline figure)."""
    x0, y0, x1, y1 = box
    draw = ImageDraw.Draw(canvas)
    count = int(rng.integers(2, 5))
    slot = (x1 - x0) / count
    bank = word_bank(style.family.regular, style.small_size)
    mid = (y0 + y1) // 2
    half = max(bank.height, int((y1 - y0) * rng.uniform(0.2, 0.45)))
    fill = _colors(rng, 1)[0] if rng.random() < 0.5 else WHITE
    for i in range(count):
        left, right = int(x0 + i * slot + slot * 0.1), int(x0 + (i + 1) * slot - slot * 0.1)
        draw.rectangle((left, max(y0, mid - half), right, min(y1 - 1, mid + half)), outline=style.ink, fill=fill)
        for x, word in line_of_words(rng, bank, max(1, right - left - 4))[:1]:
            stamp(canvas, word, (left + 2 + x, mid - bank.height // 2), style.ink)
        if i + 1 < count:
            tip = int(x0 + (i + 1) * slot + slot * 0.1)
            draw.line((right, mid, tip, mid), fill=style.ink, width=1)
            draw.polygon([(tip, mid), (tip - 3, mid - 2), (tip - 3, mid + 2)], fill=style.ink)


def _panels(rng: np.random.Generator, canvas: Image.Image, box: Box, style: Style) -> None:
    """Two sub-figures side by side, each labelled (a), (b)."""
    x0, y0, x1, y1 = box
    half = (x1 - x0) // 2
    for i, kind in enumerate(rng.choice(3, size=2)):
        sub = (x0 + i * half + 1, y0, x0 + (i + 1) * half - 1, y1)
        label = text_stamp(style.family.regular, style.small_size, f"({'ab'[i]})")
        stamp(canvas, label, (sub[0], sub[1]), style.ink)
        inner = (sub[0], sub[1] + label.height, sub[2], sub[3])
        [_plot, _photo, _heatmap][int(kind)](rng, canvas, inner, style)
