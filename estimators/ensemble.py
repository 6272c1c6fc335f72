"""`ensemble`: the per-pixel spread of the predicted x0 over the members of a deep ensemble (Lakshminarayanan et al.
2017), the epistemic gold standard (HyperDM: EU = Var over members of E x0_hat; DECU's pairwise-distance score).

The run's model drives the shared trajectory; at a step t of the window each member k predicts, from the SAME
state x_t,
    x0_hat_k = (x_t - s_t eps_k(x_t, t)) / a_t                      (Tweedie / DDIM Eq. 12)
and the step's map is the unbiased variance over the M members
    U_t = 1/(M-1) sum_k (x0_hat_k - mean_k x0_hat_k)^2              (per pixel)
summed over the window like `sensitivity` (score: summed over pixels too). With score = "pairwise_mi" the sample
score is DECU's pairwise-distance estimate of the mutual information between the prediction and the member
(Berry et al., UAI 2024, PaiDE with the 'Wass_0' distance of deterministic members, applied per pixel and summed):
    I_t = - 1/M sum_i log( 1/M sum_j exp(-(x0_hat_i - x0_hat_j)^2) )    per pixel, in [0, log M]
(the pixel map stays the variance). Cost: M NFEs per sample and window step, each member counted on the run's model.

Members are of one of two types (`member_type`, and the run's record of it in `member_type_used`):
- "full": independently trained networks. `members` lists weight files or model folders (relative paths from the
  working directory). A folder is loaded as a model of its own (any layout the suite loads, e.g. a diffusers pipeline
  folder: members may have another architecture than the run's model); a file (.safetensors, .pt, .bin) is a state
  dict of the run's own network architecture, loaded into a copy of it. Default: the folders
  <model folder>/ensemble/member_* of `python -m benchmark train --what ensemble --dataset digits --out
  <model folder>/ensemble` (shipped for digits).
- "class-embedding": DECU's heads (Berry et al., UAI 2024) for a class-conditional model: members share the run's
  (frozen) network and differ only in the class-embedding table, swapped into the one network for each call
  (estimators.ensemble_heads; no copy of the network). A head file holds one table under "class_embedding.weight".
  Default: <model folder>/ensemble_heads/head_*.safetensors of `train --what ensemble --heads class-embedding`
  (shipped for fashion). Same cost: M NFEs per sample and window step, counted on the run's model.
member_type = "auto" takes full members where <model folder>/ensemble/member_* exist, else the heads; with a
`members` list the files say which type they are (one type per list).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from benchmark.errors import CapabilityError, ConfigError
from benchmark.models.class_heads import is_head_state
from estimators.ensemble_heads import MEMBER_TYPES, default_head_paths, head_member, member_type_of
from estimators.registry import register
from estimators.windowed import WindowedVarianceEstimator, sample_variance

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import BatchInfo, StepContext

SCORES = ("variance", "pairwise_mi")
MEMBER_FOLDER = "ensemble"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def member_predictions(members: list["DiffusionModel"], x_t: torch.Tensor, t: int, ab_t: float,
                       y: torch.Tensor | None = None) -> torch.Tensor:
    """x0_hat_k [M,B,C,H,W] of every member at the same states x_t [B,C,H,W]."""
    a_t, s_t = math.sqrt(ab_t), math.sqrt(1.0 - ab_t)
    return torch.stack([(x_t - s_t * m.eps(x_t.to(m.device), t, None if y is None else y.to(m.device)).to(x_t.device))
                        / a_t for m in members])


def pairwise_mutual_information(predictions: torch.Tensor) -> torch.Tensor:
    """DECU's PaiDE estimate per element from M deterministic predictions [M, ...]: -1/M sum_i log(1/M sum_j
    exp(-(p_i - p_j)^2)), which is 0 when all agree and log M when all are far apart."""
    m = predictions.shape[0]
    distances = (predictions.unsqueeze(0) - predictions.unsqueeze(1)).pow(2)  # [M,M,...]
    return -(torch.logsumexp(-distances, dim=1) - math.log(m)).mean(dim=0)


def default_member_paths(model: "DiffusionModel", member_type: str = "auto") -> list[Path]:
    """The members a model ships: full members <model folder>/ensemble/member_* (sorted by member number), else
    (member_type "auto") or instead ("class-embedding") its heads <model folder>/ensemble_heads/head_*; [] when
    there are none or the model has no local folder."""
    source = getattr(model, "source", None)
    folder = Path(source) / MEMBER_FOLDER if source and member_type != "class-embedding" else None
    full = []
    if folder is not None and folder.is_dir():
        found = [p for p in folder.glob("member_*") if p.is_dir() and p.name.split("_")[-1].isdigit()]
        full = sorted(found, key=lambda p: int(p.name.split("_")[-1]))
    return full if full or member_type == "full" else default_head_paths(model)


def load_member(path: Path, base: "DiffusionModel", field: str):
    """A member from a model folder (loaded on its own), a weight file (a state dict of `base`'s architecture) or a
    head file (a class-embedding table for `base`'s network: a HeadMember sharing it)."""
    if path.is_dir():
        from benchmark.models.loading import load_folder_or_hub

        if not any((path / name).exists() for name in ("model_index.json", "config.json", "unet")):
            raise ConfigError(field, str(path), "a finished member (a model folder with its weights)",
                              "an interrupted `train --what ensemble` left it: rerun the same command (it resumes "
                              "member by member), or remove the folder")
        return load_folder_or_hub(str(path))
    if not path.is_file() or path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(field, str(path), f"an existing model folder or weight file ({', '.join(WEIGHT_SUFFIXES)})",
                          "list the member files (paths from the working directory), or train members with "
                          "`python -m benchmark train --what ensemble --dataset digits --out FOLDER`")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if is_head_state(state):
        return head_member(state, path, base, field)
    member = copy.deepcopy(base)
    for module in [member, *member.children()]:  # the whole model's keys, or its network's (e.g. a bare UNet's)
        if set(state) == set(module.state_dict()):
            module.load_state_dict(state)
            return member.eval()
    raise ConfigError(field, str(path), f"a state dict of the run's {type(base).__name__} (its keys do not match)",
                      "save the member with torch.save(network.state_dict()) from the same architecture, or give a "
                      "model folder")


@register("ensemble")
class EnsembleEstimator(WindowedVarianceEstimator):
    """Variance of x0_hat over ensemble members on the steps of `window` (module docstring).

    Args:
        members: weight files or model folders; empty = <model folder>/ensemble/member_*.
        window: half-open window of step indices of a 50-step run, scaled to other step counts.
        score: "variance" (sum of the map) or "pairwise_mi" (DECU's mutual information, summed over pixels and steps).
        keep_steps: keep the per-step maps {t: U_t}.
        member_type: "auto", "full" or "class-embedding" (module docstring); the type used is `member_type_used`.
    """

    kind = "epistemic"
    #: the reference the `ensemble_agreement` protocol compares every other epistemic estimator with
    gold_standard = True
    paper = "Lakshminarayanan et al., NeurIPS 2017 (deep ensembles); DECU score: Berry et al., UAI 2024"
    needs = ("members: full networks (files, or <model folder>/ensemble/member_* from `train --what ensemble`) or "
             "DECU class-embedding heads on the run's network (<model folder>/ensemble_heads/head_*.safetensors from "
             "`train --what ensemble --heads class-embedding`); member_type says which")
    nfe_formula = "members x window steps"

    def __init__(self, members: tuple[str, ...] = (), window: tuple[int, int] = (45, 49), score: str = "variance",
                 keep_steps: bool = False, member_type: str = "auto") -> None:
        if isinstance(members, str) or not all(isinstance(p, str) for p in members):
            raise ConfigError("members", members, "a list of paths", 'members = ["m0.safetensors", "m1.safetensors"]')
        if len(members) == 1:
            raise ConfigError("members", list(members), "two or more members (a spread needs two)",
                              "list at least two weight files, or none for <model folder>/ensemble/member_*")
        if score not in SCORES:
            raise ConfigError("score", score, f"one of {', '.join(SCORES)}", 'score = "variance"')
        if member_type not in ("auto", *MEMBER_TYPES):
            raise ConfigError("member_type", member_type, f"one of auto, {', '.join(MEMBER_TYPES)}",
                              'member_type = "class-embedding" (DECU heads) or "full" (whole networks)')
        super().__init__(m=max(2, len(members)), window=window, keep_steps=keep_steps)
        self.member_paths = [Path(p).expanduser() for p in members]
        self.score_kind = score
        self.member_type = member_type
        self.member_type_used: str | None = None  # "full" or "class-embedding", once the members are loaded
        self.members: list["DiffusionModel"] | None = None
        self._mi: torch.Tensor | None = None

    def begin(self, batch: "BatchInfo") -> None:
        if self.members is None:
            self.members = self._load(batch.model)
            self.m = len(self.members)
            self.member_type_used = member_type_of(self.members)
        for member in self.members:  # on the run's device, under the run's autocast (members are networks too)
            member.to(batch.device)
            member.autocast = getattr(batch.model, "autocast", "off")
        super().begin(batch)
        self._mi = None

    def _load(self, model: "DiffusionModel") -> list:
        paths = self.member_paths or default_member_paths(model, self.member_type)
        if len(paths) < 2:
            raise CapabilityError(
                f"estimator {self.name!r} needs two or more ensemble members, but none are listed and "
                f"{getattr(model, 'source', None)!r} has no {MEMBER_FOLDER}/member_* folders or ensemble_heads/head_* "
                f"files. Fix: train them with `python -m benchmark train --what ensemble --dataset <data> --out "
                f"<model folder>/{MEMBER_FOLDER}` (or --heads class-embedding --out <model folder>/ensemble_heads), "
                f"or list weight files in [estimators.{self.name}] members = [...].")
        members = [load_member(p, model, f"estimators.{self.name}.members") for p in paths]
        found = member_type_of(members)
        if found == "mixed" or self.member_type not in ("auto", found):
            wanted = "all full or all class-embedding heads" if self.member_type == "auto" else self.member_type
            raise ConfigError(f"estimators.{self.name}.members", [str(p) for p in paths],
                              f"members of one type ({wanted}); these are {found}",
                              "list only full members or only head files, or set member_type to match them")
        for path, member in zip(paths, members):
            if tuple(member.sample_shape) != tuple(model.sample_shape) or member.num_classes != model.num_classes:
                raise ConfigError(f"estimators.{self.name}.members", str(path),
                                  f"a model of the run's sample shape {tuple(model.sample_shape)} and classes "
                                  f"{model.num_classes}", "train the members on the run's data")
        return members

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        predictions = member_predictions(self.members, step.x_t, step.t, step.ab_t, step.y)
        separate = sum(not getattr(m, "counted_by_base", False) for m in self.members)  # heads count themselves
        step.model.count_rows(separate * step.x_t.shape[0])
        if self.score_kind == "pairwise_mi":
            mi = pairwise_mutual_information(predictions).flatten(1).sum(1)
            self._mi = mi if self._mi is None else self._mi + mi
        return sample_variance(predictions)

    def result(self):
        out = super().result()
        if self.score_kind == "pairwise_mi":
            out.score = self._mi
        return out


__all__ = ["EnsembleEstimator", "default_member_paths", "load_member", "member_predictions",
           "pairwise_mutual_information"]
