"""The COCO layout loader: a good file round trip, the torch dataset and collate, results, and each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.errors import EdgekdError
from edgekd.tasks.layout.coco import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LayoutDataset,
    collate_layout,
    load_coco,
    to_coco_detections,
    write_coco_detections,
)


def _coco() -> dict:
    """Two 40x20 (W x H) pages; category ids deliberately not in PubLayNet's order."""
    return {
        "images": [{"id": 10, "file_name": "a.png", "width": 40, "height": 20},
                   {"id": 11, "file_name": "b.png", "width": 40, "height": 20}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [4, 2, 10, 6], "area": 60, "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [20, 10, 8, 4], "area": 32, "iscrowd": 0},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 40, 20], "area": 800, "iscrowd": 1},
            {"id": 4, "image_id": 10, "category_id": 3, "bbox": [5, 5, 0, 3], "area": 0, "iscrowd": 0},
        ],
        "categories": [{"id": 3, "name": "text"}, {"id": 7, "name": "figure"}, {"id": 9, "name": "table"}],
    }


def _write(root: Path, data: dict, images: tuple[str, ...] = ("a.png", "b.png")) -> Path:
    mean = tuple(round(m * 255) for m in IMAGENET_MEAN)
    for name in images:
        Image.new("RGB", (40, 20), mean).save(root / name)
    path = root / "coco.json"
    path.write_text(json.dumps(data))
    return path


def test_load_maps_categories_by_name(tmp_path: Path) -> None:
    index = load_coco(_write(tmp_path, _coco()), tmp_path)
    assert len(index) == 2 and [r.image_id for r in index] == [10, 11]
    first = index[0]
    assert first.file == tmp_path / "a.png" and (first.width, first.height) == (40, 20)
    # xywh -> xyxy; crowd and zero-width boxes are left out of the training records.
    assert np.array_equal(first.boxes, np.array([[4, 2, 14, 8], [20, 10, 28, 14]], np.float32))
    assert first.boxes.dtype == np.float32 and first.labels.dtype == np.int64
    # 'figure' (id 7) is class 4 and 'text' (id 3) class 0 in PubLayNet's order text, title, list, table, figure.
    assert first.labels.tolist() == [4, 0]
    assert index[1].boxes.shape == (0, 4)
    assert index.category_ids == {0: 3, 4: 7, 3: 9}


def test_custom_class_list(tmp_path: Path) -> None:
    index = load_coco(_write(tmp_path, _coco()), tmp_path, class_names=["figure", "text", "table"])
    assert index[0].labels.tolist() == [0, 1] and index.class_names == ("figure", "text", "table")


def test_dataset_resizes_normalises_and_scales_boxes(tmp_path: Path) -> None:
    dataset = LayoutDataset(load_coco(_write(tmp_path, _coco()), tmp_path), height=40, width=20)
    sample = dataset[0]
    assert sample.image.shape == (3, 40, 20) and sample.image.dtype == torch.float32
    # Pixels at the ImageNet mean normalise to ~0 (the mean was rounded to whole 8-bit levels: < 0.5/255/std).
    assert sample.image.abs().max().item() < 0.5 / 255 / min(IMAGENET_STD) + 1e-6
    # 40x20 (W x H) -> 20x40: x halves, y doubles. [4, 2, 14, 8] -> [2, 4, 7, 16].
    assert torch.equal(sample.boxes[0], torch.tensor([2.0, 4.0, 7.0, 16.0]))
    assert sample.labels.tolist() == [4, 0] and sample.image_id == 10


def test_dataset_normalisation_golden(tmp_path: Path) -> None:
    # A white image: (255 - 255 * mean) / (255 * std) = (1 - mean) / std per channel.
    _write(tmp_path, _coco())
    Image.new("RGB", (40, 20), (255, 255, 255)).save(tmp_path / "b.png")
    image = LayoutDataset(load_coco(tmp_path / "coco.json", tmp_path), 20, 40)[1].image
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(image[:, 0, 0], torch.tensor(expected), atol=1e-5)


def test_collate_keeps_box_lists(tmp_path: Path) -> None:
    dataset = LayoutDataset(load_coco(_write(tmp_path, _coco()), tmp_path), height=16, width=32)
    batch = collate_layout([dataset[0], dataset[1]])
    assert batch.images.shape == (2, 3, 16, 32)
    assert [len(b) for b in batch.boxes] == [2, 0] and [len(l) for l in batch.labels] == [2, 0]
    assert batch.image_ids.tolist() == [10, 11] and len(batch[0]) == 2


def test_detections_back_to_coco(tmp_path: Path) -> None:
    # A detection at [2, 4, 7, 16] on a 20x40 input, scaled back to the 40x20 image by (2, 0.5): [4, 2, 14, 8].
    dets = to_coco_detections(10, torch.tensor([[2.0, 4.0, 7.0, 16.0], [0.0, 0.0, 1.0, 1.0]]),
                              torch.tensor([0.9, 0.5]), torch.tensor([4, 1]), {0: 3, 4: 7}, scale=(2.0, 0.5))
    # Class 1 ('title') has no category in the file and is dropped.
    assert dets == [{"image_id": 10, "category_id": 7, "bbox": [4.0, 2.0, 10.0, 6.0], "score": 0.9}]
    path = write_coco_detections(tmp_path / "out" / "dets.json", dets)
    assert json.loads(path.read_text()) == dets
    assert not list((tmp_path / "out").glob("*.tmp"))
    with pytest.raises(EdgekdError, match="dets.json"):
        write_coco_detections(tmp_path / "dets.json", [{"image_id": 1, "bbox": [0, 0, 1, 1]}])


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.update(annotations=d["annotations"] + [{"id": 5, "image_id": 99, "category_id": 3,
                                                        "bbox": [0, 0, 1, 1]}]), "unknown image_id 99"),
    (lambda d: d["annotations"][0].update(bbox=[4, 2, -10, 6]), "negative bbox size"),
    (lambda d: d["categories"].append({"id": 12, "name": "txt"}), "category 'txt' is not in the class list "
                                                                  r"\(did you mean 'text'\?\)"),
    (lambda d: d.pop("annotations"), "not a COCO detection file"),
    (lambda d: d["images"].append({"id": 12, "file_name": "gone.png", "width": 4, "height": 4}),
     "'gone.png' .* is missing"),
    (lambda d: d["annotations"][0].update(category_id=42), "unknown category_id 42"),
    (lambda d: d["images"][0].pop("width"), r"images\[0\] needs"),
])
def test_bad_input_names_the_file(tmp_path: Path, break_it, message: str) -> None:
    data = _coco()
    break_it(data)
    path = _write(tmp_path, data)
    with pytest.raises(EdgekdError, match=message) as error:
        load_coco(path, tmp_path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_and_unreadable_json(tmp_path: Path) -> None:
    with pytest.raises(EdgekdError, match="missing.json: COCO annotation file not found"):
        load_coco(tmp_path / "missing.json", tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(EdgekdError, match="broken.json: not valid JSON"):
        load_coco(broken, tmp_path)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(EdgekdError, match="list.json: not a COCO detection file"):
        load_coco(listed, tmp_path)


def test_unreadable_image_is_reported_when_decoded(tmp_path: Path) -> None:
    path = _write(tmp_path, _coco())
    (tmp_path / "b.png").write_bytes(b"not an image")
    dataset = LayoutDataset(load_coco(path, tmp_path), 20, 40)
    with pytest.raises(EdgekdError, match="b.png: not a readable image"):
        dataset[1]
