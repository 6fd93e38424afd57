"""Synthetic document pages (papers.md §6.3) and the COCO-format data set written from them.

A page is drawn by a small block grammar: an optional running header and page number (not annotated), on some pages a
title and an abstract across the full width, then one or two columns filled top to bottom with paragraphs, section
headings, lists, tables, figures and equations; two-column pages sometimes carry a full-width figure or table.
Then the page is "scanned": off-white paper, uneven lighting, a rotation under 1° (boxes follow the rotated
corners), sometimes a slight blur, sensor noise, and JPEG compression when written.

    <out>/images/{train,val}/000000.jpg
    <out>/annotations/{train,val}.json     COCO: images, annotations (bbox [x, y, w, h]), categories
"""

from __future__ import annotations

import io
import math
import multiprocessing
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from edgekd.artifacts import atomic_write_bytes, atomic_write_json
from edgekd.tasks.layout import blocks
from edgekd.tasks.layout.blocks import CATEGORY_NAMES, TABLE_RULES, WHITE, Block, Style
from edgekd.tasks.layout.figures import figure
from edgekd.tasks.layout.fonts import font_families

FORMAT_VERSION = 1
CATEGORIES = [{"id": cid, "name": name, "supercategory": ""} for cid, name in CATEGORY_NAMES.items()]
SPLIT_STREAMS = {"train": 0, "val": 1}  # train and val pages come from different random streams
_CHUNK = 50  # pages per worker task
_OWN_IMAGE = re.compile(r"\d{6}\.jpg")
# Block grammar inside a column: (renderer, weight). Headings are followed by a paragraph (see _fill_column).
_COLUMN_BLOCKS: tuple[tuple[Callable[..., Block | None], float], ...] = (
    (blocks.paragraph, 0.42), (blocks.heading, 0.15), (blocks.bullet_list, 0.1), (blocks.table, 0.11),
    (figure, 0.16), (blocks.equation, 0.04))
_BLOCK_P = np.array([w for _, w in _COLUMN_BLOCKS]) / sum(w for _, w in _COLUMN_BLOCKS)


@dataclass
class Page:
    """A rendered page: RGB image, boxes (n, 4) float32 xyxy in pixels, PubLayNet category ids (n,) int64."""

    image: Image.Image
    boxes: np.ndarray
    labels: np.ndarray
    jpeg_quality: int


def sample_style(rng: np.random.Generator, width: int) -> Style:
    """Typeface, sizes and conventions for one page; sizes scale with the page width (256 px = 1)."""
    scale = width / 256
    families = font_families()
    line_height = max(6, round(rng.uniform(8, 11.5) * scale))
    body = max(5, round(line_height * rng.uniform(0.7, 0.82)))
    return Style(
        family=families[int(rng.integers(len(families)))], scale=scale, line_height=line_height, body_size=body,
        heading_size=round(body * rng.uniform(1.0, 1.35)), title_size=round(body * rng.uniform(1.5, 2.2)),
        small_size=max(5, round(body * rng.uniform(0.8, 0.95))), ink=tuple(int(v) for v in rng.integers(0, 50, 3)),
        indent=round(rng.uniform(0, 10) * scale), title_centered=bool(rng.random() < 0.6),
        heading_numbered=bool(rng.random() < 0.5), table_rules=str(rng.choice(TABLE_RULES)),
        bullet=str(rng.choice(blocks.BULLETS)))


class _Canvas:
    """The page being composed: a white image and the annotated boxes placed on it so far."""

    def __init__(self, height: int, width: int) -> None:
        self.image = Image.new("RGB", (width, height), WHITE)
        self.boxes: list[tuple[float, float, float, float]] = []
        self.labels: list[int] = []

    def put(self, block: Block, x: int, y: int) -> int:
        """Paste `block` with its top-left at (x, y); return the y below it."""
        self.image.paste(block.image, (x, y))
        for (x0, y0, x1, y1), category in block.parts:
            if category:
                self.boxes.append((x + x0, y + y0, x + x1, y + y1))
                self.labels.append(category)
        return y + block.height


