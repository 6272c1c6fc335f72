"""Kernel Inception Distance (Bińkowski et al., ICLR 2018): the unbiased MMD² with the cubic polynomial kernel.

    k(x, y) = (x . y / d + 1)^3                                                    (d: the feature dimension)
    KID(X, Y) = 1/(m(m-1)) sum_{i != i'} k(x_i, x_i') + 1/(n(n-1)) sum_{j != j'} k(y_j, y_j')
                - 2/(m n) sum_{i, j} k(x_i, y_j)
X [m, d] generated, Y [n, d] real (m, n >= 2). Each sum is a U-statistic, so E[KID] = MMD² at every size: unlike
FID, KID has no size bias (it can be negative when the two laws are close). torchmetrics' KernelInceptionDistance
averages this over random equal-size subsets of both sets; with one subset holding every row (m = n) the two agree
(tests/test_metrics_kid.py).

`SubsetKID` evaluates many subsets of one generated pool against one real set: with the pool's Gram matrix
G = k(pool, pool) [N, N] and the pool rows' mean kernel to the real set c_i = 1/n sum_j k(x_i, y_j) computed once, a
subset with 0/1 weights w (m = sum w) has
    KID(w) = (w^T G w - w . diag G) / (m (m - 1))  -  2 w . c / m  +  real term
where the real term (the second sum) is the same for every subset: `relative` leaves it out (a difference of two
subsets' KIDs, and a randomization test on the linear scale, do not depend on it); `__call__` adds it.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from benchmark.errors import ConfigError
from metrics.frechet import as_feature_matrix

DEGREE, COEF = 3, 1.0  # Bińkowski et al.'s kernel (torchmetrics' defaults); polynomial_kernel cubes by products
CHUNK_ROWS = 2048  # real rows per kernel block (memory: N x CHUNK_ROWS floats)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x_i, y_j) = (x_i . y_j / d + 1)^3 -> [len(x), len(y)] (float64), in place on the product and cubed by two
    multiplications (a third of pow's time; the same value to an ulp)."""
    base = x @ y.T
    base /= x.shape[1]
    base += COEF
    cube = np.multiply(base, base)
    cube *= base
    return cube


def _checked(generated, real) -> tuple[np.ndarray, np.ndarray]:
    gen, ref = as_feature_matrix(generated, "generated"), as_feature_matrix(real, "real")
    if gen.shape[1] != ref.shape[1]:
        raise ConfigError("generated", f"dimension {gen.shape[1]}", f"the real features' dimension {ref.shape[1]}")
    if gen.shape[0] < 2 or ref.shape[0] < 2:
        raise ConfigError("features", f"{gen.shape[0]} generated and {ref.shape[0]} real rows",
                          "at least 2 rows in each set (KID's U-statistics)")
    return gen, ref


def _off_diagonal_sum(x: np.ndarray) -> float:
    """sum_{i != i'} k(x_i, x_i') over the rows of x [n, d], in row blocks of CHUNK_ROWS against the rows from the
    block on (the kernel is symmetric: a block's own square once, less its trace, and twice the rest), so about
    n^2 / 2 kernel entries are computed, CHUNK_ROWS x n at a time."""
    total = 0.0
    for start in range(0, x.shape[0], CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, x.shape[0])
        block = polynomial_kernel(x[start:stop], x[start:])  # [stop - start, n - start]
        own = block[:, :stop - start]
        total += float(own.sum()) - float(np.trace(own)) + 2.0 * float(block[:, stop - start:].sum())
    return total


def kid(generated, real) -> float:
    """KID(generated [m, d], real [n, d]) by the module doc's formula (every kernel matrix formed once)."""
    gen, ref = _checked(generated, real)
    m, n = gen.shape[0], ref.shape[0]
    cross = sum(float(polynomial_kernel(gen, ref[s:s + CHUNK_ROWS]).sum()) for s in range(0, n, CHUNK_ROWS))
    return _off_diagonal_sum(gen) / (m * (m - 1)) + _off_diagonal_sum(ref) / (n * (n - 1)) - 2.0 * cross / (m * n)


class SubsetKID:
    """KID of subsets of a pool [N, d] against a real set [n, d] (module doc); subsets are boolean masks [R, N]."""

    def __init__(self, pool, real) -> None:
        self.pool, self.real = _checked(pool, real)
        self.gram = polynomial_kernel(self.pool, self.pool)
        self.to_real = sum(polynomial_kernel(self.pool, self.real[s:s + CHUNK_ROWS]).sum(axis=1)
                           for s in range(0, self.real.shape[0], CHUNK_ROWS)) / self.real.shape[0]

    def relative(self, masks: np.ndarray) -> np.ndarray:
        """[R] KID of each subset minus the real term (the same for every subset)."""
        w = np.atleast_2d(np.asarray(masks, dtype=np.float64))
        m = w.sum(axis=1)
        within = (np.einsum("rn,rn->r", w @ self.gram, w) - w @ np.diag(self.gram)) / (m * (m - 1.0))
        return within - 2.0 * (w @ self.to_real) / m

    @cached_property
    def real_term(self) -> float:
        """1/(n(n-1)) sum_{j != j'} k(y_j, y_j'): computed on first use (n^2 d work)."""
        n = self.real.shape[0]
        return _off_diagonal_sum(self.real) / (n * (n - 1))

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        """[R] KID of each subset against the real set."""
        return self.relative(masks) + self.real_term
