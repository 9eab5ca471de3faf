"""The material catalog: import, hybrid search, recognition, records and domain heads.

A catalog lives in a store folder that contains its SQLite database, one vector index per
vector space, copies of imported images, the recognition calibration and trained heads.
``database_url`` (or ``KAI_DATABASE_URL``) moves the records and vectors to PostgreSQL
with pgvector. Images are accepted as in :mod:`kai.images`.
"""

from __future__ import annotations

import builtins
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

from kai import _kai
from kai._util import check_progress, image_arg, plain, snake, snake_keys
from kai.errors import InvalidInputError, KaiError
from kai.images import ImageLike, QualityReport

__all__ = [
    "Calibration",
    "Catalog",
    "ClassConfidence",
    "DomainHead",
    "ImageRef",
    "ImportReport",
    "Material",
    "MaterialMatch",
    "MaterialVersion",
    "Recognition",
    "RecordError",
    "SearchHit",
]


def _time(text: str) -> datetime:
    # fromisoformat reads the "Z" suffix of RFC 3339 from Python 3.11 on.
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class ImageRef:
    """One stored image of a material."""

    path: str
    """Path relative to the store's ``images`` folder; see :meth:`Catalog.image_path`."""
    sha256: str
    """SHA-256 of the image file, in hex."""
    width: int
    """Width in pixels, after EXIF orientation."""
    height: int
    """Height in pixels, after EXIF orientation."""


@dataclass(frozen=True)
class Material:
    """A stored material record."""

    id: str
    name: str
    material_type: str
    """Material class in lower case, such as ``wood`` or ``stone``."""
    collection_id: str | None
    manufacturer: str | None
    tags: tuple[str, ...]
    """Keywords in lower case."""
    description: str
    properties: dict[str, Any]
    """Free-form properties (finish, colour, dimensions, …)."""
    images: tuple[ImageRef, ...]
    version: int
    """1 for a new record, one more for each update."""
    created_at: datetime
    updated_at: datetime

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Material:
        values = snake_keys(data)
        values["tags"] = tuple(values["tags"])
        values["images"] = tuple(ImageRef(**image) for image in values["images"])
        values["created_at"] = _time(values["created_at"])
        values["updated_at"] = _time(values["updated_at"])
        return cls(**values)

    def to_record(self) -> dict[str, Any]:
        """Return the editable fields as a record for :meth:`Catalog.update`.

        The record has no ``images`` key, so an update, or a :meth:`Catalog.replace` without
        new images, keeps the stored images.
        """
        return {
            "id": self.id,
            "name": self.name,
            "materialType": self.material_type,
            "collectionId": self.collection_id,
            "manufacturer": self.manufacturer,
            "tags": list(self.tags),
            "description": self.description,
            "properties": dict(self.properties),
        }


@dataclass(frozen=True)
class MaterialVersion:
    """One entry of a material's history."""

    version: int
    change: str
    """``created``, ``updated`` or ``deleted``."""
    changed_at: datetime
    record: dict[str, Any]
    """The record after the change (before it, for ``deleted``) with the keys of
    ``catalog.json``. Its image paths are relative to the store's ``images`` folder, so
    ``catalog.update(record, catalog.root / "images")`` restores that version."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> MaterialVersion:
        values = snake_keys(data)
        values["changed_at"] = _time(values["changed_at"])
        return cls(**values)


@dataclass(frozen=True)
class RecordError:
    """A catalog record that was not imported."""

    record: str
    """The record's id, or its position (``#3``, ``line 7``) when the id was unreadable."""
    message: str


@dataclass(frozen=True)
class Calibration:
    """The softmax temperature of the class vote and how well it calibrates."""

    temperature: float
    expected_calibration_error: float | None
    """Over 10 equal-width confidence bins; ``None`` before any fit."""
    accuracy: float | None
    """Top-1 accuracy of the held-out predictions; ``None`` before any fit."""
    samples: int
    """Number of held-out predictions."""


