"""Frustum → BEV lift (CaDDN / LSS style) as a static, ONNX-exportable op.

Image features (N, C, Hf, Wf) times a depth distribution (N, D, Hf, Wf) over LID bins make frustum features;
each (depth bin, pixel) is a 3D point through P2, and its features are summed or averaged into a BEV cell of a
(N, C, Zb, Xb) map (row = z cell from the near edge, column = x cell from the left edge).

Why it is cheap: with a rectified P2 (no skew, third row [0, 0, 1, t]) a point's x and z depend on the image
column and the depth only, never on the image row. So the rows are summed first — one batched matmul per image
column, (C × Hf) @ (Hf × D) — and only the Wf·D (column, bin) rays are scattered, with indices and weights
precomputed from (P2, stride, bins, grid) as buffers. Rows whose 3D point falls outside the grid's height band
are masked by a static (D, Hf) table. Each bin is split into `depth_samples` points along the ray so that far,
wide LID bins (≈1.8 m at 20 m for 32 bins) do not leave empty BEV rows between them.

>>> lift = FrustumToBev(P2, image_size=(320, 96), stride=4, bins=DepthBins(num=32), grid=BevGrid())
>>> lift(torch.zeros(2, 16, 24, 80), torch.zeros(2, 32, 24, 80)).shape   # features, depth distribution
torch.Size([2, 16, 64, 64])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError

Reduce = Literal["sum", "mean"]
Backend = Literal["rows", "elements", "dense"]


@dataclass(frozen=True)
class DepthBins:
    """Linear-increasing discretisation (CaDDN's LID): bin i spans [d_i, d_{i+1}), d_i = d_min + δ·i(i+1)/2."""

    d_min: float = 2.0
    d_max: float = 46.8
    num: int = 32

    def edges(self) -> np.ndarray:
        step = 2.0 * (self.d_max - self.d_min) / (self.num * (self.num + 1))
        i = np.arange(self.num + 1, dtype=np.float64)
        return self.d_min + step * i * (i + 1) / 2.0

    def centres(self) -> np.ndarray:
        edges = self.edges()
        return (edges[:-1] + edges[1:]) / 2.0

    def index(self, depth: torch.Tensor) -> torch.Tensor:
        """Bin of each depth, −1 where it is not positive or outside [d_min, d_max)."""
        edges = torch.as_tensor(self.edges(), dtype=depth.dtype, device=depth.device)
        bins = torch.bucketize(depth, edges, right=True) - 1
        return torch.where((bins >= 0) & (bins < self.num) & (depth > 0), bins, torch.full_like(bins, -1))


@dataclass(frozen=True)
class BevGrid:
    """The BEV grid in camera coordinates (x right, z forward) and the height band (y down) that is kept."""

    x_range: tuple[float, float] = (-20.0, 20.0)
    z_range: tuple[float, float] = (0.0, 40.0)
    cell: float = 0.625
    y_range: tuple[float, float] = (-1.0, 2.0)

    @property
    def shape(self) -> tuple[int, int]:
        """(Zb, Xb): rows along z, columns along x."""
        rows = round((self.z_range[1] - self.z_range[0]) / self.cell)
        cols = round((self.x_range[1] - self.x_range[0]) / self.cell)
        return rows, cols

    def cell_of(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) of camera-frame points."""
        row = np.floor((z - self.z_range[0]) / self.cell).astype(np.int64)
        col = np.floor((x - self.x_range[0]) / self.cell).astype(np.int64)
        rows, cols = self.shape
        return row, col, (row >= 0) & (row < rows) & (col >= 0) & (col < cols)


def backproject(P2: np.ndarray, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Camera-frame (x, y, z) of pixels (u, v) whose projective depth (third row of P2·X) is `depth`."""
    P2 = np.asarray(P2, dtype=np.float64).reshape(3, 4)
    u, v, depth = np.broadcast_arrays(u, v, depth)
    rhs = np.stack([u * depth, v * depth, depth], axis=-1) - P2[:, 3]
    return rhs @ np.linalg.inv(P2[:, :3]).T


def _check_rectified(P2: np.ndarray) -> None:
    inverse = np.linalg.inv(np.asarray(P2, dtype=np.float64).reshape(3, 4)[:, :3])
    # x and z must not depend on the image row, y not on the column (true for any rectified KITTI P2).
    if max(abs(inverse[0, 1]), abs(inverse[2, 0]), abs(inverse[2, 1]), abs(inverse[1, 0])) > 1e-9:
        raise EdgekdError("lift: P2 must be a rectified projection (no skew, third row [0, 0, 1, t])")


def feature_pixel_centres(size: int, stride: int) -> np.ndarray:
    """Image coordinate of each feature pixel's centre (pixel k of the image is centred on k)."""
    return np.arange(size // stride) * stride + (stride - 1) / 2.0


def ray_scatter_table(P2, image_width: int, stride: int, bins: DepthBins, grid: BevGrid,
                      depth_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ray, cell, weight) triples: ray = column·D + bin; each bin's samples carry 1/depth_samples each."""
    us = feature_pixel_centres(image_width, stride)
    edges = bins.edges()
    fractions = (np.arange(depth_samples) + 0.5) / depth_samples
    depths = edges[:-1, None] + fractions[None, :] * np.diff(edges)[:, None]          # (D, S)
    points = backproject(P2, us[:, None, None], 0.0, depths[None])                     # (Wf, D, S, 3)
    row, col, inside = grid.cell_of(points[..., 0], points[..., 2])
    ray = np.broadcast_to(np.arange(len(us) * bins.num).reshape(len(us), bins.num, 1), inside.shape)
    cell = row * grid.shape[1] + col
    pairs = np.stack([ray[inside], cell[inside]], axis=1)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)                     # merge samples in one cell
    return unique[:, 0], unique[:, 1], counts / float(depth_samples)


def height_mask(P2, image_height: int, stride: int, bins: DepthBins, grid: BevGrid) -> np.ndarray:
    """(D, Hf) 1.0 where the bin-centre point of a feature row lies inside the grid's height band."""
    vs = feature_pixel_centres(image_height, stride)
    points = backproject(P2, 0.0, vs[None, :], bins.centres()[:, None])
    y = points[..., 1]
    return ((y >= grid.y_range[0]) & (y <= grid.y_range[1])).astype(np.float32)


class FrustumToBev(nn.Module):
    """Lift (features, depth distribution) into BEV with precomputed ray → cell weights.

    reduce="sum" adds every ray's mass into its cell (LSS); "mean" divides each cell by the number of ray samples
    that reach it, which, like CaDDN's voxel sampling, removes the near-range pile-up of many rays per cell.

    backend (all exact; the choice only changes speed — measured in docs/results.md):
    "rows"     gathers ray rows of a (rays, N·C) matrix and scatter-adds whole rows into (cells, N·C)
               (ONNX Gather + ScatterND add): fastest on ONNX Runtime; needs the dynamo exporter (opset >= 18);
    "elements" the same on an (N, C, rays) layout with per-element indices (ScatterElements add): exports with
               either exporter (opset >= 16), slower on ONNX Runtime;
    "dense"    a (rays × cells) matrix product: a 42 MB constant at the defaults and slower on both.
    """

    def __init__(self, P2, image_size: tuple[int, int], stride: int, bins: DepthBins = DepthBins(),
                 grid: BevGrid = BevGrid(), reduce: Reduce = "mean", depth_samples: int = 4,
                 backend: Backend = "rows") -> None:
        super().__init__()
        width, height = image_size
        if width % stride or height % stride:
            raise EdgekdError(f"lift: image size {width}×{height} is not a multiple of the feature stride {stride}")
        if backend not in ("rows", "elements", "dense"):
            raise EdgekdError(f"lift: unknown backend '{backend}' (rows, elements, dense)")
        _check_rectified(P2)
        self.bins, self.grid, self.backend = bins, grid, backend
        self.feature_size = (height // stride, width // stride)
        self.cells = grid.shape[0] * grid.shape[1]
        rays, cells, weights = ray_scatter_table(P2, width, stride, bins, grid, depth_samples)
        if reduce == "mean":
            weights = weights / np.bincount(cells, weights=weights, minlength=self.cells)[cells]
        mask = torch.from_numpy(height_mask(P2, height, stride, bins, grid))
        self.register_buffer("row_mask", mask.t()[None, None])  # (1, 1, Hf, D), broadcast over columns
        if backend == "dense":
            dense = np.zeros((bins.num * self.feature_size[1], self.cells), np.float32)
            np.add.at(dense, (rays, cells), weights)
            self.register_buffer("ray_to_cell", torch.from_numpy(dense))
        else:
            self.register_buffer("ray_index", torch.from_numpy(rays.astype(np.int64)))
            self.register_buffer("cell_index", torch.from_numpy(cells.astype(np.int64)))
            shape = (-1, 1) if backend == "rows" else (-1,)
            self.register_buffer("weights", torch.from_numpy(weights.astype(np.float32)).reshape(shape))

    def forward(self, features: torch.Tensor, depth_probs: torch.Tensor) -> torch.Tensor:
        """BEV (N, C, Zb, Xb) of features (N, C, Hf, Wf) lifted with a depth distribution (N, D, Hf, Wf)."""
        return self.splat(self.rays(features, depth_probs.permute(0, 3, 2, 1)))

    def from_logits(self, features: torch.Tensor, depth_logits: torch.Tensor) -> torch.Tensor:
        """As `forward`, from depth logits (N, D + 1, Hf, Wf) whose last bin is "out of range" (dropped).

        The softmax runs over the last axis of the (N, Wf, Hf, D + 1) layout the row sum needs: one transpose
        instead of two, and ONNX Runtime's softmax is several times faster on the innermost axis.
        """
        return self.splat(self.rays(features, depth_logits.permute(0, 3, 2, 1).softmax(dim=-1)[..., :-1]))

    def rays(self, features: torch.Tensor, column_probs: torch.Tensor) -> torch.Tensor:
        """(Wf, D, N, C): per (column, bin) ray, the height-masked row sum of features × depth probability.

        `column_probs` is the depth distribution laid out (N, Wf, Hf, D). The matmul is written (D × Hf) @ (Hf × C)
        so that it yields (N, Wf, D, C) and the move to (Wf, D, N, C) only shifts the batch axis (a reshape at
        batch 1): the (C × Hf) @ (Hf × D) order needs a full 4-D transpose after it, which cost ONNX Runtime more
        than the matmul itself.
        """
        masked = (column_probs * self.row_mask).transpose(2, 3)                                 # (N, Wf, D, Hf)
        per_column = torch.matmul(masked, features.permute(0, 3, 2, 1))                         # (N, Wf, D, C)
        return per_column.permute(1, 2, 0, 3)

    def splat(self, rays: torch.Tensor) -> torch.Tensor:
        """Add each ray's features, weighted, into its BEV cells: (Wf, D, N, C) → (N, C, Zb, Xb). In fp32 under
        autocast too: index_add/scatter_add need one dtype, and a cell sums many rays."""
        rays = rays.float()
        batch, channels = rays.shape[2], rays.shape[3]
        if self.backend == "rows":
            table = rays.reshape(-1, batch * channels)
            picked = table.index_select(0, self.ray_index) * self.weights
            # whole rows of N·C values per index: ONNX Runtime adds them slice by slice (ScatterND), about ten
            # times faster than the per-element ScatterElements of "elements" (TorchScript: edgekd.export.backends.onnx)
            cells = table.new_zeros(self.cells, batch * channels).index_add(0, self.cell_index, picked)
            return cells.reshape(*self.grid.shape, batch, channels).permute(2, 3, 0, 1)
        flat = rays.reshape(-1, batch, channels).permute(1, 2, 0)                          # (N, C, rays)
        if self.backend == "dense":
            cells = torch.matmul(flat, self.ray_to_cell)
        else:
            picked = flat.index_select(2, self.ray_index) * self.weights
            index = self.cell_index.expand(batch, channels, -1)
            cells = flat.new_zeros(batch, channels, self.cells).scatter_add(2, index, picked)
        return cells.reshape(batch, channels, *self.grid.shape)



def lidar_depth_probs(depth_map: torch.Tensor, bins: DepthBins, stride: int) -> torch.Tensor:
    """One-hot depth from a sparse LiDAR depth map (N, 1, H, W) (0 = no return) at the feature resolution.

    Each feature pixel gets the share of its stride×stride block's returns in each bin: exactly one-hot when the
    block holds one return (or all returns share a bin); all zeros — so zero lifted features — when it has none.
    """
    index = bins.index(depth_map[:, 0])                                                  # (N, H, W)
    one_hot = torch.nn.functional.one_hot(index.clamp_min(0), bins.num).permute(0, 3, 1, 2).to(depth_map.dtype)
    one_hot = one_hot * (index >= 0).unsqueeze(1).to(depth_map.dtype)
    counts = torch.nn.functional.avg_pool2d(one_hot, stride) * stride * stride           # returns per bin
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)
