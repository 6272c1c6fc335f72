"""The ground truth catches a sign-flipped aleatoric row (issue 24 item 2).

Reference: the exact-score target of an aleatoric estimator is the quantity U the estimator estimates, computed
by the UN-negated estimator on the exact score. A row with negate = true reports -U_network, whose rank
correlation with U_exact is exactly -1 x that of the plain row (Spearman is odd under negating one argument;
the negated row uses the same draws, seeded by the estimator's type). Before the fix the target was a copy
of the negated estimator (-U_exact), so both rows scored the same.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import estimators
from benchmark.models import GaussianMixtureModel
from benchmark.protocols.ground_truth_targets import EXACT_PREFIX, with_observers
from benchmark.sampling import initial_noise, sample
from tests.helpers import tiny_gmm_means

pytestmark = pytest.mark.usefixtures("single_thread")


def test_negated_row_gets_the_opposite_correlation_with_the_exact_score_target(gmm):
    network = GaussianMixtureModel(tiny_gmm_means(3, (1, 4, 4)) + 0.1, std=0.25, weights=[0.4, 0.4, 0.2])

    def make() -> list:
        plain = estimators.create("sensitivity", m=3, window=(30, 50))
        neg = estimators.create("sensitivity", m=3, window=(30, 50), negate=True)
        neg.name = "sensitivity_neg"
        return [plain, neg]

    idx = torch.arange(16)
    x_T = initial_noise(0, idx, gmm.sample_shape).to(torch.float64)
    out = sample(network, x_T, steps=20, estimators=with_observers(make, gmm)(), seed=0, indices=idx).uncertainty
    plain, neg = out["sensitivity"], out["sensitivity_neg"]
    exact_plain, exact_neg = out[EXACT_PREFIX + "sensitivity"], out[EXACT_PREFIX + "sensitivity_neg"]
    # the target is the quantity itself: positive variances, identical for both rows
    assert bool((exact_neg.score > 0).all())
    torch.testing.assert_close(exact_neg.pixel, exact_plain.pixel, rtol=0, atol=0)
    rho_plain = spearmanr(plain.score.numpy(), exact_plain.score.numpy()).statistic
    rho_neg = spearmanr(neg.score.numpy(), exact_neg.score.numpy()).statistic
    assert rho_plain > 0.5, rho_plain  # the network is close to the oracle: a useful aleatoric row
    assert rho_neg == pytest.approx(-rho_plain, abs=1e-12)
    pixel_plain = np.mean([spearmanr(a, b).statistic for a, b in
                           zip(plain.pixel.flatten(1).numpy(), exact_plain.pixel.flatten(1).numpy())])
    pixel_neg = np.mean([spearmanr(a, b).statistic for a, b in
                         zip(neg.pixel.flatten(1).numpy(), exact_neg.pixel.flatten(1).numpy())])
    assert pixel_plain > 0 and pixel_neg == pytest.approx(-pixel_plain, abs=1e-12)


def test_the_twin_does_not_change_the_estimator_it_copies(gmm):
    """The row keeps its negate option; only the twin's copy has it off."""
    neg = estimators.create("sensitivity", m=2, window=(40, 50), negate=True)
    made = with_observers(lambda: [neg], gmm)()
    twin = next(e for e in made if e.name == EXACT_PREFIX + "sensitivity")
    assert neg.negate is True and twin.inner.negate is False and twin.inner is not neg
