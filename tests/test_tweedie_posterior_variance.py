"""`tweedie_posterior_variance` against the Gaussian mixture's closed-form Var[x0 | x_t] (benchmark.models.gmm), and
Hutchinson's probe estimator against the variance formula Eq. V / Eq. T on the exact Jacobian (autograd)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from benchmark.data.gmm import build_oracle
from benchmark.errors import ConfigError
from benchmark.sampling import sample
from estimators import create
from estimators.jacobian_diagonal import hutchinson_diagonal, hutchinson_variance, rademacher_like, trace_variance
from estimators.tweedie_variance import eps_jvp, posterior_variance, tweedie_variance

PROBES = 16  # the estimator's default: the stated probe count


@pytest.fixture(scope="module")
def oracle():
    return build_oracle()


def noised(oracle, t: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x0 = oracle.sample_data(n, generator=gen).double()
    ab = float(oracle.alphas_cumprod[t])
    return (ab ** 0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(x0.shape, generator=gen, dtype=torch.float64)).float()


def exact_eps_jacobian(oracle, x: torch.Tensor, t: int) -> torch.Tensor:
    """d eps* / d x_t [D,D] of one state x [1,C,H,W], by reverse-mode autograd in float64."""
    d = x.numel()
    f = lambda z: oracle.predict_eps(z.reshape(x.shape), torch.tensor([t])).reshape(d)  # noqa: E731
    return jacobian(f, x.double().reshape(d))


def test_identity_is_exact_with_the_exact_jacobian_diagonal(oracle):
    """(s^2/a^2)(1 - s diag(d eps*/dx)) is the mixture's Var[x0 | x_t] (no probes: the identity itself)."""
    for t in (50, 300, 600):
        x = noised(oracle, t, 1, seed=t)
        diag = exact_eps_jacobian(oracle, x, t).diagonal().reshape(x.shape)
        got = tweedie_variance(diag, float(oracle.alphas_cumprod[t]))
        want = oracle.posterior_variance(x.double(), t)
        torch.testing.assert_close(got, want, rtol=2e-4, atol=1e-7)


def test_matches_closed_form_on_the_configured_window_within_5_percent(oracle):
    """DDIM 50 steps on the mixture; at each step of the default window the map is Var[x0 | x_t] of the closed form
    at the very states of the trajectory, within 5 % per pixel at the default probe count; NFEs counted."""
    x_T = torch.randn((6, *oracle.sample_shape), generator=torch.Generator().manual_seed(3))
    est = create("tweedie_posterior_variance", keep_steps=True)
    assert est.probes == PROBES
    window = range(45, 49)
    out = sample(oracle, x_T, steps=50, estimators=[est], keep_states=window)
    res = out.uncertainty["tweedie_posterior_variance"]
    assert res.nfe == pytest.approx(2 * PROBES * len(window))
    total = torch.zeros_like(res.pixel, dtype=torch.float64)
    for index in window:
        t = int(sorted(res.per_step, reverse=True)[index - window.start])
        want = oracle.posterior_variance(out.states[index].double(), t)
        got = res.per_step[t].double()
        assert float(((got - want).abs() / want).max()) < 0.05, t
        total += want
    torch.testing.assert_close(res.pixel.double(), total, rtol=0.05, atol=0.0)


def test_score_between_modes_is_unbiased_with_the_spread_of_eq_t(oracle):
    """At t = 500 (x_t between modes: a dense between-mode covariance) the score (sum over pixels) of 300 independent
    16-probe estimates centres on the closed form and spreads as Eq. T says (here about 8 % of the score: between
    modes the default probe count is not enough for 5 %; the window's late steps are, see the test above)."""
    t, reps = 500, 300
    x = noised(oracle, t, 1, seed=11)
    ab = float(oracle.alphas_cumprod[t])
    probes = rademacher_like(torch.randn((PROBES * reps, 1, *x.shape[1:]), generator=torch.Generator().manual_seed(5)))
    rows = posterior_variance(oracle, x.expand(reps, -1, -1, -1).contiguous(), t, ab,
                              probes.reshape(PROBES, reps, *x.shape[1:]))  # reps independent estimates
    scores = rows.double().flatten(1).sum(1)
    want = float(oracle.posterior_variance(x.double(), t).sum())
    sd = (1 - ab) ** 1.5 / ab * trace_variance(exact_eps_jacobian(oracle, x, t), PROBES) ** 0.5  # d enters as s^3/a^2
    assert float(scores.std()) == pytest.approx(sd, rel=0.15)
    assert abs(float(scores.mean()) - want) < 3.5 * sd / reps ** 0.5
    assert 0.04 < sd / want < 0.12


