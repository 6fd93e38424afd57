"""Synthetic layout pages: determinism, box validity and tightness, class coverage, the written COCO set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from edgekd.tasks.layout.blocks import CATEGORY_NAMES
from edgekd.tasks.layout.coco import PUBLAYNET_CLASSES, load_coco
from edgekd.tasks.layout.fonts import font_families
from edgekd.tasks.layout.pages import compose, generate_layout_dataset, render_page, rotate_boxes, sample_style


@pytest.fixture(scope="module")
def pages() -> list:
    return [render_page(7, i) for i in range(20)]


def test_same_seed_and_index_give_the_same_page() -> None:
    first, again, other = render_page(3, 5), render_page(3, 5), render_page(3, 6)
    assert first.image.tobytes() == again.image.tobytes()
    assert np.array_equal(first.boxes, again.boxes) and np.array_equal(first.labels, again.labels)
    assert first.image.tobytes() != other.image.tobytes()
    assert render_page(3, 5, stream=1).image.tobytes() != first.image.tobytes()  # val pages differ from train


def test_boxes_are_inside_the_page_and_not_empty(pages: list) -> None:
    for page in pages:
        assert page.image.size == (256, 320) and page.image.mode == "RGB"
        boxes = page.boxes
        assert boxes.dtype == np.float32 and boxes.shape[1] == 4 and len(boxes) >= 1
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= 256).all() and (boxes[:, 3] <= 320).all()
        assert ((boxes[:, 2] - boxes[:, 0]) >= 1).all() and ((boxes[:, 3] - boxes[:, 1]) >= 1).all()
        assert set(page.labels.tolist()) <= set(CATEGORY_NAMES)


def test_all_five_classes_appear(pages: list) -> None:
    counts = np.bincount(np.concatenate([p.labels for p in pages]), minlength=6)
    assert (counts[1:] > 0).all(), counts
    assert counts[1] == counts.max()  # text is the most common block, as in PubLayNet


def test_boxes_are_tight_on_the_clean_page() -> None:
    # Before the scan effects the page is pure white outside ink, and boxes come from the inked pixels: each box's
    # outermost rows and columns must contain ink.
    for index in range(6):
        rng = np.random.default_rng(index)
        canvas = compose(rng, sample_style(rng, 256), 320, 256)
        ink = np.asarray(canvas.image.convert("L")) < 255
        for x0, y0, x1, y1 in np.array(canvas.boxes, int):
            inside = ink[y0:y1, x0:x1]
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()


def test_rotate_boxes_golden_and_against_pillow() -> None:
    # 90° counter-clockwise about the centre of a 100x100 page maps (x, y) to (y, 100 - x):
    # corners of [0, 0, 10, 20] go to (0, 100), (0, 90), (20, 90), (20, 100) -> hull [0, 90, 20, 100].
    turned = rotate_boxes(np.array([[0.0, 0.0, 10.0, 20.0]], np.float32), 90.0, 100, 100)
    assert np.allclose(turned, [[0, 90, 20, 100]], atol=1e-4)
    # A small turn: Pillow's rotated ink stays inside the rotated box (1 px slack for bilinear edges).
    image = Image.new("L", (120, 160), 0)
    ImageDraw.Draw(image).rectangle((30, 40, 89, 69), fill=255)  # pixels 30..89 x 40..69 -> box [30, 40, 90, 70]
    ys, xs = np.nonzero(np.asarray(image.rotate(0.9, resample=Image.Resampling.BILINEAR)) > 0)
    box = rotate_boxes(np.array([[30.0, 40.0, 90.0, 70.0]], np.float32), 0.9, 160, 120)[0]
    assert xs.min() >= box[0] - 1 and ys.min() >= box[1] - 1
    assert xs.max() + 1 <= box[2] + 1 and ys.max() + 1 <= box[3] + 1
    assert xs.min() <= box[0] + 1 and ys.max() + 1 >= box[3] - 1  # and the box is not loose


def test_page_size_is_configurable() -> None:
    page = render_page(0, 1, height=256, width=192)
    assert page.image.size == (192, 256) and (page.boxes[:, 2] <= 192).all() and (page.boxes[:, 3] <= 256).all()


def test_fonts_come_from_disk() -> None:
    families = font_families()
    assert any(f.name.startswith("DejaVu") for f in families)  # matplotlib's bundled fonts are always there
    assert all(Path(f.regular).is_file() and Path(f.bold).is_file() for f in families)


def test_tiny_dataset_written_and_read_back(tmp_path: Path) -> None:
    seen = []
    summary = generate_layout_dataset(tmp_path, train=4, val=2, seed=11, progress=seen.append)
    assert summary["images"] == {"train": 4, "val": 2} and sum(seen) == 6
    coco = json.loads((tmp_path / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(PUBLAYNET_CLASSES)
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4, 5]
    assert len(coco["annotations"]) == summary["boxes"]["train"]
    first = coco["annotations"][0]
    assert first["iscrowd"] == 0 and first["area"] == pytest.approx(first["bbox"][2] * first["bbox"][3], abs=0.02)
    index = load_coco(tmp_path / "annotations" / "train.json", tmp_path / "images" / "train")
    assert len(index) == 4 and sum(len(r.boxes) for r in index) == len(coco["annotations"])
    with Image.open(index[0].file) as image:
        assert image.format == "JPEG" and image.size == (256, 320)
    # The first train page's boxes are render_page's, in xyxy.
    assert np.allclose(index[0].boxes, render_page(11, 0).boxes, atol=0.01)
    val = load_coco(tmp_path / "annotations" / "val.json", tmp_path / "images" / "val")
    assert len(val) == 2 and val[0].file.name == "000000.jpg"


def test_workers_do_not_change_the_files_and_stale_pages_go(tmp_path: Path) -> None:
    generate_layout_dataset(tmp_path / "one", train=3, val=1, seed=2, workers=1)
    generate_layout_dataset(tmp_path / "two", train=3, val=1, seed=2, workers=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    generate_layout_dataset(tmp_path / "one", train=2, val=1, seed=2)
    assert sorted(p.name for p in (tmp_path / "one" / "images" / "train").iterdir()) == ["000000.jpg", "000001.jpg"]
