"""Image embeddings, ImageNet labels and photo quality.

Every function that takes an image accepts a path (``str`` or ``os.PathLike``), encoded
bytes (JPEG, PNG, WebP, BMP, TIFF), a PIL image, or a uint8 numpy array of shape (H, W),
(H, W, 3) or (H, W, 4). Alpha is composited over white, as kai does when it decodes a
file. ``KAI_MAX_IMAGE_BYTES`` and ``KAI_MAX_IMAGE_PIXELS`` bound every image.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from kai import _kai
from kai._util import image_arg, images_arg, plain, snake_keys
from kai.errors import InvalidInputError

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "ImageEmbedder",
    "Prediction",
    "QualityReport",
    "QualityThresholds",
    "assess_quality",
]

ImageLike = Union[str, "os.PathLike[str]", bytes, "npt.NDArray[np.uint8]", "PIL.Image.Image"]
"""An image: a path, encoded bytes, a PIL image or a uint8 numpy array."""


@dataclass(frozen=True)
class Prediction:
    """One class of a classifier's top-k with its softmax probability."""

    label: str
    score: float


@dataclass(frozen=True)
class QualityThresholds:
    """The limits a photo must meet to pass :func:`assess_quality`.

    Luma levels are on the 0–255 scale, fractions in [0, 1]. Sharpness and noise are
    measured with the longer side scaled to at most 1024 px.
    """

    min_sharpness: float
    """Minimum variance of the Laplacian of luma; below it a photo is ``blurry``."""
    shadow_level: float
    """Luma level at or below which a pixel counts as clipped shadow."""
    max_shadows_clipped: float
    """Maximum fraction of clipped shadow pixels; above it a photo is ``underexposed``."""
    highlight_level: float
    """Luma level at or above which a pixel counts as clipped highlight."""
    max_highlights_clipped: float
    """Maximum fraction of clipped highlight pixels; above it a photo is ``overexposed``."""
    min_mean_brightness: float
    """Minimum mean luma as a fraction of white; below it a photo is ``underexposed``."""
    max_mean_brightness: float
    """Maximum mean luma as a fraction of white; above it a photo is ``overexposed``."""
    min_contrast: float
    """Minimum RMS contrast (luma standard deviation / 255); below it: ``low_contrast``."""
    max_noise: float
    """Maximum noise standard deviation in luma levels; above it a photo is ``noisy``."""
    min_short_side: int
    """Minimum length of the shorter side in pixels; below it: ``low_resolution``."""
    min_megapixels: float
    """Minimum size in megapixels; 0 turns the rule off."""

    @classmethod
    def default(cls) -> QualityThresholds:
        """Return kai's default thresholds."""
        return cls(**snake_keys(json.loads(_kai.default_quality_thresholds())))

    def replace(self, **changes: float) -> QualityThresholds:
        """Return a copy with the given fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class QualityReport:
    """The measurements of one photo and the verdict of :func:`assess_quality`."""

    width: int
    """Width of the image in pixels."""
    height: int
    """Height of the image in pixels."""
    sharpness: float
    """Variance of the 4-neighbour Laplacian of luma (0–255 scale), at most 1024 px."""
    shadows_clipped: float
    """Fraction of pixels at or below the shadow level."""
    highlights_clipped: float
    """Fraction of pixels at or above the highlight level."""
    mean_brightness: float
    """Mean luma as a fraction of white."""
    contrast: float
    """RMS contrast: standard deviation of luma divided by 255."""
    noise: float
    """Immerkær's estimate of the noise standard deviation in luma levels."""
    score: float
    """Overall quality from 0 to 1; below 0.5 exactly when ``passed`` is false."""
    reasons: tuple[str, ...]
    """The failed rules, such as ``blurry`` or ``low_resolution``."""
    passed: bool
    """Whether the photo met every threshold."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> QualityReport:
        fields = snake_keys(data)
        fields["reasons"] = tuple(fields["reasons"])
        return cls(**fields)


_THRESHOLD_FIELDS = tuple(field.name for field in dataclasses.fields(QualityThresholds))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def assess_quality(
    image: ImageLike,
    thresholds: QualityThresholds | None = None,
    **overrides: float,
) -> QualityReport:
    """Measure a photo's sharpness, exposure, contrast, noise and resolution.

    ``thresholds`` defaults to :meth:`QualityThresholds.default`; keyword arguments named
    after its fields change single limits, for example ``min_sharpness=100``. The GIL is
    released while the image decodes and is measured.

    Raises
    ------
    TypeError
        For a keyword that is not a threshold field.
    kai.InvalidInputError
        For an image that cannot be decoded or an invalid threshold value.
    kai.StorageError
        When an image path cannot be read.
    """
    unknown = sorted(set(overrides) - set(_THRESHOLD_FIELDS))
    if unknown:
        raise TypeError(
            f"assess_quality() got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"the thresholds are {', '.join(_THRESHOLD_FIELDS)}"
        )
    limits = dataclasses.asdict(thresholds) if thresholds is not None else {}
    limits.update(overrides)
    limits = {name: plain(value) for name, value in limits.items()}
    for name, value in limits.items():
        # JSON has no NaN or infinity, so the core would reject the text, not the field.
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"invalid {name}: {value} is not a finite number")
    payload = json.dumps({_camel(name): value for name, value in limits.items()})
    report = _kai.assess_quality(image_arg(image), payload)
    return QualityReport._from_json(json.loads(report))


class ImageEmbedder:
    """An image embedding model (default EfficientNet-Lite0, ImageNet weights).

    Images are cropped, resized and normalised as the model's manifest prescribes and run
    through the backbone in batches of ``batch_size``. The pooled features become
    unit-length float32 vectors for retrieval, and the classifier names the most probable
    ImageNet classes. The model loads from ``model_dir`` (default ``MODEL_DIR``, else
    the user cache folder) on ``device`` (``"cpu"``, ``"cuda:N"`` or ``"auto"``; default
    ``KAI_DEVICE``). A missing model raises :class:`kai.ModelNotFoundError` naming the
    command that fetches it.
    """

    def __init__(
        self,
        model: str = "efficientnet-lite0",
        *,
        model_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 16,
    ) -> None:
        if model_dir is not None:
            model_dir = os.fspath(model_dir)
        self._native = _kai.ImageEmbedder(
            model, model_dir=model_dir, device=device, batch_size=batch_size
        )

    @property
    def name(self) -> str:
        """The model name."""
        return self._native.name

    @property
    def dimension(self) -> int:
        """The length of each vector."""
        return self._native.dimension

    @property
    def num_classes(self) -> int:
        """The number of classes the classifier names."""
        return self._native.num_classes

    def embed(self, images: ImageLike | list[ImageLike]) -> npt.NDArray[np.float32]:
        """Embed one image or a list of images.

        Returns a float32 array of shape (dimension,) for one image and (n, dimension) for
        a list or tuple; each row has unit length. The GIL is released while images decode
        and the model runs.
        """
        vectors = self._native.embed(images_arg(images))
        if isinstance(images, (list, tuple)):
            return vectors
        return vectors[0]

    def classify(
        self, images: ImageLike | list[ImageLike], top_k: int = 5
    ) -> list[Prediction] | list[list[Prediction]]:
        """Return the ``top_k`` most probable classes, most probable first.

        One image gives a list of :class:`Prediction`; a list or tuple of images gives
        one such list per image.
        """
        _, labels = self.embed_and_classify(images, top_k=top_k)
        return labels

    def embed_and_classify(
        self, images: ImageLike | list[ImageLike], top_k: int = 5
    ) -> tuple[npt.NDArray[np.float32], Any]:
        """Return the vectors of :meth:`embed` and the labels of :meth:`classify` from
        one pass through the model."""
        vectors, labels = self._native.embed_and_classify(images_arg(images), top_k)
        predictions = [
            [Prediction(label=p["label"], score=p["score"]) for p in row]
            for row in json.loads(labels)
        ]
        if isinstance(images, (list, tuple)):
            return vectors, predictions
        return vectors[0], predictions[0]

    def __repr__(self) -> str:
        return f"ImageEmbedder(model={self.name!r}, dimension={self.dimension})"
