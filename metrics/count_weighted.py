"""Feature statistics and FID of one bootstrap / subsample replicate given as row counts, without copying rows
(the replicates of metrics.bootstrap and the protocols' random K-subsets)."""
from __future__ import annotations

import numpy as np

from benchmark.errors import ConfigError
from metrics.fid_decomposition import FIDTerms
from metrics.frechet import FeatureStats, as_feature_matrix


def drawn_rows(counts: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(n = sum of counts, indices of the rows drawn at least once, their counts as float64) of a resample."""
    total = int(counts.sum())
    if total < 2:
        raise ConfigError("subset size", total, "at least 2 rows in every bootstrap replicate",
                          "use larger subsets (tens of rows or more) for bootstrap intervals")
    drawn = np.flatnonzero(counts)
    return total, drawn, counts[drawn].astype(np.float64)


class CountWeightedStatistics:
    """Feature statistics of resamples given as counts, without copying rows. features [N, D].

    With rows centred once at their mean m and counts c_i (n = sum c_i):
        mu = m + sum_i c_i (x_i - m) / n
        sigma = (sum_i c_i (x_i - m)(x_i - m)^T - n (mu - m)(mu - m)^T) / (n - 1)
    which equals the ddof = 1 covariance of the resampled rows.
    """

    def __init__(self, features) -> None:
        array = as_feature_matrix(features)
        self.centre = array.mean(axis=0)
        self.centred = array - self.centre

    def __call__(self, counts: np.ndarray) -> FeatureStats:
        total, drawn, weights = drawn_rows(counts)
        scaled = self.centred[drawn] * np.sqrt(weights)[:, None]
        shift = np.sqrt(weights) @ scaled / total
        scatter = scaled.T @ scaled
        sigma = (scatter - total * np.outer(shift, shift)) / (total - 1)
        return FeatureStats(mu=self.centre + shift, sigma=sigma, n=total)


class FixedReferenceFID:
    """FID against fixed reference statistics of count-weighted resamples of features [N, D].

    With the reference covariance sigma_r = B B^T (B = psd_factor, [D, r]) and the rows centred once at
    their mean m and projected once, Y = (X - m) B [N, r], a resample with counts c (n = sum c) has
        shift = sum_i c_i (x_i - m) / n,  ybar = B^T shift               (mu = m + shift)
        tr(sigma) = (sum_i c_i ||x_i - m||^2 - n ||shift||^2) / (n - 1)
        B^T sigma B = Z^T Z / (n - 1),  Z = rows sqrt(c_i) (y_i - ybar) of the drawn rows
        FID = ||mu_r - mu||^2 + tr(sigma_r) + tr(sigma) - 2 sum_i sqrt(eig_i(Z^T Z) / (n - 1))  (frechet.py)
    Z^T Z and Z Z^T share their nonzero eigenvalues, so the smaller of the two is decomposed: a
    replicate costs one Gram product and one eigvalsh of size min(drawn rows, r), no D^3 products.
    With fewer rows than r, the Gram matrix G = Y Y^T [N, N] is computed once and a replicate reads Z Z^T
    from it: with w the counts of the drawn rows d and a = G_dd w / n (= Y_d ybar),
        Z Z^T = diag(sqrt w) (G_dd - a 1^T - 1 a^T + (w . a / n) 1 1^T) diag(sqrt w)
    and the mean terms from K = (X - m)(X - m)^T and v = (X - m)(mu_r - m), both cached:
        ||shift||^2 = w^T K_dd w / n^2,   ||mu_r - mu||^2 = ||mu_r - m||^2 - 2 w . v_d / n + ||shift||^2
    so a replicate costs one eigvalsh of its drawn rows and no product with r or D.
    """

    def __init__(self, reference: FeatureStats, features) -> None:
        array = as_feature_matrix(features)
        factor = reference.factor  # cached on the statistics: one eigh per reference, not per subset
        self.centre = array.mean(axis=0)
        self.centred = array - self.centre
        self.projected = self.centred @ factor
        self.squared_norms = np.einsum("ij,ij->i", self.centred, self.centred)
        self.mean_gap = reference.mu - self.centre
        self.reference_trace = float(np.trace(reference.sigma))
        rows, rank = self.projected.shape
        self.gram = self.projected @ self.projected.T if rows < rank else None
        # for the mean terms in O(drawn rows^2): K = (X - m)(X - m)^T and (X - m)(mu_r - m)
        self.centred_gram = self.centred @ self.centred.T if rows < rank else None
        self.along_gap = self.centred @ self.mean_gap
        self._scatter: np.ndarray | None = None  # Y^T Y [r, r], on the first replicate that updates it

    def full(self) -> float:
        """FID of the features themselves (every row once): the same value as fid_from_stats(reference,
        feature_statistics(features)), without its D x D x D products."""
        return self(np.ones(self.centred.shape[0], dtype=np.int64))

    def __call__(self, counts: np.ndarray) -> float:
        return self.terms(counts).total

    def terms(self, counts: np.ndarray) -> FIDTerms:
        """The FID of the resample split into its terms (metrics.fid_decomposition); `total` is the FID."""
        total, drawn, weights = drawn_rows(counts)
        if self.gram is not None:
            pair = np.ix_(drawn, drawn)
            gram_drawn = self.gram[pair]
            along_mean = gram_drawn @ weights / total
            root = np.sqrt(weights)
            gram = (gram_drawn - along_mean[:, None] - along_mean[None, :] + weights @ along_mean / total) \
                * root[:, None] * root[None, :]
            shift_squared = weights @ self.centred_gram[pair] @ weights / total**2  # ||shift||^2
            gap_squared = self.mean_gap @ self.mean_gap - 2.0 * weights @ self.along_gap[drawn] / total + shift_squared
        else:
            if 2 * np.count_nonzero(counts != 1) < drawn.size:  # most rows drawn once: update the full scatter
                shift, gram = self._updated_scatter(counts, total)
            else:
                shift, projected = weights @ self.centred[drawn] / total, self.projected[drawn]
                rows = (projected - weights @ projected / total) * np.sqrt(weights)[:, None]
                gram = rows @ rows.T if rows.shape[0] < rows.shape[1] else rows.T @ rows
            shift_squared, gap = shift @ shift, self.mean_gap - shift
            gap_squared = gap @ gap
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(gram) / (total - 1), 0.0, None)).sum()
        trace = (weights @ self.squared_norms[drawn] - total * shift_squared) / (total - 1)
        return FIDTerms(float(gap_squared), float(trace), self.reference_trace, -2.0 * float(cross))

    def _updated_scatter(self, counts: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
        """(shift [D], Z^T Z [r, r]) of counts that differ from 1 on few rows e (a subsample: the rows left out), from
        S = Y^T Y computed once: Z^T Z = S + Y_e^T diag(c_e - 1) Y_e - n ybar ybar^T (a product over e, not n)."""
        if self._scatter is None:
            self._scatter = self.projected.T @ self.projected
        weights, changed = counts.astype(np.float64), np.flatnonzero(counts != 1)
        projected, ybar = self.projected[changed], weights @ self.projected / total
        gram = self._scatter + (projected * (weights[changed] - 1.0)[:, None]).T @ projected
        return weights @ self.centred / total, gram - total * np.outer(ybar, ybar)
