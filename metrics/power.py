"""Power of a test: the minimum detectable effect (Cohen 1988), shared by every test of metrics.significance and
metrics.bootstrap.

    MDE = (q_{1 - alpha/2} + q_{power}) * se

q the quantiles of the test's law (Student t with the test's degrees of freedom, normal when none), se its standard
error under the null: the smallest |effect| that a two-sided test at level alpha rejects with probability `power`
(80 % by default) when the effect shifts the statistic without reshaping its law.
"""
from __future__ import annotations

from scipy import stats

POWER = 0.80


def detectable_effect(scale: float, dof: float | None = None, alpha: float = 0.05, power: float = POWER) -> float:
    """MDE = (q_{1-alpha/2} + q_{power}) * scale: the |effect| a two-sided test of standard error `scale` rejects
    with probability `power` at level `alpha` (q: Student t quantiles with `dof` degrees of freedom, normal when
    dof is None)."""
    law = stats.norm if dof is None else stats.t(dof)
    return float((law.ppf(1.0 - alpha / 2.0) + law.ppf(power)) * scale)


def detectable_at_level(mde: float, alpha: float, base_alpha: float = 0.05, power: float = POWER,
                        dof: float | None = None) -> float:
    """An MDE computed at `base_alpha` moved to level `alpha` (e.g. a family's Bonferroni level 0.05 / m):
    mde * (q_{1-alpha/2} + q_power) / (q_{1-base_alpha/2} + q_power), q the t quantiles with `dof` degrees of
    freedom of the test (normal when None; at small levels the t's heavier tails matter: at 0.05 / 40 with 59
    degrees of freedom the normal ratio would leave 73 % power instead of 80 %)."""
    law = stats.norm if dof is None else stats.t(dof)
    return float(mde * (law.ppf(1.0 - alpha / 2.0) + law.ppf(power)) / (law.ppf(1.0 - base_alpha / 2.0)
                                                                         + law.ppf(power)))