@dataclass(frozen=True)
class ImportReport:
    """The outcome of :meth:`Catalog.import_folder`, record by record."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    failed: tuple[RecordError, ...]
    """Records that were not stored, with the reason; the others are still imported."""
    calibration: Calibration | None
    """The calibration fitted after the import, when anything changed and the catalog has
    at least two material types."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ImportReport:
        calibration = data.get("calibration")
        return cls(
            created=tuple(data["created"]),
            updated=tuple(data["updated"]),
            unchanged=tuple(data["unchanged"]),
            failed=tuple(RecordError(**failure) for failure in data["failed"]),
            calibration=Calibration(**snake_keys(calibration)) if calibration else None,
        )


@dataclass(frozen=True)
class SearchHit:
    """One search result."""

    id: str
    name: str
    material_type: str
    score: float
    """The fused relevance; only its order is meaningful."""


@dataclass(frozen=True)
class MaterialMatch:
    """A catalog material that matches a recognized photo."""

    id: str
    name: str
    material_type: str
    score: float
    """Cosine similarity to the material's closest image, fused with the hint's text
    similarity when a hint was given."""


@dataclass(frozen=True)
class ClassConfidence:
    """A material type with the calibrated probability that the photo shows it."""

    material_type: str
    confidence: float


@dataclass(frozen=True)
class Recognition:
    """The result of :meth:`Catalog.recognize` for one photo."""

    materials: tuple[MaterialMatch, ...]
    """The best-matching materials, best first."""
    classes: tuple[ClassConfidence, ...]
    """Every material type of the catalog, most probable first."""
    unknown: bool
    """Whether the photo is too far from every catalog image to name a material."""
    classified_by: str
    """``head`` (the trained ``material-type`` head) or ``neighbours`` (the calibrated
    vote of the nearest catalog images)."""
    processing_time_ms: float
    quality: QualityReport
    """The photo's quality; its reasons are informative, not a rejection."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Recognition:
        return cls(
            materials=tuple(MaterialMatch(**snake_keys(m)) for m in data["materials"]),
            classes=tuple(ClassConfidence(**snake_keys(c)) for c in data["classes"]),
            unknown=data["unknown"],
            classified_by=data["classifiedBy"],
            processing_time_ms=data["processingTimeMs"],
            quality=QualityReport._from_json(data["quality"]),
        )


@dataclass(frozen=True)
class DomainHead:
    """A trained domain head: a linear classifier over the catalog's image embeddings."""

    domain: str
    """The head's name; the ``material-type`` head gives recognition its classes."""
    label: str
    """``materialType``, or ``property:NAME`` for a property's value."""
    material_type: str | None
    """Only materials of this type took part, when set."""
    classes: tuple[str, ...]
    image_model: str
    dimension: int
    temperature: float
    heldout_accuracy: float
    """Top-1 accuracy on the held-out materials' images."""
    neighbour_accuracy: float
    """Top-1 accuracy of the nearest-neighbour vote on the same split."""
    training_images: int
    heldout_images: int

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> DomainHead:
        values = snake_keys(data)
        spec = snake_keys(values.pop("spec"))
        values["classes"] = tuple(values["classes"])
        return cls(**spec, **values)


_RECORD_KEYS = {
    "id",
    "name",
    "materialType",
    "collectionId",
    "manufacturer",
    "tags",
    "description",
    "properties",
    "images",
}
_RECORD_KEYS_BY_SNAKE = {snake(key): key for key in _RECORD_KEYS}


def _record_json(record: Mapping[str, Any] | Material | str) -> str:
    """Return a record as the JSON of ``catalog.json``.

    A mapping may use snake_case keys and give its ``images`` as :class:`ImageRef` objects.
    A string is taken as JSON text already in the form of ``catalog.json``.
    """
    if isinstance(record, str):
        return record
    if isinstance(record, Material):
        record = record.to_record()
    converted = {_RECORD_KEYS_BY_SNAKE.get(key, key): value for key, value in record.items()}
    if isinstance(converted.get("tags"), tuple):
        converted["tags"] = list(converted["tags"])
    if isinstance(converted.get("images"), (list, tuple)):
        converted["images"] = [
            image.path if isinstance(image, ImageRef) else image for image in converted["images"]
        ]
    return json.dumps(converted)


