"""Which fitted last-layer Laplace posterior a run may reuse (issue 11 item 8).

A saved posterior is reused only when it was fitted with the settings the run asks for: the number of fit
images, the prior precision, the Hessian kind and the exact weights of the model (sha256 of its state dict,
`estimators.laplace.weights_digest`). Anything else is refitted. `LaplaceChoice` records what was used, so the
manifest can say which file (if any) served the run and why another one was passed over.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmark.errors import ConfigError
from estimators.laplace import FILE_FORMAT, HESSIANS, LastLayerLaplace, weights_digest

#: bayesdiff config keys that configure the posterior fit, not the estimator
LAPLACE_FIT_KEYS = ("fit_images", "prior_precision", "hessian")


@dataclass(frozen=True)
class LaplaceSettings:
    """What a run asks of its posterior: fit images, prior precision, Hessian kind ("ggn" or "ef")."""

    fit_images: int
    prior_precision: float = 1.0
    hessian: str = "ggn"

    def __post_init__(self) -> None:
        if isinstance(self.fit_images, bool) or not isinstance(self.fit_images, int) or self.fit_images < 1:
            raise ConfigError("fit_images", self.fit_images, "a positive integer", "set fit_images = 500")
        if not float(self.prior_precision) > 0:
            raise ConfigError("prior_precision", self.prior_precision, "a positive number", "set prior_precision = 1.0")
        if self.hessian not in HESSIANS:
            raise ConfigError("hessian", self.hessian, f"one of {', '.join(HESSIANS)}", 'set hessian = "ggn"')


@dataclass
class LaplaceChoice:
    """The posterior a run uses: `path` of the file it came from or was saved to (None: memory only),
    `source` "loaded" or "fitted", and `rejected` {path: why it did not match} of the files passed over."""

    path: Path | None
    source: str
    settings: LaplaceSettings
    weights_digest: str
    rejected: dict[str, str] = field(default_factory=dict)
    #: how a fitted posterior's images were labelled: "the data's labels", "the null class ...", "uniform random
    #: labels ..." (a class-conditional model on unlabelled data), "none (unconditional model)"; None when loaded
    fit_labels: str | None = None
    #: how many images a fitted posterior saw: fewer than settings.fit_images when the data holds fewer (the
    #: default asks for 500); None when loaded
    fitted_images: int | None = None

    def record(self) -> dict:
        """A JSON-ready record for the manifest: `fit_images` is the number of images the posterior was fitted on
        (the images that exist, never the number asked for when the data holds fewer)."""
        fit_images = self.settings.fit_images if self.fitted_images is None else self.fitted_images
        return {"path": None if self.path is None else str(self.path), "source": self.source,
                "fit_images": fit_images, "prior_precision": self.settings.prior_precision,
                "hessian": self.settings.hessian, "weights_sha256": self.weights_digest,
                "rejected": dict(self.rejected), "fit_labels": self.fit_labels}


def mismatch(path: Path, settings: LaplaceSettings, digest: str, prediction_type: str = "epsilon") -> str | None:
    """Why the posterior saved at `path` does not fit `settings`, the weights `digest` and the model's prediction type
    (None: it matches; a file saved before the type was recorded counts as epsilon)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable or foreign file: refit rather than fail
        return f"unreadable ({type(err).__name__})"
    if not isinstance(state, dict) or state.get("format") != FILE_FORMAT:
        return "not a last-layer Laplace file"
    checks = (("weights_digest", state.get("weights_digest"), digest, "model weights sha256"),
              ("num_images", state.get("num_images"), settings.fit_images, "fit_images"),
              ("prior_precision", state.get("prior_precision"), float(settings.prior_precision), "prior_precision"),
              ("hessian", state.get("hessian"), settings.hessian, "hessian"),
              ("prediction_type", state.get("prediction_type", "epsilon"), prediction_type, "prediction_type"))
    for _, saved, wanted, label in checks:
        if saved != wanted:
            return f"{label}: saved {saved!r}, run asks {wanted!r}"
    return None


def choose_posterior(model, settings: LaplaceSettings, candidates: list[Path | None]) -> tuple[LastLayerLaplace | None,
                                                                                               LaplaceChoice]:
    """(the first matching saved posterior, loaded, or None; the choice so far) among `candidates` in order."""
    digest = weights_digest(model)
    kind = str(getattr(model, "prediction_type", "epsilon") or "epsilon")
    rejected: dict[str, str] = {}
    for path in candidates:
        if path is None or not path.is_file():
            continue
        why = mismatch(path, settings, digest, kind)
        if why is None:
            la = LastLayerLaplace(model, prior_precision=settings.prior_precision, hessian=settings.hessian)
            return la.load(path), LaplaceChoice(path, "loaded", settings, digest, rejected)
        rejected[str(path)] = why
    return None, LaplaceChoice(None, "fitted", settings, digest, rejected)