def test_probe_estimator_variance_and_bias_match_eq_v(oracle):
    """Over 3000 independent K = 2 estimates at a between-modes state, the mean is diag(J) (unbiased) and the
    variance per pixel is Eq. V computed from the exact Jacobian."""
    t, k, reps = 500, 2, 3000
    x = noised(oracle, t, 1, seed=7)
    jac = exact_eps_jacobian(oracle, x, t)
    gen = torch.Generator().manual_seed(0)
    probes = rademacher_like(torch.randn((k * reps, 1, *x.shape[1:]), generator=gen, dtype=torch.float64))
    jvp = eps_jvp(oracle, x.double(), t, None)
    products = probes * jvp(probes)  # [k*reps,1,C,H,W]
    estimates = products.reshape(reps, k, -1).mean(1)  # [reps, D]: each row one K = 2 estimate (Eq. H)
    want_var = hutchinson_variance(jac, k)
    got_var = estimates.var(0)
    assert float(got_var.sum() / want_var.sum()) == pytest.approx(1.0, abs=0.06)
    mixing = want_var > 1e-3 * want_var.max()  # border pixels are -1 in every prototype: no off-diagonal terms
    assert int(mixing.sum()) >= 30 and float(got_var[~mixing].max()) <= 1e-3 * float(want_var.max())
    assert float((got_var / want_var)[mixing].median()) == pytest.approx(1.0, abs=0.1)
    se = (want_var[mixing] / reps).sqrt()
    z = (estimates.mean(0)[mixing] - jac.diagonal()[mixing]) / se
    assert float(z.abs().max()) < 4.5 and abs(float(z.mean())) < 0.5
    off = (estimates[:, ~mixing] - jac.diagonal()[~mixing]).abs()  # quiet pixels: within 5 sd of Eq. V, every estimate
    assert bool((off <= 5 * want_var[~mixing].sqrt() + 1e-6).all())
    single = hutchinson_diagonal(jvp, probes[:k])
    assert single.shape == x.shape


def test_probe_count_is_validated():
    with pytest.raises(ConfigError, match="probes"):
        create("tweedie_posterior_variance", probes=1)


def test_probes_in_chunks_give_the_one_call_products(monkeypatch):
    """The probes go through the network in chunks of at most JVP_ROWS rows (memory): the same products as one call."""
    import torch

    from benchmark.models import DiffusersUNet
    from estimators import tweedie_variance
    from tests.helpers import tiny_unet

    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
                       add_attention=False).eval()  # as the shipped presets: no attention (see the next test)
    model = DiffusersUNet(unet)
    x_t = torch.randn(3, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    probes = torch.randint(0, 2, (5, *x_t.shape), generator=torch.Generator().manual_seed(1)).double() * 2 - 1
    probes = probes.to(x_t.dtype)
    whole = tweedie_variance.eps_jvp(model, x_t, 500, None)(probes)
    monkeypatch.setattr(tweedie_variance, "JVP_ROWS", 6)  # 2 probes of 3 states per call: chunks 2, 2, 1
    assert torch.allclose(tweedie_variance.eps_jvp(model, x_t, 500, None)(probes), whole, atol=1e-6)


def test_a_network_without_forward_mode_derivatives_is_refused_in_one_line():
    """diffusers attention runs torch's CPU attention kernels, which have no forward-mode derivative: the estimator
    says so (CapabilityError, exit 2) instead of a NotImplementedError from torch's internals."""
    import torch

    from benchmark.errors import CapabilityError
    from benchmark.models import DiffusersUNet
    from estimators import tweedie_variance
    from tests.helpers import tiny_unet

    model = DiffusersUNet(tiny_unet(dropout=0.0))  # UNet2DModel's mid block has attention
    x_t = torch.randn(2, *model.sample_shape)
    with pytest.raises(CapabilityError, match="forward-mode derivatives .* Fix: use a network without attention"):
        tweedie_variance.eps_jvp(model, x_t, 500, None)(torch.ones(2, *x_t.shape))
