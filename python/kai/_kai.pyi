"""Type stubs of the native module ``kai._kai``."""

from os import PathLike

import numpy as np
import numpy.typing as npt

__version__: str

class TextEmbedder:
    """A text embedding model loaded in this process."""

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        *,
        model_dir: str | PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def max_sequence_length(self) -> int: ...
    def embed(self, texts: str | list[str]) -> npt.NDArray[np.float32]:
        """Embed one text (shape (dimension,)) or a list (shape (len, dimension))."""

import builtins
from collections.abc import Callable
from pathlib import Path

# Image embeddings, image quality and the catalog. An image argument is a path string,
# bytes, or a uint8 numpy array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4);
# kai.images and kai.catalog convert PIL images and PathLike objects first. Structured
# results are JSON text with camelCase keys.

class ImageEmbedder:
    """An image embedding model loaded in this process."""

    def __init__(
        self,
        model: str = "efficientnet-lite0",
        *,
        model_dir: str | PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 16,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def num_classes(self) -> int: ...
    def embed(self, images: object) -> npt.NDArray[np.float32]:
        """Embed one image or a list of images; shape (n, dimension)."""
    def embed_and_classify(
        self, images: object, top_k: int
    ) -> tuple[npt.NDArray[np.float32], str]:
        """Return the vectors and the top-k labels per image as JSON."""

def default_quality_thresholds() -> str: ...
def assess_quality(image: object, thresholds: str | None = None) -> str: ...

class Catalog:
    """Material catalog in a store folder or in PostgreSQL."""

    def __init__(
        self,
        store: str | PathLike[str] | None = None,
        *,
        model_dir: str | PathLike[str] | None = None,
        device: str | None = None,
        database_url: str | None = None,
    ) -> None: ...
    @staticmethod
    def open_for_reindex(
        store: str | PathLike[str] | None = None,
        *,
        model_dir: str | PathLike[str] | None = None,
        device: str | None = None,
        database_url: str | None = None,
    ) -> Catalog: ...
    @property
    def root(self) -> Path: ...
    @property
    def database(self) -> str | None: ...
    def import_folder(
        self, folder: str | PathLike[str], progress: Callable[[int, int], object] | None = None
    ) -> str: ...
    def search(
        self,
        text: str | None = None,
        image: object | None = None,
        material_type: str | None = None,
        tags: builtins.list[str] = ...,
        collection: str | None = None,
        top_k: int = 10,
        offset: int = 0,
        weights: str | None = None,
    ) -> str: ...
    def recognize(self, image: object, options: str | None = None) -> str: ...
    def recognize_batch(
        self, images: builtins.list[object], options: str | None = None
    ) -> builtins.list[str | BaseException]:
        """Return per photo the recognition as JSON text, or that photo's exception."""
    def get(self, id: str) -> str | None: ...
    def list(
        self,
        material_type: str | None = None,
        collection: str | None = None,
        tags: builtins.list[str] = ...,
        offset: int = 0,
        limit: int = 100,
    ) -> str: ...
    def update(self, record: str, image_folder: str | PathLike[str]) -> str: ...
    def create(self, record: str, images: builtins.list[object] = ...) -> str: ...
    def replace(
        self,
        record: str,
        images: builtins.list[object] = ...,
        expect_version: int | None = None,
    ) -> str: ...
    def delete(self, id: str) -> bool: ...
    def history(self, id: str) -> str: ...
    def material_types(self) -> builtins.list[str]: ...
    def image_path(self, relative: str) -> Path: ...
    def train_head(self, domain: str, label: str, material_type: str | None = None) -> str: ...
    def heads(self) -> str: ...
    def calibrate(self) -> str: ...
    def calibration(self) -> str: ...
    def reindex(self, progress: Callable[[int, int], object] | None = None) -> int: ...

# Parameter registry and models: results are JSON text that kai.registry and kai.models
# turn into dataclasses.

DEFAULT_TEXT_MODEL: str
DEFAULT_IMAGE_MODEL: str

def list_models(model_dir: str | PathLike[str] | None = None) -> str: ...
def fetch_model(name: str, *, model_dir: str | PathLike[str] | None = None) -> str: ...

class Registry:
    """Parameter registry of a store folder, or of a PostgreSQL database."""

    def __init__(
        self,
        store: str | PathLike[str] | None = None,
        *,
        database_url: str | None = None,
        default_set: str | None = None,
        similarity_threshold: float | None = None,
        retention_days: int | None = None,
    ) -> None: ...
    @property
    def default_set(self) -> str: ...
    @property
    def similarity_threshold(self) -> float: ...
    @property
    def retention_days(self) -> int: ...
    def list(self) -> str: ...
    def get(self, name: str, *, version: int | None = None, scope: str | None = None) -> str: ...
    def set(
        self,
        name: str,
        values: dict[str, bool | int | float | str],
        *,
        scope: str | None = None,
        expect_version: int | None = None,
        author: str = "unknown",
        note: str = "",
    ) -> str: ...
    def history(self, name: str, *, scope: str | None = None) -> str: ...
    def diff(self, name: str, a: int, b: int, *, scope: str | None = None) -> str: ...
    def rollback(
        self,
        name: str,
        to: int,
        *,
        scope: str | None = None,
        expect_version: int | None = None,
        author: str = "unknown",
        note: str = "",
    ) -> str: ...
    def record(
        self,
        name: str,
        material_id: str,
        metrics: dict[str, float],
        *,
        scope: str | None = None,
        version: int | None = None,
    ) -> str: ...
    def record_batch(
        self,
        results: builtins.list[
            tuple[str, str | None, int, str, dict[str, float]]
        ],
    ) -> None: ...
    def resolve(self, material_id: str, catalog: Catalog, *, set: str | None = None) -> str: ...
    def resolve_scopes(self, scopes: builtins.list[str], *, set: str | None = None) -> str: ...
    def suggest(
        self,
        target: str | npt.NDArray[np.float32] | builtins.list[float],
        catalog: Catalog,
        *,
        metric: str = "score",
        lower_is_better: bool = False,
    ) -> str: ...
    def purge(self) -> str: ...
    def schema(self) -> str: ...
    def apply_schema_file(self, path: str | PathLike[str]) -> str: ...
    def apply_schema_json(self, schema: str) -> str: ...

# Reconstruction: geometry crosses as float64 numpy arrays in COLMAP's conventions,
# summaries and job records as JSON text with snake_case keys that kai.recon turns into
# dataclasses. A photos argument is a folder path or a list of path strings and bytes.

class Reconstruction:
    """A finished reconstruction held in Rust."""

    def summary(self) -> str: ...
    def cameras(self) -> str: ...
    def image_names(self) -> builtins.list[str]: ...
    def image_cameras(self) -> builtins.list[int]: ...
    def rotations(self) -> npt.NDArray[np.float64]:
        """World-to-camera rotations, shape (images, 3, 3)."""
    def translations(self) -> npt.NDArray[np.float64]:
        """World-to-camera translations, shape (images, 3)."""
    def point_positions(self) -> npt.NDArray[np.float64]: ...
    def point_colors(self) -> npt.NDArray[np.uint8]: ...
    def point_errors(self) -> npt.NDArray[np.float64]: ...
    def track_lengths(self) -> npt.NDArray[np.int64]: ...
    def write(self, out: str | PathLike[str]) -> None: ...

def reconstruct(
    photos: str | builtins.list[str | bytes],
    out: str | None = None,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> Reconstruction: ...
def relative_pose(
    x1: npt.NDArray[np.float64],
    x2: npt.NDArray[np.float64],
    *,
    threshold: float | None = None,
    confidence: float | None = None,
    seed: int = 0,
    max_iterations: int | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]: ...
def generate_scene(
    out_dir: str | PathLike[str],
    *,
    images: int = 30,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    points: int = 5000,
    arc_degrees: float = 360.0,
) -> tuple[builtins.list[Path], Reconstruction]: ...

# The stages after structure from motion. A mesh crosses as (positions float32 (N, 3),
# normals float32 (N, 3) or None, colors uint8 (N, 3) or None, triangles uint32 (M, 3)),
# a point cloud as (positions float64 (N, 3), colors uint8 (N, 3), normals float64 (N, 3)
# or None); an input given as a str is a file path.

_MeshArrays = tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32] | None,
    npt.NDArray[np.uint8] | None,
    npt.NDArray[np.uint32],
]
_PointArrays = tuple[
    npt.NDArray[np.float64], npt.NDArray[np.uint8], npt.NDArray[np.float64] | None
]

