"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019), computed in chunks.

The manifold of a feature set is the union of balls centred at its points, each with radius equal to
the distance to its k-th nearest neighbour in the same set (the point itself excluded):

    manifold(Phi) = union_{phi in Phi} B(phi, NN_k(phi, Phi \\ {phi}))                       (Eq. 2)
    precision = (1/|Phi_g|) sum_{phi_g} 1[phi_g in manifold(Phi_r)]                          (Eq. 1)
    recall    = (1/|Phi_r|) sum_{phi_r} 1[phi_r in manifold(Phi_g)]

"inside" is d(phi, centre) <= radius (as in the reference implementations). Distances are computed
block by block as ||a||^2 + ||b||^2 - 2 a.b in float32 on torch and compared squared, with one formula
for both the radii and the membership tests, so that 50k x 2048 sets never need an N x N matrix.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from benchmark.errors import ConfigError, NonFiniteError

DEFAULT_CHUNK_SIZE = 2048


@dataclass(frozen=True)
class PrecisionRecall:
    """precision, recall in [0, 1] and their harmonic mean f1 = 2 P R / (P + R) (0 when both are 0)."""

    precision: float
    recall: float
    f1: float


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean 2 P R / (P + R), defined as 0 when P + R = 0."""
    total = precision + recall
    return 0.0 if total == 0 else 2.0 * precision * recall / total


def as_feature_tensor(features, field: str, device: torch.device | str | None = None) -> torch.Tensor:
    """numpy/torch features [N, D] as a float32 tensor on `device` (default: where they are, numpy on CPU)."""
    tensor = features.detach() if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    if tensor.ndim != 2:
        raise ConfigError(field, f"array of shape {tuple(tensor.shape)}", "a 2-D [N, D] feature matrix")
    tensor = tensor.to(device=device if device is not None else tensor.device, dtype=torch.float32)
    if not torch.isfinite(tensor).all():
        raise NonFiniteError(f"{field} contains NaN or Inf. Fix: check the feature extractor's inputs.")
    return tensor


def real_and_fake_tensors(real_features, fake_features, device: torch.device | str | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets as float32 tensors on one device (the real set's unless given), same dimension D."""
    real = as_feature_tensor(real_features, "real_features", device)
    fake = as_feature_tensor(fake_features, "fake_features", real.device)
    if real.shape[1] != fake.shape[1]:
        raise ConfigError("fake_features", f"dimension {fake.shape[1]}",
                          f"the real features' dimension {real.shape[1]}")
    return real, fake


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError("chunk_size", chunk_size, "a positive integer (rows per distance block)")


