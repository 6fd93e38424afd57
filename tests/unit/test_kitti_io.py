"""KITTI object files: every bad input names its file, label/calib round trips, and hand-checked geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekd.errors import EdgekdError
from edgekd.tasks.mono3d.kitti_io import (
    Calib,
    box_corners_3d,
    camera_to_lidar,
    format_calib,
    index_frames,
    lidar_to_camera,
    parse_label_lines,
    points_to_bytes,
    project_to_image,
    read_calib,
    read_label_file,
    read_points,
    write_label_file,
    write_result_file,
)

LABEL = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
P2_LINE = "P2: 100 0 50 0 0 100 20 0 0 0 1 0\n"
VELO_LINE = "Tr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.08 1 0 0 -0.27\n"


def _frame(root: Path, frame_id: str, *, image=True, label=True, calib=True, velodyne=True) -> None:
    files = (("image_2", ".png", b"\x89PNG", image), ("label_2", ".txt", LABEL.encode(), label),
             ("calib", ".txt", (P2_LINE + VELO_LINE).encode(), calib), ("velodyne", ".bin", bytes(32), velodyne))
    for sub, suffix, data, wanted in files:
        (root / sub).mkdir(parents=True, exist_ok=True)
        if wanted:
            (root / sub / f"{frame_id}{suffix}").write_bytes(data)


def test_index_pairs_files_by_id(tmp_path: Path) -> None:
    _frame(tmp_path, "000001")
    _frame(tmp_path, "000000")
    frames = index_frames(tmp_path, velodyne=True)
    assert [f.frame_id for f in frames] == ["000000", "000001"]
    assert frames[1].label == tmp_path / "label_2" / "000001.txt"
    assert frames[1].velodyne == tmp_path / "velodyne" / "000001.bin"


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(EdgekdError, match="nowhere"):
        index_frames(tmp_path / "nowhere")
    (tmp_path / "image_2").mkdir()
    with pytest.raises(EdgekdError, match="calib"):
        index_frames(tmp_path)


@pytest.mark.parametrize(("missing", "named"), [("label", "image_2/000003.png"), ("calib", "image_2/000003.png"),
                                                 ("image", "label_2/000003.txt")])
def test_file_without_partner_is_named(tmp_path: Path, missing: str, named: str) -> None:
    _frame(tmp_path, "000003", **{missing: False})
    with pytest.raises(EdgekdError, match=named):
        index_frames(tmp_path)


def test_velodyne_without_image_is_named_only_when_used(tmp_path: Path) -> None:
    _frame(tmp_path, "000000")
    _frame(tmp_path, "000009", image=False, label=False, calib=False)  # a stray .bin
    assert len(index_frames(tmp_path)) == 1  # velodyne not requested: not looked at
    with pytest.raises(EdgekdError, match="velodyne/000009.bin"):
        index_frames(tmp_path, velodyne=True)


@pytest.mark.parametrize(("line", "message"), [
    ("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70", r"bad\.txt:2: .* got 14"),
    ("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 x", r"bad\.txt:2: .*numbers"),
])
def test_malformed_label_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(LABEL + line + "\n")
    with pytest.raises(EdgekdError, match=message):
        read_label_file(path)


def test_calib_without_p2_or_velo_transform(tmp_path: Path) -> None:
    no_p2 = tmp_path / "no_p2.txt"
    no_p2.write_text("P0: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(EdgekdError, match="no_p2.txt.*P2"):
        read_calib(no_p2)
    no_velo = tmp_path / "no_velo.txt"
    no_velo.write_text(P2_LINE)
    assert read_calib(no_velo).Tr_velo_to_cam is None  # fine for camera-only use
    with pytest.raises(EdgekdError, match="no_velo.txt.*Tr_velo_to_cam"):
        read_calib(no_velo, need_velodyne=True)


def test_point_file_size_must_be_a_multiple_of_16(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    points = np.array([[1.0, 2.0, 3.0, 0.5], [4.0, 5.0, 6.0, 0.25]], np.float32)
    good.write_bytes(points_to_bytes(points))
    np.testing.assert_array_equal(read_points(good), points)
    bad.write_bytes(bytes(20))
    with pytest.raises(EdgekdError, match="bad.bin.*multiple of 16"):
        read_points(bad)


def test_label_and_result_round_trip(tmp_path: Path) -> None:
    dontcare = "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10"
    objects = parse_label_lines([LABEL, dontcare], "x")
    objects["score"] = np.array([0.8125, 0.5])
    write_label_file(tmp_path / "gt.txt", objects)
    write_result_file(tmp_path / "det.txt", objects)
    assert (tmp_path / "gt.txt").read_text().splitlines()[0] == LABEL.strip()
    assert len((tmp_path / "det.txt").read_text().split("\n")[0].split()) == 16
    for name, score in (("gt.txt", [1.0, 1.0]), ("det.txt", [0.8125, 0.5])):
        back = read_label_file(tmp_path / name)
        assert back["name"].tolist() == ["Car", "DontCare"]
        np.testing.assert_allclose(back["dimensions"][0], [1.65, 1.67, 3.64])
        np.testing.assert_allclose(back["location"][0], [-0.65, 1.71, 46.70])
        np.testing.assert_allclose(back["bbox"][1], [503.89, 169.71, 590.61, 190.13])
        np.testing.assert_allclose(back["score"], score)


def test_calib_round_trip(tmp_path: Path) -> None:
    P2 = np.array([[100.0, 0, 50, 1.5], [0, 100, 20, 0], [0, 0, 1, 0]])
    velo = np.array([[0.0, -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27]])
    rect = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    (tmp_path / "c.txt").write_text(format_calib([P2, P2, P2, P2], rect, velo, velo))
    calib = read_calib(tmp_path / "c.txt", need_velodyne=True)
    np.testing.assert_allclose(calib.P2, P2)
    np.testing.assert_allclose(calib.R0_rect, rect)
    np.testing.assert_allclose(calib.Tr_velo_to_cam, velo)


def test_box_corners_of_a_hand_box() -> None:
    # h=2, w=2, l=4 at bottom centre (1, 1.65, 10), ry = π/2: the heading (cos ry, 0, −sin ry) is −z.
    # Corner 0 is local (+l/2, 0, +w/2) = (2, 0, 1) → x = cos·2 + sin·1 = 1, z = −sin·2 + cos·1 = −2
    # → (1 + 1, 1.65, 10 − 2) = (2, 1.65, 8); corner 4 is the same point 2 m up: (2, −0.35, 8).
    # Corner 2 is local (−2, 0, −1) → (−1, 0, 2) → (0, 1.65, 12).
    corners = box_corners_3d(np.array([[2.0, 2.0, 4.0, 1.0, 1.65, 10.0, np.pi / 2]]))[0]
    np.testing.assert_allclose(corners[0], [2.0, 1.65, 8.0], atol=1e-12)
    np.testing.assert_allclose(corners[4], [2.0, -0.35, 8.0], atol=1e-12)
    np.testing.assert_allclose(corners[2], [0.0, 1.65, 12.0], atol=1e-12)
    # Projection with fx = fy = 100, cx = 50, cy = 20:
    # (2, 1.65, 8) → (100·2/8 + 50, 100·1.65/8 + 20) = (75, 40.625).
    P2 = np.array([[100.0, 0, 50, 0], [0, 100, 20, 0], [0, 0, 1, 0]])
    pixels, depth = project_to_image(corners[:1], P2)
    np.testing.assert_allclose(pixels[0], [75.0, 40.625])
    assert depth[0] == pytest.approx(8.0)


def test_lidar_to_camera_of_a_hand_point() -> None:
    # Tr maps LiDAR (x fwd, y left, z up) to camera (x right, y down, z fwd) with a (0, −0.08, −0.27) offset:
    # p = (10, 2, −1) → (−2, 1 − 0.08, 10 − 0.27) = (−2, 0.92, 9.73); R0_rect (x, y, z) → (−y, x, z)
    # gives (−0.92, −2, 9.73).
    calib = Calib(np.zeros((3, 4)), np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]),
                  np.array([[0.0, -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27]]))
    point = np.array([[10.0, 2.0, -1.0, 0.3]])
    np.testing.assert_allclose(lidar_to_camera(point, calib), [[-0.92, -2.0, 9.73]], atol=1e-12)
    np.testing.assert_allclose(camera_to_lidar(np.array([[-0.92, -2.0, 9.73]]), calib), point[:, :3], atol=1e-12)