def compose(rng: np.random.Generator, style: Style, height: int, width: int) -> _Canvas:
    """Lay out one clean page (before the scan effects)."""
    canvas = _Canvas(height, width)
    left, right = style.px(rng.uniform(12, 26)), width - style.px(rng.uniform(12, 26))
    top, bottom = style.px(rng.uniform(10, 26)), height - style.px(rng.uniform(10, 26))
    gap = style.px(rng.uniform(3, 8))
    top, bottom = _running_lines(rng, style, canvas, left, right, top, bottom)
    if rng.random() < 0.35:
        top = _front_matter(rng, style, canvas, left, right, top, bottom, gap)
    columns = 2 if rng.random() < 0.7 and right - left > style.px(150) else 1
    if columns == 2 and rng.random() < 0.3:
        top, bottom = _full_width_float(rng, style, canvas, left, right, top, bottom, gap)
    column_gap = style.px(rng.uniform(8, 16))
    column_width = (right - left - (columns - 1) * column_gap) // columns
    for col in range(columns):
        _fill_column(rng, style, canvas, left + col * (column_width + column_gap), top, bottom, column_width, gap)
    return canvas


def _running_lines(rng: np.random.Generator, style: Style, canvas: _Canvas, left: int, right: int,
                   top: int, bottom: int) -> tuple[int, int]:
    """An optional running header at the top and page number at the bottom (not annotated)."""
    if rng.random() < 0.5:
        header = blocks.running_line(rng, style, right - left, page_number=False)
        if header is not None:
            top = canvas.put(header, left, top) + style.px(rng.uniform(4, 10))
    if rng.random() < 0.5:
        footer = blocks.running_line(rng, style, right - left, page_number=True)
        if footer is not None:
            canvas.put(footer, left, bottom - footer.height)
            bottom -= footer.height + style.px(rng.uniform(4, 10))
    return top, bottom