def _squared_distance_block(rows: torch.Tensor, rows_sq: torch.Tensor, cols: torch.Tensor,
                            cols_sq: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j for rows [n, D], cols [m, D] -> [n, m], >= 0."""
    block = torch.addmm(cols_sq.unsqueeze(0), rows, cols.T, beta=1.0, alpha=-2.0)
    return block.add_(rows_sq.unsqueeze(1)).clamp_(min=0.0)


def _symmetric_diagonal_block(block: torch.Tensor) -> torch.Tensor:
    """A diagonal block [c, c] of a set's distances made exactly symmetric: its upper triangle (i < j) mirrored, and
    inf on the diagonal (a point is not its own neighbour). Every pair (i, j) of one set then has the bits of the
    entry computed with the lower index as the row, wherever the pair sits, whatever the blocks."""
    upper = torch.triu(block, diagonal=1)
    return (upper + upper.T).fill_diagonal_(float("inf"))


def _within_blocks(points: torch.Tensor, chunk_size: int) -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """(rows, cols, block) over the blocks on and above the diagonal of a set's distances [N, N] (the lower ones
    are their transposes): about N^2 / 2 entries computed. Diagonal blocks come from `_symmetric_diagonal_block`."""
    norms = (points * points).sum(dim=1)
    for start in range(0, points.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, points.shape[0]))
        for col_start in range(start, points.shape[0], chunk_size):
            cols = slice(col_start, min(col_start + chunk_size, points.shape[0]))
            block = _squared_distance_block(points[rows], norms[rows], points[cols], norms[cols])
            yield rows, cols, (_symmetric_diagonal_block(block) if col_start == start else block)


def squared_distances(rows: torch.Tensor, cols: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """The full matrix ||a_i - b_j||^2 of rows [n, D] and cols [m, D] -> [n, m], computed in the same
    chunk_size x chunk_size blocks as `knn_squared_radii` and `inside_manifold`, so every entry has the same bits as
    there (metrics.pr_bootstrap reads its replicates' manifolds from it). `rows is cols`: a set's own distances,
    symmetric with inf on the diagonal, as `knn_squared_radii` sees them. Memory: n m floats."""
    _check_chunk_size(chunk_size)
    out = torch.empty(rows.shape[0], cols.shape[0], dtype=rows.dtype, device=rows.device)
    if rows is cols:
        for row_slice, col_slice, block in _within_blocks(rows, chunk_size):
            out[row_slice, col_slice] = block
            out[col_slice, row_slice] = block.T
        return out
    row_norms, col_norms = (rows * rows).sum(dim=1), (cols * cols).sum(dim=1)
    for start in range(0, rows.shape[0], chunk_size):
        stop = min(start + chunk_size, rows.shape[0])
        for col_start in range(0, cols.shape[0], chunk_size):
            col_stop = min(col_start + chunk_size, cols.shape[0])
            out[start:stop, col_start:col_stop] = _squared_distance_block(
                rows[start:stop], row_norms[start:stop], cols[col_start:col_stop], col_norms[col_start:col_stop])
    return out


def _k_smallest(nearest: torch.Tensor, block: torch.Tensor, k: int) -> torch.Tensor:
    """The k smallest of each row of [nearest | block] ([r, k] and [r, c] -> [r, k])."""
    return torch.topk(torch.cat([nearest, block], dim=1), k, dim=1, largest=False).values


def knn_squared_radii(points: torch.Tensor, k: int = 3, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Squared distance of every point [N, D] to its k-th nearest neighbour among the others -> [N].

    The point itself is excluded by index (an exact duplicate elsewhere in the set still counts as a
    neighbour at distance 0). Each block above the diagonal serves its rows and, transposed, its columns, so
    N^2 / 2 distances are computed. Memory: O(chunk_size^2) per block, never O(N^2).
    """
    _check_chunk_size(chunk_size)
    count = points.shape[0]
    if not isinstance(k, int) or k < 1 or k >= count:
        raise ConfigError("k", k, f"an integer in [1, {count - 1}] (smaller than the set of {count} points)")
    nearest = torch.full((count, k), float("inf"), dtype=points.dtype, device=points.device)
    for rows, cols, block in _within_blocks(points, chunk_size):
        nearest[rows] = _k_smallest(nearest[rows], block, k)
        if cols != rows:
            nearest[cols] = _k_smallest(nearest[cols], block.T, k)
    return nearest.max(dim=1).values


_RADII_CACHE: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_RADII_CACHE_SIZE = 4


def fixed_set_radii(points: torch.Tensor, k: int = 3, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """`knn_squared_radii(points, k, chunk_size)`, remembered for the last few sets by content (sha256 of the
    CPU bytes): a real set's manifold is the same for every fake subset compared with it (one bootstrap per
    filter), so it is computed once per process. The same computation, so the same bits."""
    array = points.detach().cpu().contiguous().numpy()
    key = (hashlib.sha256(memoryview(array).cast("B")).hexdigest(), array.shape, array.dtype.str, k, chunk_size,
           str(points.device))
    if key in _RADII_CACHE:
        _RADII_CACHE.move_to_end(key)
        return _RADII_CACHE[key]
    radii = knn_squared_radii(points, k, chunk_size)
    _RADII_CACHE[key] = radii
    while len(_RADII_CACHE) > _RADII_CACHE_SIZE:
        _RADII_CACHE.popitem(last=False)
    return radii


def inside_manifold(queries: torch.Tensor, centres: torch.Tensor, squared_radii: torch.Tensor,
                    chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """For each query [Q, D]: is ||q - c_j||^2 <= r_j^2 for some centre c_j [N, D]? -> bool [Q]."""
    _check_chunk_size(chunk_size)
    query_norms = (queries * queries).sum(dim=1)
    centre_norms = (centres * centres).sum(dim=1)
    inside = torch.zeros(queries.shape[0], dtype=torch.bool, device=queries.device)
    for start in range(0, queries.shape[0], chunk_size):
        stop = min(start + chunk_size, queries.shape[0])
        for col_start in range(0, centres.shape[0], chunk_size):
            col_stop = min(col_start + chunk_size, centres.shape[0])
            block = _squared_distance_block(queries[start:stop], query_norms[start:stop],
                                            centres[col_start:col_stop], centre_norms[col_start:col_stop])
            inside[start:stop] |= (block <= squared_radii[col_start:col_stop].unsqueeze(0)).any(dim=1)
    return inside


def precision_recall(real_features, fake_features, k: int = 3, chunk_size: int = DEFAULT_CHUNK_SIZE,
                     device: torch.device | str | None = None) -> PrecisionRecall:
    """Improved precision / recall of fake_features [M, D] against real_features [N, D] (see module doc).

    Inputs are numpy arrays or tensors; the computation runs in float32 on `device` (default: the
    device of the inputs, CPU for numpy).
    """
    real, fake = real_and_fake_tensors(real_features, fake_features, device)
    with torch.no_grad():
        precision = inside_manifold(fake, real, knn_squared_radii(real, k, chunk_size), chunk_size)
        recall = inside_manifold(real, fake, knn_squared_radii(fake, k, chunk_size), chunk_size)
    p, r = precision.double().mean().item(), recall.double().mean().item()
    return PrecisionRecall(precision=p, recall=r, f1=f1_score(p, r))