def _image_list(images: Iterable[ImageLike]) -> builtins.list[Any]:
    """Return a list of images in the native module's forms.

    A single image raises :class:`TypeError`, because a string, bytes or an array would
    otherwise be taken apart into characters, bytes or rows. A 4-dimensional array of
    shape (N, H, W, C) is a list of N images.
    """
    single = (
        isinstance(images, (str, bytes, os.PathLike))
        or (hasattr(images, "mode") and hasattr(images, "convert"))
        or getattr(images, "ndim", 4) < 4
    )
    if single:
        raise TypeError(
            f"images must be a list of images, got a single {type(images).__name__}; "
            "wrap it in a list"
        )
    return [image_arg(image) for image in images]


def _tags(tags: Iterable[str]) -> builtins.list[str]:
    # A single tag given as a string would otherwise become one tag per character.
    return [tags] if isinstance(tags, str) else builtins.list(tags)


def _fspath(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)


def _options_json(**options: Any) -> str | None:
    """Return the options that are set as JSON with camelCase keys, or ``None``."""
    chosen = {}
    for name, value in options.items():
        value = plain(value)
        if value is None:
            continue
        # JSON has no NaN or infinity, so the core would reject the text, not the value.
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"invalid {name}: must be a finite number, got {value}")
        head, *rest = name.split("_")
        chosen[head + "".join(part.capitalize() for part in rest)] = value
    return json.dumps(chosen) if chosen else None