def reconstruct_model(
    photos: str | builtins.list[str | bytes],
    output: str,
    work: str | None = None,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> tuple[Reconstruction, str]:
    """Returns the sparse model and `{"files", "summary"}` as JSON."""
def screen(
    photos: str | builtins.list[str | bytes],
    output: str | None = None,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> str: ...
def densify(
    sparse: Reconstruction | str,
    photos: str | builtins.list[str | bytes],
    output: str | None = None,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> _PointArrays: ...
def mesh(
    points: str | _PointArrays,
    output: str | None = None,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> _MeshArrays: ...
def levels_of_detail(
    mesh: str | _MeshArrays,
    output_dir: str,
    set: str | None = None,
    registry: Registry | None = None,
) -> str:
    """Returns `[{"path", "vertices", "triangles"}]` as JSON."""
def export_model(
    input: str | _MeshArrays | builtins.list[_MeshArrays],
    output: str,
    compression: str | None = None,
    set: str | None = None,
    registry: Registry | None = None,
) -> str:
    """Returns `[{"path", "vertices", "triangles"}]` as JSON."""
def read_mesh(path: str) -> _MeshArrays: ...
def write_mesh(
    positions: npt.NDArray[np.float32],
    normals: npt.NDArray[np.float32] | None,
    colors: npt.NDArray[np.uint8] | None,
    triangles: npt.NDArray[np.uint32],
    path: str,
    compression: str | None = None,
) -> None: ...
def read_points(path: str) -> _PointArrays: ...
def write_points(
    positions: npt.NDArray[np.float64],
    colors: npt.NDArray[np.uint8],
    normals: npt.NDArray[np.float64] | None,
    path: str,
    ascii: bool = False,
) -> None: ...

class JobQueue:
    """Reconstruction jobs in a folder, run by worker threads of this process."""

    def __init__(self, root: str | PathLike[str], workers: int = 1) -> None: ...
    @property
    def root(self) -> Path: ...
    @property
    def max_images(self) -> int: ...
    def submit(
        self,
        photos: str | builtins.list[str | bytes],
        set: str | None = None,
        registry: Registry | None = None,
    ) -> str: ...
    def get(self, id: str) -> str | None: ...
    def list(self) -> str: ...
    def file(self, id: str, name: str) -> Path: ...
