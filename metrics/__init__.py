"""Metrics: Fréchet distance / FID, improved precision & recall, sparsification (AUSE / AURG),
bootstrap confidence intervals, FID∞, the filtered-set FID, and the feature extractors they run on. Pure functions
over arrays; `SparsificationError` and `FilteredFID` wrap two of them as torchmetrics.Metric classes.
`METRIC_INFO` says, per reported metric, which direction is better and what its interval covers."""
from metrics.bootstrap import (
    ConfidenceInterval,
    bootstrap_ci,
    fid_bootstrap,
    paired_fid_difference,
    paired_sets_fid_difference,
)
from metrics.cache import cached_features, feature_cache_key
from metrics.features import (
    ClassifierFeatures,
    FeatureExtractor,
    InceptionFeatures,
    build_feature_extractor,
    resolve_inception_weights,
)
from metrics.fid_infinity import FIDInfinity, fid_infinity, fid_infinity_bootstrap, fid_infinity_difference_bootstrap
from metrics.filtered import FilteredFIDResult, filtered_fid, keep_lowest, random_subset
from metrics.frechet import FeatureStats, feature_statistics, fid_from_features, fid_from_stats, frechet_distance
from metrics.info import METRIC_INFO, MetricInfo, base_metric_name, metric_info
from metrics.pr_bootstrap import PrecisionRecallCI, precision_recall_bootstrap
from metrics.precision_recall import PrecisionRecall, precision_recall
from metrics.sparsification import SparsificationResult, sparsification, sparsification_pooled

__all__ = [
    "METRIC_INFO", "base_metric_name", "bootstrap_ci", "build_feature_extractor", "cached_features",
    "ClassifierFeatures", "ConfidenceInterval", "FilteredFID", "SparsificationError", "feature_cache_key",
    "feature_statistics", "FeatureExtractor",
    "FeatureStats", "fid_bootstrap", "fid_from_features", "fid_from_stats", "fid_infinity",
    "fid_infinity_bootstrap", "fid_infinity_difference_bootstrap", "FIDInfinity", "filtered_fid",
    "FilteredFIDResult", "frechet_distance", "InceptionFeatures", "keep_lowest", "metric_info", "MetricInfo",
    "paired_fid_difference", "paired_sets_fid_difference", "precision_recall", "precision_recall_bootstrap",
    "PrecisionRecall", "PrecisionRecallCI", "random_subset", "resolve_inception_weights", "sparsification",
    "sparsification_pooled", "SparsificationResult",
]


#: names imported on first use (`__getattr__`), listed by `dir(metrics)` all the same (`__dir__`)
LAZY = ("SparsificationError", "FilteredFID")


def __getattr__(name: str):
    """The torchmetrics classes (SparsificationError, FilteredFID) are imported on first use: torchmetrics is
    a dependency, but importing it costs a second the rest of the package does not need."""
    if name in LAZY:
        from metrics import torchmetrics_api

        return getattr(torchmetrics_api, name)
    raise AttributeError(f"module 'metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and the lazy ones (tab completion and dir() show SparsificationError, FilteredFID)."""
    return sorted(set(globals()) | set(LAZY))
