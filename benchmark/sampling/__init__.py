"""Sampling (layer 2, with estimators): DDIM, DDPM ancestral, DPM-Solver-2 with estimator hooks and per-sample seeding.

May import: errors, seeding, metrics, models, data, and the estimator interface. Never presets or anything above.
"""
from benchmark.sampling.context import BatchInfo, StepContext
from benchmark.sampling.engine import SampleResult, condition_labels, initial_labels, initial_noise, sample
from benchmark.sampling.schedule import SAMPLERS, GridStep, StepCoefficients, build_grid

__all__ = ["BatchInfo", "GridStep", "SAMPLERS", "SampleResult", "StepCoefficients", "StepContext",
           "build_grid", "condition_labels", "initial_labels", "initial_noise", "sample"]