class Catalog:
    """A material catalog in a store folder, or in PostgreSQL.

    ``store`` defaults to ``KAI_DATA_DIR``, else ``./kai-data``, and is created when
    absent. The embedding models load from ``model_dir`` (default ``MODEL_DIR``) on
    ``device`` (default ``KAI_DEVICE``) the first time a call needs them.
    ``database_url`` (default ``KAI_DATABASE_URL``) keeps records and vectors in
    PostgreSQL.

    One instance may be shared by threads: calls run one at a time with the GIL released.
    Writes take the store's write lock, so a write while another process writes to the
    same store raises :class:`kai.ConflictError`.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | None = None,
        *,
        model_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        database_url: str | None = None,
    ) -> None:
        self._native = _kai.Catalog(
            _fspath(store),
            model_dir=_fspath(model_dir),
            device=device,
            database_url=database_url,
        )

    @classmethod
    def open_for_reindex(
        cls,
        store: str | os.PathLike[str] | None = None,
        *,
        model_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        database_url: str | None = None,
    ) -> Catalog:
        """Open a store without loading its vector spaces, for :meth:`reindex`.

        Opening a store whose vectors were made by another model than the configured one
        fails; this is the way to re-embed such a store.
        """
        catalog = cls.__new__(cls)
        catalog._native = _kai.Catalog.open_for_reindex(
            _fspath(store),
            model_dir=_fspath(model_dir),
            device=device,
            database_url=database_url,
        )
        return catalog

    @property
    def root(self) -> Path:
        """The store folder."""
        return Path(self._native.root)

    @property
    def database(self) -> str | None:
        """The PostgreSQL URL with its password hidden, or ``None`` for SQLite."""
        return self._native.database

    def import_folder(
        self,
        folder: str | os.PathLike[str],
        *,
        progress: Callable[[int, int], object] | None = None,
    ) -> ImportReport:
        """Import ``catalog.json`` (or ``catalog.csv``) and the images it names.

        Unchanged records are skipped. A record with a bad field or an unreadable image
        is listed in :attr:`ImportReport.failed` and the others are still stored, each in
        its own transaction. ``progress`` is called as ``progress(done, total)`` after
        each record; an exception it raises goes to :func:`sys.unraisablehook` and the
        import goes on. The catalog is locked meanwhile, so ``progress`` must not call
        methods of this catalog.

        Raises
        ------
        kai.InvalidInputError
            When the folder has no catalog file or the file as a whole is unreadable.
        kai.ModelNotFoundError
            When an embedding model is missing.
        kai.ConflictError
            When another process is writing to the store.
        """
        check_progress(progress)
        report = self._native.import_folder(os.fspath(folder), progress)
        return ImportReport._from_json(json.loads(report))

    def search(
        self,
        text: str | None = None,
        *,
        image: ImageLike | None = None,
        material_type: str | None = None,
        tags: Iterable[str] = (),
        collection: str | None = None,
        top_k: int = 10,
        offset: int = 0,
        weights: Mapping[str, float] | None = None,
    ) -> builtins.list[SearchHit]:
        """Search by text, by image, or both, best first.

        The text ranks materials by keyword relevance and by the similarity of its
        embedding; the image ranks them by their closest image. Reciprocal rank fusion
        merges the rankings, weighted by ``weights`` (keys ``keyword``, ``text``,
        ``image``, default 1 each, and ``rank_constant``, default 60). Filters match
        every given condition; the type and tags are compared in lower case.
        ``top_k`` (1–1000) and ``offset`` page through the results.
        """
        if weights:
            unknown = set(weights) - {"keyword", "text", "image", "rank_constant"}
            if unknown:
                raise InvalidInputError(
                    f"invalid weights: unknown keys {sorted(unknown)}; the keys are keyword, "
                    "text, image and rank_constant"
                )
        weights_json = _options_json(**weights) if weights else None
        hits = self._native.search(
            text,
            image_arg(image) if image is not None else None,
            material_type,
            _tags(tags),
            collection,
            top_k,
            offset,
            weights_json,
        )
        return [SearchHit(**snake_keys(hit)) for hit in json.loads(hits)]

    def recognize(
        self,
        image: ImageLike,
        *,
        top_k: int = 5,
        hint: str | None = None,
        hint_weight: float | None = None,
        min_resolution: int | None = None,
        unknown_threshold: float | None = None,
    ) -> Recognition:
        """Recognize the material in a photo.

        The photo is embedded and compared with the catalog's images. The ``top_k``
        (1–100) nearest materials are returned with the material-type confidences and
        the photo's quality. ``hint`` is a text describing the material; its similarity
        joins the material scores with weight ``hint_weight`` (default 0.3). A photo
        with a shorter side below ``min_resolution`` pixels (default 64) is rejected, and
        one whose nearest catalog image is below ``unknown_threshold`` cosine similarity
        (default 0.3) is marked unknown.

        Raises
        ------
        kai.InvalidInputError
            For a photo below the minimum resolution or an option out of range.
        kai.NotFoundError
            When the catalog has no images.
        """
        options = _options_json(
            top_k=top_k,
            hint=hint,
            hint_weight=hint_weight,
            min_resolution=min_resolution,
            unknown_threshold=unknown_threshold,
        )
        result = self._native.recognize(image_arg(image), options)
        return Recognition._from_json(json.loads(result))

    @overload
    def recognize_batch(
        self,
        images: Iterable[ImageLike],
        *,
        top_k: int = 5,
        hint: str | None = None,
        hint_weight: float | None = None,
        min_resolution: int | None = None,
        unknown_threshold: float | None = None,
        return_exceptions: Literal[False] = False,
    ) -> builtins.list[Recognition]: ...

    @overload
    def recognize_batch(
        self,
        images: Iterable[ImageLike],
        *,
        top_k: int = 5,
        hint: str | None = None,
        hint_weight: float | None = None,
        min_resolution: int | None = None,
        unknown_threshold: float | None = None,
        return_exceptions: Literal[True],
    ) -> builtins.list[Recognition | KaiError]: ...

    def recognize_batch(
        self,
        images: Iterable[ImageLike],
        *,
        top_k: int = 5,
        hint: str | None = None,
        hint_weight: float | None = None,
        min_resolution: int | None = None,
        unknown_threshold: float | None = None,
        return_exceptions: bool = False,
    ) -> builtins.list[Recognition] | builtins.list[Recognition | KaiError]:
        """Recognize the material in each of several photos.

        The options are those of :meth:`recognize`.

        ``images`` is a list of photos in any form :meth:`recognize` accepts, or a uint8
        array of shape (N, H, W, C). The photos go through the image model together, in
        batches of its batch size. Each result equals what :meth:`recognize` returns for
        that photo alone, within float rounding, apart from ``processing_time_ms``. That
        time counts the work the batch shares, such as the forward pass and the hint's
        embedding, in full for every photo.

        Every photo is recognized even when some fail, and the errors of single photos are
        handled as :func:`asyncio.gather` does. With ``return_exceptions=False`` (the
        default), the first failed photo's exception, in input order, is raised. With
        ``return_exceptions=True``, the list contains that exception in the photo's place.
        Photos fail one at a time when they are not images, cannot be read, do not decode
        or are below ``min_resolution``, and the message names the photo as
        ``images[INDEX]`` or by its path.

        Raises
        ------
        TypeError
            When ``images`` is a single image rather than a list.
        kai.InvalidInputError
            For an option out of range, and, unless ``return_exceptions`` is true, for the
            first photo that failed (:class:`kai.StorageError` when its file was unreadable).
        kai.NotFoundError
            When the catalog has no images.
        """
        photos = _image_list(images)
        options = _options_json(
            top_k=top_k,
            hint=hint,
            hint_weight=hint_weight,
            min_resolution=min_resolution,
            unknown_threshold=unknown_threshold,
        )
        results: builtins.list[Recognition | KaiError] = []
        for entry in self._native.recognize_batch(photos, options):
            if isinstance(entry, str):
                results.append(Recognition._from_json(json.loads(entry)))
            elif return_exceptions and isinstance(entry, KaiError):
                results.append(entry)
            else:
                raise entry
        return results

    def get(self, id: str) -> Material | None:
        """Return the material with ``id``, or ``None``."""
        material = self._native.get(id)
        return None if material is None else Material._from_json(json.loads(material))

    def list(
        self,
        *,
        material_type: str | None = None,
        collection: str | None = None,
        tags: Iterable[str] = (),
        offset: int = 0,
        limit: int = 100,
    ) -> builtins.list[Material]:
        """List the materials that match every given filter, in id order."""
        materials = self._native.list(material_type, collection, _tags(tags), offset, limit)
        return [Material._from_json(m) for m in json.loads(materials)]

    def update(
        self,
        record: Mapping[str, Any] | Material | str,
        image_folder: str | os.PathLike[str] | None = None,
    ) -> Material:
        """Replace a stored material's fields and return the new version.

        ``record`` has the fields of a ``catalog.json`` record; snake_case keys such as
        ``material_type`` are accepted too. A :class:`Material` (for example one from
        :meth:`get` after :func:`dataclasses.replace`) works as well, and so does JSON text
        of a ``catalog.json`` record. The stored images
        are kept unless the record names images, which are read relative to
        ``image_folder`` (default: the working directory).

        Raises
        ------
        kai.NotFoundError
            For an unknown id.
        kai.InvalidInputError
            For an invalid or unknown field.
        kai.ConflictError
            When the material changed during the update, or another process is writing.
        """
        folder = os.fspath(image_folder) if image_folder is not None else os.getcwd()
        material = self._native.update(_record_json(record), folder)
        return Material._from_json(json.loads(material))

    def create(
        self,
        record: Mapping[str, Any] | Material | str,
        images: Iterable[ImageLike] = (),
    ) -> Material:
        """Create a material from a record and its images, and return it at version 1.

        ``record`` takes the forms :meth:`update` takes, or JSON text of one
        ``catalog.json`` record, and must have no ``images``. The images follow in the
        order given, in any form :meth:`recognize` accepts. Paths and bytes are stored as
        they are. Arrays and PIL images are stored as PNG, with any alpha channel
        composited over white. Every image is read and decoded before anything is written,
        so a failed create leaves the catalog unchanged.

        Raises
        ------
        TypeError
            When ``images`` is a single image rather than a list.
        kai.InvalidInputError
            For an invalid field or a record with ``images``. Also for a value of ``images``
            that is not an image, is corrupt or is over the limits, named in the message as
            ``images[INDEX]``.
        kai.ConflictError
            When a material with the id exists, or another process is writing.
        kai.StorageError
            When an image file cannot be read.
        """
        material = self._native.create(_record_json(record), _image_list(images))
        return Material._from_json(json.loads(material))

    def replace(
        self,
        record: Mapping[str, Any] | Material | str,
        images: Iterable[ImageLike] = (),
        *,
        expect_version: int | None = None,
    ) -> Material:
        """Replace a stored material's fields, and optionally its images; return the new version.

        ``record`` takes the forms :meth:`create` takes. Its ``images`` list the stored
        images to keep, as the paths (or :class:`ImageRef` objects) of :attr:`Material.images`,
        in the order wanted, and ``images`` are new ones stored after them. When both are
        empty, the material keeps all its images, and when only ``images`` are given they
        replace the stored ones. With ``expect_version``, the write fails unless the
        material is at that version. Without it, a change made by another writer during
        this call is still detected and never overwritten. A failed replace leaves the
        material unchanged.

        Raises
        ------
        TypeError
            When ``images`` is a single image rather than a list.
        kai.NotFoundError
            For an unknown id.
        kai.ConflictError
            When the material is not at ``expect_version``, changed during the call, or
            another process is writing.
        kai.InvalidInputError
            For an invalid field, or a kept path that is not one of the material's images.
            Also for a value of ``images`` that is not an image, is corrupt or is over the
            limits, named in the message as ``images[INDEX]``.
        kai.StorageError
            When an image file cannot be read.
        """
        material = self._native.replace(
            _record_json(record), _image_list(images), plain(expect_version)
        )
        return Material._from_json(json.loads(material))

    def delete(self, id: str) -> bool:
        """Delete a material and its vectors; return whether it existed.

        The history is kept, with a ``deleted`` entry.
        """
        return self._native.delete(id)

    def history(self, id: str) -> builtins.list[MaterialVersion]:
        """Return every version of a material, oldest first; empty for an unknown id."""
        return [MaterialVersion._from_json(v) for v in json.loads(self._native.history(id))]

    def material_types(self) -> builtins.list[str]:
        """Return the catalog's material types in alphabetical order."""
        return self._native.material_types()

    def image_path(self, image: ImageRef | str) -> Path:
        """Return the absolute path of a stored image."""
        relative = image.path if isinstance(image, ImageRef) else image
        return Path(self._native.image_path(relative))

    def train_head(
        self,
        domain: str = "material-type",
        *,
        label: str = "materialType",
        material_type: str | None = None,
    ) -> DomainHead:
        """Train, evaluate and save a classification head on the catalog's images.

        ``label`` is ``materialType`` or ``property:NAME``; ``material_type`` limits the
        training to one type, for subtypes within it. Every fifth material is held out to
        measure the head against the nearest-neighbour vote. A ``material-type`` head
        then gives :meth:`recognize` its class confidences.

        Raises
        ------
        kai.InvalidInputError
            For an invalid domain or label, fewer than two classes, or too few materials.
        """
        manifest = self._native.train_head(domain, label, material_type)
        return DomainHead._from_json(json.loads(manifest))

    def heads(self) -> builtins.list[DomainHead]:
        """Return the trained heads, by domain."""
        return [DomainHead._from_json(h) for h in json.loads(self._native.heads())]

    def calibrate(self) -> Calibration:
        """Fit the class-vote temperature on the catalog and store it.

        Imports and :meth:`reindex` already do this when the catalog has at least two
        material types.
        """
        return Calibration(**snake_keys(json.loads(self._native.calibrate())))

    def calibration(self) -> Calibration:
        """Return the stored calibration, or the default before any fit."""
        return Calibration(**snake_keys(json.loads(self._native.calibration())))

    def reindex(self, *, progress: Callable[[int, int], object] | None = None) -> int:
        """Re-embed every material with the configured models; return how many.

        Both vector spaces are rewritten, and the calibration is fitted again.
        ``progress`` is called as ``progress(done, total)`` after each batch of materials,
        as in :meth:`import_folder`.
        """
        check_progress(progress)
        return self._native.reindex(progress)

    def __repr__(self) -> str:
        return repr(self._native)