def _front_matter(rng: np.random.Generator, style: Style, canvas: _Canvas, left: int, right: int,
                  top: int, bottom: int, gap: int) -> int:
    """A first page: the document title and, often, an inset abstract, across the full width."""
    title = blocks.doc_title(rng, style, right - left, (bottom - top) // 3)
    if title is not None:
        top = canvas.put(title, left, top) + 2 * gap
    if rng.random() < 0.7:
        inset = style.px(rng.uniform(0, 20))
        abstract = blocks.paragraph(rng, style, right - left - 2 * inset, (bottom - top) // 3, lines=(3, 9))
        if abstract is not None:
            top = canvas.put(abstract, left + inset, top) + 2 * gap
    return top


def _full_width_float(rng: np.random.Generator, style: Style, canvas: _Canvas, left: int, right: int,
                      top: int, bottom: int, gap: int) -> tuple[int, int]:
    """A figure or table spanning both columns, at the top or the bottom of the body."""
    render = figure if rng.random() < 0.6 else blocks.table
    block = render(rng, style, right - left, int((bottom - top) * rng.uniform(0.3, 0.5)))
    if block is None:
        return top, bottom
    if rng.random() < 0.5:
        return canvas.put(block, left, top) + 2 * gap, bottom
    canvas.put(block, left, bottom - block.height)
    return top, bottom - block.height - 2 * gap


def _fill_column(rng: np.random.Generator, style: Style, canvas: _Canvas, x: int, y: int, bottom: int,
                 width: int, gap: int) -> None:
    """Stack blocks drawn from the grammar until the column is full."""
    after_heading = False
    while bottom - y >= style.line_height:
        drawn = _COLUMN_BLOCKS[int(rng.choice(len(_COLUMN_BLOCKS), p=_BLOCK_P))][0]
        render = blocks.paragraph if after_heading else drawn
        room = bottom - y if render is not blocks.heading else bottom - y - 3 * style.line_height
        block = render(rng, style, width, room) if room > 0 else None
        if block is None:  # the chosen block does not fit: end the column with a short paragraph
            render, block = blocks.paragraph, blocks.paragraph(rng, style, width, bottom - y, lines=(1, 8))
        if block is None:
            return
        y = canvas.put(block, x, y) + (gap // 2 if render is blocks.heading else gap)
        after_heading = render is blocks.heading


def rotate_boxes(boxes: np.ndarray, angle_deg: float, height: int, width: int) -> np.ndarray:
    """Boxes after `Image.rotate(angle_deg)` about the page centre: the axis-aligned hull of the turned corners."""
    if len(boxes) == 0:
        return boxes
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = width / 2, height / 2
    xs = boxes[:, [0, 2, 2, 0]] - cx
    ys = boxes[:, [1, 1, 3, 3]] - cy
    # Image.rotate turns counter-clockwise on screen; with y pointing down that maps (x, y) relative to the centre
    # to (x cos + y sin, -x sin + y cos).
    new_x, new_y = xs * cos + ys * sin + cx, -xs * sin + ys * cos + cy
    turned = np.stack([new_x.min(1), new_y.min(1), new_x.max(1), new_y.max(1)], axis=1)
    return np.clip(turned, 0, [width, height, width, height]).astype(np.float32)


def _scan(rng: np.random.Generator, canvas: _Canvas) -> tuple[Image.Image, np.ndarray]:
    """Paper tint, rotation, blur, uneven light and noise."""
    width, height = canvas.image.size
    paper = tuple(int(v) for v in np.array([255, 253, 248]) - rng.uniform(0, 14) - rng.uniform(0, 6, 3))
    image = ImageChops.multiply(canvas.image, Image.new("RGB", (width, height), paper))
    boxes = np.array(canvas.boxes, np.float32).reshape(-1, 4)
    if rng.random() < 0.75:
        angle = float(rng.uniform(-0.95, 0.95))
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=paper)
        boxes = rotate_boxes(boxes, angle, height, width)
    if rng.random() < 0.3:  # a slightly soft scan (a box blur: a third of a Gaussian's cost, looks the same here)
        image = image.filter(ImageFilter.BoxBlur(float(rng.uniform(0.3, 0.6))))
    pixels = np.array(image, np.float32)
    light = 1 - np.abs(np.linspace(0, 1, height, dtype=np.float32)[:, None] * rng.uniform(-0.06, 0.06)
                       + np.linspace(0, 1, width, dtype=np.float32)[None, :] * rng.uniform(-0.06, 0.06))
    pixels *= light[..., None]  # uneven lighting across the glass
    pixels += (rng.standard_normal((height, width), dtype=np.float32) * rng.uniform(1.0, 7.0))[..., None]
    np.clip(pixels, 0, 255, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8)), boxes


def render_page(seed: int, index: int, *, height: int = 320, width: int = 256, stream: int = 0) -> Page:
    """Page `index` of the data set drawn from `seed` (and `stream`, one per split): the same on every call.

    >>> page = render_page(0, 3)
    >>> page.image.size, page.boxes.shape[1]
    ((256, 320), 4)
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))
    style = sample_style(rng, width)
    canvas = compose(rng, style, height, width)
    image, boxes = _scan(rng, canvas)
    labels = np.array(canvas.labels, np.int64)
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return Page(image, boxes[keep], labels[keep], int(rng.integers(40, 96)))


def encode_jpeg(page: Page) -> bytes:
    buffer = io.BytesIO()
    page.image.save(buffer, format="JPEG", quality=page.jpeg_quality)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Job:
    """One worker task: pages [start, stop) of one split."""

    root: str
    split: str
    start: int
    stop: int
    height: int
    width: int
    seed: int


def _render_job(job: _Job) -> list[dict]:
    """Render and write the job's pages; return their COCO image entries with an 'annotations' list each."""
    entries = []
    for index in range(job.start, job.stop):
        page = render_page(job.seed, index, height=job.height, width=job.width, stream=SPLIT_STREAMS[job.split])
        name = f"{index:06d}.jpg"
        atomic_write_bytes(Path(job.root) / "images" / job.split / name, encode_jpeg(page))
        annotations = [{"category_id": int(label), "bbox": _xywh(box)} for box, label in zip(page.boxes, page.labels)]
        entries.append({"id": index + 1, "file_name": name, "width": job.width, "height": job.height,
                        "annotations": annotations})
    return entries


def _xywh(box: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = (round(float(v), 2) for v in box)
    return [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)]


def _run(jobs: list[_Job], workers: int) -> Iterator[list[dict]]:
    if workers <= 1:
        yield from map(_render_job, jobs)
        return
    with multiprocessing.get_context().Pool(workers) as pool:
        yield from pool.imap(_render_job, jobs)  # in submission order, so ids follow file order


def generate_layout_dataset(out_dir: str | Path, *, train: int = 4000, val: int = 500, height: int = 320,
                            width: int = 256, seed: int = 0, workers: int = 1,
                            progress: Callable[[int], None] | None = None) -> dict:
    """Write the synthetic layout set (images + COCO JSON per split) under `out_dir`; return a summary.

    Files depend only on the arguments other than `workers`/`progress`; `progress(n)` is called as n pages are
    written. Read it back with `coco.load_coco(out/"annotations/train.json", out/"images/train")`.

    >>> summary = generate_layout_dataset("data/layout", train=8, val=2, seed=0)
    >>> summary["images"]
    {'train': 8, 'val': 2}
    """
    root = Path(out_dir)
    counts = {"train": train, "val": val}
    jobs = [_Job(str(root), split, start, min(start + _CHUNK, count), height, width, seed)
            for split, count in counts.items() for start in range(0, count, _CHUNK)]
    entries: dict[str, list[dict]] = {split: [] for split in counts}
    for job, done in zip(jobs, _run(jobs, workers)):
        entries[job.split].extend(done)
        if progress is not None:
            progress(len(done))
    summary = {"images": counts, "boxes": {}, "boxes_per_class": {}}
    for split, pages in entries.items():
        coco = _coco_document(pages, split, height, width, seed)
        atomic_write_json(root / "annotations" / f"{split}.json", coco)
        _remove_stale_images(root / "images" / split, {page["file_name"] for page in pages})
        summary["boxes"][split] = len(coco["annotations"])
        summary["boxes_per_class"][split] = {
            name: sum(a["category_id"] == cid for a in coco["annotations"]) for cid, name in CATEGORY_NAMES.items()}
    return summary


def _coco_document(pages: list[dict], split: str, height: int, width: int, seed: int) -> dict:
    images, annotations = [], []
    for page in pages:
        images.append({key: value for key, value in page.items() if key != "annotations"})
        for annotation in page["annotations"]:
            w, h = annotation["bbox"][2:]
            annotations.append({"id": len(annotations) + 1, "image_id": page["id"], **annotation,
                                "area": round(w * h, 2), "iscrowd": 0})
    info = {"description": "edgekd synthetic document layout pages (PubLayNet classes)",
            "generator": "edgekd.tasks.layout.pages", "format_version": FORMAT_VERSION, "split": split,
            "seed": seed, "height": height, "width": width, "fonts": [f.name for f in font_families()]}
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": CATEGORIES}


def _remove_stale_images(folder: Path, keep: set[str]) -> None:
    """A smaller re-generation into the same folder must not leave pages that no annotation file lists."""
    for stale in folder.glob("*.jpg"):
        if _OWN_IMAGE.fullmatch(stale.name) and stale.name not in keep:
            stale.unlink()
