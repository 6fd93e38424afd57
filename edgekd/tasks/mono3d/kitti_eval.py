"""The KITTI object benchmark for one class: AP2D / APBEV / AP3D at |R40 and |R11, easy / moderate / hard.

Follows the official devkit (`evaluate_object.cpp`, and its Python port `kitti_object_eval_python/eval.py` used by
OpenPCDet and MonoTAKD) step by step:

* per difficulty, a ground truth (GT) object counts (0), is ignored (1: a neighbouring class such as Van for Car, or
  the class outside the level: occluded > max, truncated > max, or 2D height <= min) or is not considered (-1);
  a detection lower than the min height is ignored (1) whatever its class, else it counts (0) if of the class
  and is not considered (-1) otherwise;
* thresholds: match each GT (in label order) to the unmatched detection with overlap > IoU of highest score; the
  scores of true positives give up to 41 thresholds spaced evenly in recall;
* at each threshold, match each GT to the unmatched detection above it with the largest overlap (an ignored one
  only if no counted one overlaps); matches with an ignored GT or detection count as neither TP nor FP; unmatched
  counted detections are FP unless their 2D box lies inside a DontCare region (intersection / own area > IoU);
* precision is made monotone from the right; AP|R40 averages points 1..40 of the 41, AP|R11 points 0, 4, …, 40.

Each kept threshold advances the sampled recall by 1/40, so, as in the devkit, AP|R40 can reach 100 only with at
least 41 counted GT objects; a tiny validation set (fewer GT than that) scores perfect detections below 100.

Beyond the devkit: 2D heights are compared against `MIN_HEIGHT × scale` so that down-scaled images keep KITTI's
levels; the C++ devkit applies DontCare regions to every metric while the Python port applies them to 2D only
(`dontcare_all_metrics`, default the C++ behaviour); a level with no counted GT scores 0 (the devkit divides by zero).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.tasks.mono3d.box_iou import boxes3d_to_bev, iou_2d, paired_bev_iou, paired_iou_3d
from edgekd.tasks.mono3d.kitti_io import read_label_file

DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT_PX = (40.0, 25.0, 25.0)  # at KITTI's 375-row resolution
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.30, 0.50)
NEIGHBOUR_CLASS = {"car": "van", "pedestrian": "person_sitting"}
METRICS = ("2d", "bev", "3d")
SAMPLE_POINTS = 41
_FRAME_CHUNK = 256  # frames matched at once: bounds the (frames, thresholds, detections) arrays

Objects = dict[str, np.ndarray]


def evaluate_kitti(gt: str | Path | Sequence[Objects], detections: str | Path | Sequence[Objects], scale: float = 1.0,
                   *, class_name: str = "Car", iou_thresholds: Sequence[float] = (0.7, 0.5),
                   dontcare_all_metrics: bool = True) -> dict[str, float]:
    """KITTI AP of `class_name` for paired per-frame objects (lists of `kitti_io` object dicts) or folders.

    Keys read like ``"AP3D_R40@0.7/moderate"`` (also APBEV, AP2D, R11, IoU 0.5) plus ``"num_gt/<level>"``;
    values are percentages. `scale` multiplies KITTI's minimum box heights (40 / 25 / 25 px).

    >>> evaluate_kitti("data/val", "runs/mono3d/results")["AP3D_R40@0.7/moderate"]  # doctest: +SKIP
    """
    if isinstance(gt, (str, Path)) or isinstance(detections, (str, Path)):
        gt, detections = _load_pair(Path(gt), Path(detections))
    gt, detections = list(gt), list(detections)
    if len(gt) != len(detections):
        raise EdgekdError(f"KITTI evaluation needs one detection list per frame: {len(gt)} GT vs {len(detections)}")
    result: dict[str, float] = {}
    overlaps_by_metric = {metric: _overlaps(gt, detections, metric) for metric in METRICS}
    for level in range(3):
        flags = [_frame_flags(g, d, class_name, level, scale) for g, d in zip(gt, detections)]
        result[f"num_gt/{DIFFICULTIES[level]}"] = float(sum(f[3] for f in flags))
        for metric, overlaps in overlaps_by_metric.items():
            use_dontcare = dontcare_all_metrics or metric == "2d"
            for iou in iou_thresholds:
                precision = _precision_curve(overlaps, detections, flags, iou, use_dontcare)
                name = f"AP{metric.upper()}"
                result[f"{name}_R40@{iou:g}/{DIFFICULTIES[level]}"] = float(precision[1:].sum() / 40 * 100)
                result[f"{name}_R11@{iou:g}/{DIFFICULTIES[level]}"] = float(precision[::4].sum() / 11 * 100)
    return dict(sorted(result.items()))


def evaluate_kitti_folders(gt_dir: str | Path, result_dir: str | Path, scale: float | None = None,
                           **options) -> dict[str, float]:
    """Score a folder of KITTI result files against a split's label_2 (or a folder of label files).

    With `scale` None the height scale comes from a scale.json beside the labels (the split or its parent), else 1.
    """
    gt_dir = Path(gt_dir)
    if scale is None:
        scale = read_height_scale(gt_dir)
    return evaluate_kitti(gt_dir, Path(result_dir), scale, **options)


def read_height_scale(folder: str | Path) -> float:
    """`height_scale` from scale.json in `folder`, its parent or grandparent; 1.0 (KITTI's own size) if none."""
    folder = Path(folder)
    for candidate in (folder, folder.parent, folder.parent.parent):
        path = candidate / "scale.json"
        if path.is_file():
            try:
                return float(json.loads(path.read_text(encoding="utf-8"))["height_scale"])
            except (ValueError, KeyError, TypeError) as error:
                raise EdgekdError(f"{path}: expected JSON with a numeric 'height_scale' ({error})") from None
    return 1.0


def _load_pair(gt_dir: Path, det_dir: Path) -> tuple[list[Objects], list[Objects]]:
    label_dir = gt_dir / "label_2" if (gt_dir / "label_2").is_dir() else gt_dir
    for folder in (label_dir, det_dir):
        if not folder.is_dir():
            raise EdgekdError(f"{folder}: KITTI label folder is missing")
    ids = sorted(path.stem for path in label_dir.glob("*.txt"))
    if not ids:
        raise EdgekdError(f"{label_dir}: no label files (*.txt)")
    gt = [read_label_file(label_dir / f"{i}.txt") for i in ids]
    missing = [i for i in ids if not (det_dir / f"{i}.txt").is_file()]
    if missing:  # the devkit refuses incomplete submissions too: an empty file means "no detections"
        raise EdgekdError(f"{det_dir / (missing[0] + '.txt')}: result file is missing ({len(missing)} of {len(ids)})")
    return gt, [read_label_file(det_dir / f"{i}.txt") for i in ids]


def _frame_flags(gt: Objects, det: Objects, class_name: str, level: int,
                 scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(ignored_gt, ignored_det, DontCare boxes, counted GT) of one frame at one difficulty level."""
    wanted = class_name.lower()
    min_height = MIN_HEIGHT_PX[level] * scale
    names = np.char.lower(np.asarray(gt["name"], dtype=str))
    height = gt["bbox"][:, 3] - gt["bbox"][:, 1]
    outside_level = ((gt["occluded"] > MAX_OCCLUSION[level]) | (gt["truncated"] > MAX_TRUNCATION[level])
                     | (height <= min_height))
    same = names == wanted
    neighbour = names == NEIGHBOUR_CLASS.get(wanted, "\0")
    ignored_gt = np.where(same & ~outside_level, 0, np.where(neighbour | same, 1, -1))
    det_height = np.abs(det["bbox"][:, 3] - det["bbox"][:, 1])
    det_same = np.char.lower(np.asarray(det["name"], dtype=str)) == wanted
    ignored_det = np.where(det_height < min_height, 1, np.where(det_same, 0, -1))
    dontcare = gt["bbox"][np.asarray(gt["name"], dtype=str) == "DontCare"]
    return ignored_gt.astype(np.int64), ignored_det.astype(np.int64), dontcare, int((ignored_gt == 0).sum())


def _overlaps(gt: list[Objects], detections: list[Objects], metric: str) -> list[np.ndarray]:
    """Per frame, the (detections, GT) overlap matrix for the metric; rotated ones in one batch over all frames."""
    if metric == "2d":
        return [iou_2d(d["bbox"], g["bbox"]) for g, d in zip(gt, detections)]
    pairs_det, pairs_gt, shapes = [], [], []
    for g, d in zip(gt, detections):
        det_boxes, gt_boxes = _boxes_3d(d), _boxes_3d(g)
        pairs_det.append(np.repeat(det_boxes, len(gt_boxes), axis=0))
        pairs_gt.append(np.tile(gt_boxes, (len(det_boxes), 1)))
        shapes.append((len(det_boxes), len(gt_boxes)))
    det_all, gt_all = np.concatenate(pairs_det + [np.zeros((0, 7))]), np.concatenate(pairs_gt + [np.zeros((0, 7))])
    if metric == "bev":
        values = paired_bev_iou(boxes3d_to_bev(det_all), boxes3d_to_bev(gt_all))
    else:
        values = paired_iou_3d(det_all, gt_all)
    ends = np.cumsum([rows * cols for rows, cols in shapes])
    return [chunk.reshape(shape) for chunk, shape in zip(np.split(values, ends[:-1]), shapes)]


def _boxes_3d(objects: Objects) -> np.ndarray:
    """(N, 7) [x, y, z, h, w, l, ry] from label fields."""
    return np.concatenate([objects["location"], objects["dimensions"], objects["rotation_y"][:, None]], axis=1)


def _precision_curve(overlaps: list[np.ndarray], detections: list[Objects], flags: list[tuple], iou: float,
                     use_dontcare: bool) -> np.ndarray:
    """Monotone precision at the (up to 41) recall-sampled thresholds, zero-padded to 41 points."""
    num_gt = sum(f[3] for f in flags)
    precision = np.zeros(SAMPLE_POINTS)
    if num_gt == 0:
        return precision
    tp_scores = np.concatenate([_true_positive_scores(o, d["score"], f[0], f[1], iou)
                                for o, d, f in zip(overlaps, detections, flags)] or [np.zeros(0)])
    thresholds = recall_thresholds(tp_scores, num_gt)
    if len(thresholds) == 0:
        return precision
    counts = np.zeros((len(thresholds), 2))  # TP, FP per threshold
    for start in range(0, len(overlaps), _FRAME_CHUNK):
        stop = start + _FRAME_CHUNK
        counts += _count_tp_fp(overlaps[start:stop], detections[start:stop], flags[start:stop], iou, thresholds,
                               use_dontcare)
    total = counts.sum(axis=1)
    values = np.where(total > 0, counts[:, 0] / np.where(total > 0, total, 1.0), 0.0)
    precision[: len(values)] = np.maximum.accumulate(values[::-1])[::-1]
    return precision


def _true_positive_scores(overlap: np.ndarray, scores: np.ndarray, ignored_gt: np.ndarray, ignored_det: np.ndarray,
                          iou: float) -> np.ndarray:
    """Scores of the TPs when each GT takes the highest-scoring free detection that overlaps it enough."""
    assigned = np.zeros(len(scores), bool)
    found = []
    for i in np.flatnonzero(ignored_gt != -1):
        candidates = (ignored_det != -1) & ~assigned & (overlap[:, i] > iou)
        if not candidates.any():
            continue
        best = int(np.argmax(np.where(candidates, scores, -np.inf)))
        assigned[best] = True
        if ignored_gt[i] == 0 and ignored_det[best] == 0:
            found.append(scores[best])
    return np.asarray(found, dtype=np.float64)


def recall_thresholds(scores: np.ndarray, num_gt: int, sample_points: int = SAMPLE_POINTS) -> np.ndarray:
    """Score thresholds whose recalls come closest to 0, 1/40, 2/40, … (the devkit's `get_thresholds`).

    Walking the TP scores from high to low, a score is kept when the recall it reaches is at least as close to the
    next sampled recall as the recall of the following score would be; the lowest score is always kept.
    """
    ordered = np.sort(np.asarray(scores, np.float64))[::-1]
    kept, current = [], 0.0
    for i, score in enumerate(ordered):
        left = (i + 1) / num_gt
        last = i == len(ordered) - 1
        right = left if last else (i + 2) / num_gt
        if not last and (right - current) < (current - left):
            continue
        kept.append(score)
        current += 1.0 / (sample_points - 1)
    return np.asarray(kept[:sample_points])


def _pad(arrays: list[np.ndarray], width: int, fill: float) -> np.ndarray:
    out = np.full((len(arrays), width), fill, dtype=np.float64)
    for row, values in enumerate(arrays):
        out[row, : len(values)] = values
    return out


def _count_tp_fp(overlaps: list[np.ndarray], detections: list[Objects], flags: list[tuple], iou: float,
                 thresholds: np.ndarray, use_dontcare: bool) -> np.ndarray:
    """(T, 2) TP and FP counts over a chunk of frames, all thresholds at once (frames padded to equal sizes)."""
    frames = len(overlaps)
    n_det = max([len(d["score"]) for d in detections] + [1])
    n_gt = max([len(f[0]) for f in flags] + [1])
    overlap = np.zeros((frames, n_det, n_gt))
    for k, matrix in enumerate(overlaps):
        overlap[k, : matrix.shape[0], : matrix.shape[1]] = matrix
    ignored_det = _pad([f[1] for f in flags], n_det, -1).astype(np.int64)  # padding = not considered
    ignored_gt = _pad([f[0] for f in flags], n_gt, -1).astype(np.int64)
    scores = _pad([d["score"] for d in detections], n_det, -np.inf)
    # (F, T, D): detections that exist at each threshold and are of the class (or ignored-but-matchable).
    live = (scores[:, None, :] >= thresholds[None, :, None]) & (ignored_det[:, None, :] != -1)
    assigned = np.zeros_like(live)
    tp = np.zeros((frames, len(thresholds)), np.int64)
    counted_det = (ignored_det == 0)[:, None, :]
    for i in range(n_gt):
        gt_flag = ignored_gt[:, i][:, None]  # (F, 1)
        close = live & ~assigned & (overlap[:, None, :, i] > iou) & (gt_flag[..., None] != -1)
        best_counted = np.where(close & counted_det, overlap[:, None, :, i], -np.inf)
        has_counted = np.isfinite(best_counted).any(-1)
        pick = np.where(has_counted, np.argmax(best_counted, -1), np.argmax(close, -1))  # first ignored one
        matched = close.any(-1)
        np.put_along_axis(assigned, pick[..., None], np.take_along_axis(assigned, pick[..., None], -1)
                          | matched[..., None], -1)
        picked_counted = np.take_along_axis(np.broadcast_to(counted_det, live.shape), pick[..., None], -1)[..., 0]
        tp += matched & picked_counted & (gt_flag == 0)
    unmatched = live & ~assigned & counted_det
    if use_dontcare:
        unmatched &= ~_inside_dontcare(detections, flags, n_det, iou)[:, None, :]
    fp = unmatched.sum(-1)
    return np.stack([tp.sum(0), fp.sum(0)], axis=1).astype(np.float64)


def _inside_dontcare(detections: list[Objects], flags: list[tuple], n_det: int, iou: float) -> np.ndarray:
    """(F, D) detections whose 2D box lies inside some DontCare region by more than the IoU threshold."""
    out = np.zeros((len(detections), n_det), bool)
    for k, (det, flag) in enumerate(zip(detections, flags)):
        if len(flag[2]) and len(det["bbox"]):
            out[k, : len(det["bbox"])] = (iou_2d(det["bbox"], flag[2], over_first=True) > iou).any(axis=1)
    return out
