"""3D reconstruction: from photos of an object to calibrated cameras, dense points and a
textured-by-colour mesh with levels of detail, as GLB, PLY or OBJ model files.

:func:`reconstruct_model` runs every stage in kai-core with the GIL released, as
``kai reconstruct`` does:

>>> scene = kai.recon.generate_scene("scene", images=10, width=400, height=300, seed=7,
...                                  arc_degrees=90)
>>> result = kai.recon.reconstruct_model("scene", "out/model.glb")
>>> [p.name for p in result.files[:3]]
['model.glb', 'model.lod1.glb', 'model.lod2.glb']
>>> mesh = kai.recon.read_mesh("out/model.glb")

Each stage also runs on its own, reading and writing the files of the ``kai recon``
commands: :func:`screen`, :func:`reconstruct` (structure from motion), :func:`densify`,
:func:`mesh`, :func:`levels_of_detail` and :func:`export_model`. :func:`read_mesh`,
:func:`write_mesh`, :func:`read_points` and :func:`write_points` move meshes and point
clouds between files and numpy arrays.

:func:`reconstruct` runs incremental structure from motion in kai-core with the GIL
released. Poses follow COLMAP's convention: a pose maps world to camera,
``x_cam = R @ x_world + t``, so the camera centre is ``-R.T @ t``. The camera looks down
+z with x right and y down. Pixel coordinates span ``[0, width] x [0, height]``.

>>> scene = kai.recon.generate_scene("scene", images=16, seed=3)
>>> model = kai.recon.reconstruct("scene", out="model")
>>> model.summary.registered_images
16

:func:`relative_pose` estimates the pose between two views from matched normalized
coordinates, :func:`generate_scene` renders a synthetic scene with known cameras, and
:class:`JobQueue` runs reconstructions in the background as kai-server does.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np
import numpy.typing as npt

from kai import _kai
from kai._util import check_progress
from kai.errors import InvalidInputError, NotFoundError
from kai.registry import Registry

__all__ = [
    "AcceptedPhoto",
    "Camera",
    "JobError",
    "JobQueue",
    "LevelFile",
    "LevelSummary",
    "Mesh",
    "ModelResult",
    "ModelSummary",
    "PipelineSummary",
    "PointCloud",
    "Points",
    "ReconJob",
    "Reconstruction",
    "ReconstructionSummary",
    "RegisteredImage",
    "RelativePose",
    "ScreeningReport",
    "SyntheticScene",
    "UnregisteredImage",
    "densify",
    "export_model",
    "generate_scene",
    "levels_of_detail",
    "mesh",
    "read_mesh",
    "read_points",
    "reconstruct",
    "reconstruct_model",
    "relative_pose",
    "screen",
    "write_mesh",
    "write_points",
]

PhotoLike = Union[str, "os.PathLike[str]", bytes]
"""A photo: a path or encoded bytes (JPEG, PNG, WebP, BMP, TIFF)."""


def _snake_case_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Returns `data` with the core's camelCase JSON keys turned into attribute names."""
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): value for key, value in data.items()}


@dataclass(frozen=True)
class UnregisteredImage:
    """A photo that the reconstruction left out, with the reason."""

    name: str
    reason: str
    """For example ``blurry`` from quality screening, or too few matches."""


@dataclass(frozen=True)
class ReconstructionSummary:
    """Counts and errors of a reconstruction, as every kai surface reports them."""

    images: int
    """Photos given to the reconstruction."""
    registered_images: int
    """Photos with an estimated pose."""
    points: int
    """Triangulated 3D points."""
    observations: int
    """Observations over all points."""
    mean_track_length: float
    """Mean observations per point."""
    mean_reprojection_error: float
    """Mean reprojection error over all observations, in pixels."""
    unregistered: tuple[UnregisteredImage, ...]
    """Photos left out, with the reason for each."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ReconstructionSummary:
        fields = _snake_case_keys(data)
        fields["unregistered"] = tuple(
            UnregisteredImage(**item) for item in fields["unregistered"]
        )
        return cls(**fields)


@dataclass(frozen=True)
class Camera:
    """Intrinsics of one camera, with COLMAP's model name and parameter order."""

    model: str
    """``PINHOLE`` (fx, fy, cx, cy) or ``OPENCV`` (fx, fy, cx, cy, k1, k2, p1, p2)."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    params: tuple[float, ...]
    """The parameters in COLMAP's order, with focal lengths and principal point in pixels."""


@dataclass(frozen=True, eq=False)
class RegisteredImage:
    """A photo with its estimated world-to-camera pose."""

    name: str
    """File name of the photo."""
    camera: int
    """Index into :attr:`Reconstruction.cameras`."""
    rotation: npt.NDArray[np.float64]
    """Rotation from world to camera axes, shape (3, 3)."""
    translation: npt.NDArray[np.float64]
    """Translation of the world-to-camera pose, shape (3,)."""

    @property
    def center(self) -> npt.NDArray[np.float64]:
        """The camera centre in world coordinates, ``-R.T @ t``."""
        return -self.rotation.T @ self.translation


@dataclass(frozen=True, eq=False)
class Points:
    """The triangulated points as parallel arrays, one row per point."""

    xyz: npt.NDArray[np.float64]
    """Positions in world coordinates, float64 of shape (N, 3)."""
    rgb: npt.NDArray[np.uint8]
    """Colours sampled from the photos, uint8 of shape (N, 3)."""
    error: npt.NDArray[np.float64]
    """Mean reprojection error over each point's track in pixels, shape (N,)."""
    track_length: npt.NDArray[np.int64]
    """Number of photos that observe each point, shape (N,)."""

    def __len__(self) -> int:
        return len(self.error)


class Reconstruction:
    """Cameras, posed photos and 3D points of a finished reconstruction."""

    def __init__(self, native: _kai.Reconstruction) -> None:
        self._native = native
        self.summary = ReconstructionSummary._from_json(json.loads(native.summary()))
        """Counts, mean errors and the photos left out."""
        self.cameras = tuple(
            Camera(c["model"], c["width"], c["height"], tuple(c["params"]))
            for c in json.loads(native.cameras())
        )
        """Intrinsics; images refer to them by index."""
        rotations = native.rotations()
        translations = native.translations()
        self.images = tuple(
            RegisteredImage(name, camera, rotations[i], translations[i])
            for i, (name, camera) in enumerate(
                zip(native.image_names(), native.image_cameras(), strict=True)
            )
        )
        """Registered photos, in registration order."""
        self.points = Points(
            xyz=native.point_positions(),
            rgb=native.point_colors(),
            error=native.point_errors(),
            track_length=native.track_lengths(),
        )
        """Triangulated points."""

    @property
    def unregistered(self) -> tuple[UnregisteredImage, ...]:
        """Photos that were screened out or could not be registered, with the reason."""
        return self.summary.unregistered

    def write(self, out: str | os.PathLike[str]) -> None:
        """Write the COLMAP text model (cameras.txt, images.txt, points3D.txt) and
        points.ply into the folder ``out``, creating it."""
        self._native.write(os.fspath(out))

    def __repr__(self) -> str:
        return (
            f"Reconstruction(images={len(self.images)}, points={len(self.points)}, "
            f"unregistered={len(self.unregistered)})"
        )


def _native_registry(registry: Registry | None) -> Any:
    if registry is None:
        return None
    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a kai.Registry or None, got {type(registry).__name__}")
    return registry._native


def _photos_arg(photos: PhotoLike | Sequence[PhotoLike]) -> str | list[str | bytes]:
    if isinstance(photos, (str, os.PathLike)):
        return os.fspath(photos)
    if isinstance(photos, bytes):
        return [photos]
    if isinstance(photos, (list, tuple)):
        # Other values pass through, so the native module names the one that is invalid.
        return [os.fspath(p) if isinstance(p, os.PathLike) else p for p in photos]
    raise TypeError(
        "photos must be a folder path or a list of photo paths and bytes, "
        f"got {type(photos).__name__}"
    )


def reconstruct(
    photos: PhotoLike | Sequence[PhotoLike],
    out: str | os.PathLike[str] | None = None,
    *,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> Reconstruction:
    """Reconstruct cameras and a sparse point cloud from photos of an object.

    ``photos`` is a folder (its jpg, jpeg, png, webp, bmp and tiff files, sorted by name)
    or a list of paths and encoded bytes; bytes are named ``image-N`` counting from 1.
    ``set`` names the parameter set whose ``recon.*`` values configure the run (default
    ``DEFAULT_PARAMETER_SET``, else ``standard``). It is resolved in ``registry``, or
    among the sets as shipped when no registry is given. When ``out`` is given, the
    COLMAP text model and points.ply are written there.

    ``progress`` is called as ``progress(stage, fraction)`` with the stage name
    (``screening``, ``features``, ``matching``, ``verification``, ``registration``,
    ``refinement``) and the fraction of the run in [0, 1], which never decreases. It runs on
    a worker thread, and an exception it raises goes to :func:`sys.unraisablehook` while
    the run goes on. The GIL is released during the run.

    Raises
    ------
    kai.InvalidInputError
        For a photo that cannot be decoded, an invalid option, or photos from which no
        reconstruction can start (the message names the cause).
    kai.NotFoundError
        When the parameter set does not exist.
    kai.StorageError
        When a photo cannot be read or ``out`` cannot be written.
    """
    check_progress(progress)
    native = _kai.reconstruct(
        _photos_arg(photos),
        os.fspath(out) if out is not None else None,
        set,
        _native_registry(registry),
        progress,
    )
    return Reconstruction(native)


class RelativePose(NamedTuple):
    """The pose of camera 2 relative to camera 1: ``x_cam2 = rotation @ x_cam1 + translation``."""

    rotation: npt.NDArray[np.float64]
    """Rotation matrix, shape (3, 3)."""
    translation: npt.NDArray[np.float64]
    """Unit-length translation direction, shape (3,), because two views do not fix the scale."""
    inliers: npt.NDArray[np.bool_]
    """Whether each correspondence fits the essential matrix, shape (N,)."""


def relative_pose(
    x1: npt.ArrayLike,
    x2: npt.ArrayLike,
    *,
    threshold: float | None = None,
    confidence: float | None = None,
    seed: int = 0,
    max_iterations: int | None = None,
) -> RelativePose:
    """Estimate the relative pose of two cameras from matched normalized coordinates.

    ``x1[i]`` and ``x2[i]`` are the undistorted normalized coordinates ``(x/z, y/z)`` of
    one point in the two views, arrays of shape (N, 2) with N of at least 5. The
    estimate is RANSAC over the 5-point essential matrix with MSAC scoring, local
    optimisation and a cheirality check, then refinement on the inliers. ``threshold`` is
    the Sampson error threshold in normalized units, pixels divided by the focal length
    (default 1e-3, which is 1 px at 1000 px). ``confidence`` (default 0.999) and
    ``max_iterations`` (default 10000) stop the sampling. The samples are drawn from
    ``seed``, so a call repeats exactly. The GIL is released during the estimation.

    Raises
    ------
    kai.InvalidInputError
        For arrays of another shape, non-finite coordinates, fewer than 5
        correspondences, no pose with enough inliers, or a pure rotation (no baseline).
    """
    native = _kai.relative_pose(
        np.ascontiguousarray(x1, dtype=np.float64),
        np.ascontiguousarray(x2, dtype=np.float64),
        threshold=threshold,
        confidence=confidence,
        seed=seed,
        max_iterations=max_iterations,
    )
    return RelativePose(*native)


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """Rendered photos of a synthetic scene and the cameras that took them."""

    images: tuple[Path, ...]
    """The PNG files, in capture order (``image_000.png``, ...)."""
    ground_truth: Reconstruction
    """True cameras and poses, and sampled surface points with exact observations."""
    ground_truth_dir: Path
    """The folder of the ground truth as a COLMAP text model and points.ply."""


def generate_scene(
    out_dir: str | os.PathLike[str],
    images: int = 30,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    *,
    points: int = 5000,
    arc_degrees: float = 360.0,
) -> SyntheticScene:
    """Render a synthetic scene with known cameras into ``out_dir``.

    Textured boxes on a textured ground plane are ray cast from ``images`` cameras on an
    arc of ``arc_degrees`` around them (10 to 360, a full ring by default), with changes
    of distance, roll and lighting. Neighbouring photos should differ by at most about
    15 degrees for reliable matching. The same arguments
    give the same pixels. As ``kai recon synth`` does, the PNGs go into ``out_dir`` and
    the ground truth into ``out_dir/ground_truth`` (COLMAP text model and points.ply)
    with ``points`` sampled surface points, so ``reconstruct(out_dir)`` reads the photos.
    The GIL is released while the scene renders.

    Raises
    ------
    kai.InvalidInputError
        For a size, count or arc outside the generator's ranges (1-1000 images,
        16-8192 px, 10-360 degrees).
    kai.StorageError
        When ``out_dir`` cannot be written.
    """
    out = Path(out_dir)
    paths, truth = _kai.generate_scene(
        os.fspath(out),
        images=images,
        seed=seed,
        width=width,
        height=height,
        points=points,
        arc_degrees=arc_degrees,
    )
    return SyntheticScene(
        images=tuple(Path(p) for p in paths),
        ground_truth=Reconstruction(truth),
        ground_truth_dir=out / "ground_truth",
    )


@dataclass(frozen=True)
class LevelSummary:
    """Counts of one level of detail of a model, and its file name."""

    file: str
    """The level's file name, such as ``model.lod1.glb``."""
    vertices: int
    triangles: int


@dataclass(frozen=True)
class ModelSummary:
    """Counts of the stages after structure from motion."""

    dense_points: int
    """Points fused from the depth maps."""
    surface_points: int
    """Points left after clean-up, which the surface was reconstructed from."""
    levels: tuple[LevelSummary, ...]
    """Every level of detail, the full mesh first."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ModelSummary:
        fields = _snake_case_keys(data)
        fields["levels"] = tuple(LevelSummary(**level) for level in fields["levels"])
        return cls(**fields)


@dataclass(frozen=True)
class PipelineSummary(ReconstructionSummary):
    """Counts of a whole reconstruction: those of structure from motion, and the model's."""

    model: ModelSummary | None = None
    """Dense points, mesh and levels; None for jobs that ran structure from motion only,
    as kai versions before the model stages did."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> PipelineSummary:
        data = dict(data)
        model = data.pop("model", None)
        sparse = ReconstructionSummary._from_json(data)
        fields = {name: getattr(sparse, name) for name in sparse.__dataclass_fields__}
        return cls(**fields, model=None if model is None else ModelSummary._from_json(model))


@dataclass(frozen=True)
class ModelResult:
    """Files and counts of a :func:`reconstruct_model` run."""

    files: tuple[Path, ...]
    """Every file written: the model files first (level 0, then the coarser levels),
    then the intermediate files kept in ``work``."""
    summary: PipelineSummary
    """Counts and errors of every stage."""
    reconstruction: Reconstruction
    """The cameras, poses and sparse points of structure from motion."""

    @property
    def model(self) -> ModelSummary:
        """Counts of the dense points, the mesh and each level."""
        assert self.summary.model is not None
        return self.summary.model


@dataclass(frozen=True)
class AcceptedPhoto:
    """A photo that passed quality screening."""

    name: str
    width: int
    """Width in pixels, after the EXIF orientation."""
    height: int
    """Height in pixels, after the EXIF orientation."""
    focal_px: float | None
    """Focal length in pixels from EXIF, when the photo has one."""


@dataclass(frozen=True)
class ScreeningReport:
    """Result of quality screening: the accepted photos and the rejected ones with reasons."""

    accepted: tuple[AcceptedPhoto, ...]
    """Photos that passed, in input order."""
    rejected: tuple[UnregisteredImage, ...]
    """Photos left out, in input order, with the reason."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ScreeningReport:
        return cls(
            accepted=tuple(AcceptedPhoto(**_snake_case_keys(p)) for p in data["accepted"]),
            rejected=tuple(UnregisteredImage(**p) for p in data["rejected"]),
        )


@dataclass(frozen=True)
class LevelFile:
    """A level of detail written to a file."""

    path: Path
    vertices: int
    triangles: int

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> LevelFile:
        return cls(Path(data["path"]), data["vertices"], data["triangles"])


def _rows(name: str, values: npt.ArrayLike, dtype: type) -> np.ndarray:
    """Return ``values`` as a C-contiguous array of ``dtype``, checking the (N, 3) shape."""
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[1] != 3:
        raise InvalidInputError(f"invalid {name}: has shape {array.shape}; expected (N, 3)")
    if np.issubdtype(dtype, np.integer) and array.size and array.dtype.kind not in "iu":
        # A cast would truncate fractional indices, turn NaN into 0 and colours in [0, 1]
        # into black, all silently.
        raise InvalidInputError(
            f"invalid {name}: has dtype {array.dtype}; expected integers that fit "
            f"{np.dtype(dtype).name}"
        )
    if not np.issubdtype(dtype, np.integer) and array.dtype.kind not in "iuf":
        raise InvalidInputError(f"invalid {name}: has dtype {array.dtype}; expected numbers")
    if np.issubdtype(dtype, np.integer) and array.size and not np.issubdtype(array.dtype, dtype):
        # A plain cast would wrap negative or large indices and colours around silently.
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInputError(
                f"invalid {name}: values from {array.min()} to {array.max()} do not fit "
                f"{np.dtype(dtype).name}"
            )
    return np.ascontiguousarray(array, dtype=dtype)


@dataclass(eq=False)
class Mesh:
    """An indexed triangle mesh as numpy arrays, one row per vertex or triangle.

    Triangles wind counter-clockwise seen from outside, so their right-hand normals point
    outwards. Positions and normals of other numeric dtypes are converted when the mesh is
    written. Triangles and colours must be integer arrays whose values fit the dtype.
    """

    positions: npt.NDArray[np.float32]
    """Vertex positions, float32 of shape (N, 3)."""
    triangles: npt.NDArray[np.uint32]
    """Vertex indices of each triangle, uint32 of shape (M, 3)."""
    normals: npt.NDArray[np.float32] | None = None
    """Unit vertex normals, float32 of shape (N, 3), when known."""
    colors: npt.NDArray[np.uint8] | None = None
    """Vertex colours, uint8 RGB of shape (N, 3), when known."""

    def _native(self) -> tuple[Any, Any, Any, Any]:
        return (
            _rows("mesh.positions", self.positions, np.float32),
            None if self.normals is None else _rows("mesh.normals", self.normals, np.float32),
            None if self.colors is None else _rows("mesh.colors", self.colors, np.uint8),
            _rows("mesh.triangles", self.triangles, np.uint32),
        )

    @classmethod
    def _from_native(cls, arrays: tuple[Any, Any, Any, Any]) -> Mesh:
        positions, normals, colors, triangles = arrays
        return cls(positions=positions, triangles=triangles, normals=normals, colors=colors)

    def __repr__(self) -> str:
        return f"Mesh(vertices={len(self.positions)}, triangles={len(self.triangles)})"


@dataclass(eq=False)
class PointCloud:
    """Points with colours and optional normals as numpy arrays, one row per point."""

    positions: npt.NDArray[np.float64]
    """Positions, float64 of shape (N, 3)."""
    colors: npt.NDArray[np.uint8]
    """RGB colours, uint8 of shape (N, 3)."""
    normals: npt.NDArray[np.float64] | None = None
    """Unit normals, float64 of shape (N, 3), when known."""

    def __len__(self) -> int:
        return len(self.positions)

    def _native(self) -> tuple[Any, Any, Any]:
        return (
            _rows("points.positions", self.positions, np.float64),
            _rows("points.colors", self.colors, np.uint8),
            None if self.normals is None else _rows("points.normals", self.normals, np.float64),
        )

    @classmethod
    def _from_native(cls, arrays: tuple[Any, Any, Any]) -> PointCloud:
        positions, colors, normals = arrays
        return cls(positions=positions, colors=colors, normals=normals)

    def __repr__(self) -> str:
        normals = "with" if self.normals is not None else "without"
        return f"PointCloud(points={len(self)}, {normals} normals)"


PathLike = Union[str, "os.PathLike[str]"]


def _path(value: PathLike | None) -> str | None:
    return None if value is None else os.fspath(value)


def reconstruct_model(
    photos: PhotoLike | Sequence[PhotoLike],
    output: PathLike,
    *,
    set: str | None = None,
    work: PathLike | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> ModelResult:
    """Reconstruct a model from photos of an object: every stage, photos to model files.

    Runs quality screening, structure from motion, dense multi-view stereo, point
    clean-up, Poisson meshing, levels of detail and export, as ``kai reconstruct`` does.
    ``photos``, ``set`` and ``registry`` are as for :func:`reconstruct`. The full mesh
    goes to ``output``, whose extension (``.glb``, ``.ply`` or ``.obj``) chooses the
    format, and each coarser level N next to it as ``NAME.lodN.EXT`` (``model.glb``,
    ``model.lod1.glb``, ...). The set's ``recon.export.compression`` selects the
    compression of GLB files (EXT_meshopt_compression by default). With
    ``work``, the files between the stages are kept in that folder under the names the
    ``kai recon`` commands use: ``sparse/``, ``dense.ply``, ``mesh.ply`` and ``lod/``.

    ``progress`` is called as ``progress(stage, fraction)`` as for :func:`reconstruct`,
    through the stages after structure from motion too (``depth_maps``, ``fusion``,
    ``meshing``, ``simplification``, ``export``). The GIL is released during the run,
    which takes minutes for a few dozen photos.

    Raises
    ------
    kai.InvalidInputError
        For an output without a model extension, an unusable photo or option, or a
        capture from which no model can be made (the message names the cause, such as
        too few dense points for a surface).
    kai.NotFoundError
        When the photo folder or the parameter set does not exist.
    kai.StorageError
        When a photo cannot be read or a file cannot be written.
    """
    check_progress(progress)
    native, report = _kai.reconstruct_model(
        _photos_arg(photos),
        os.fspath(output),
        work=_path(work),
        set=set,
        registry=_native_registry(registry),
        progress=progress,
    )
    data = json.loads(report)
    return ModelResult(
        files=tuple(Path(f) for f in data["files"]),
        summary=PipelineSummary._from_json(data["summary"]),
        reconstruction=Reconstruction(native),
    )


def screen(
    photos: PhotoLike | Sequence[PhotoLike],
    output: PathLike | None = None,
    *,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> ScreeningReport:
    """Screen photos as a reconstruction would, without reconstructing.

    Each photo is decoded under the image limits, its EXIF focal length read and the
    quality thresholds of ``set`` applied, as ``kai recon screen`` does. With ``output``,
    the report is written there as JSON (``screening.json``). ``photos``, ``set``,
    ``registry`` and ``progress`` are as for :func:`reconstruct`.

    Raises
    ------
    kai.InvalidInputError
        For a folder without photos or an invalid option.
    kai.NotFoundError
        When the photo folder or the parameter set does not exist.
    """
    check_progress(progress)
    report = _kai.screen(
        _photos_arg(photos),
        _path(output),
        set=set,
        registry=_native_registry(registry),
        progress=progress,
    )
    return ScreeningReport._from_json(json.loads(report))


def densify(
    sparse: Reconstruction | PathLike,
    photos: PhotoLike | Sequence[PhotoLike],
    output: PathLike | None = None,
    *,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> PointCloud:
    """Compute dense points from a sparse model by multi-view stereo.

    ``sparse`` is a :class:`Reconstruction` or the folder of a COLMAP text model (as
    :meth:`Reconstruction.write` and ``kai recon sfm`` write it). Each registered photo
    is read from ``photos`` by name, so give the photos the model was reconstructed
    from. Depth maps of the registered photos are fused into points with colours and
    normals that face the cameras, as ``kai recon dense`` does. With ``output``, the
    points are also written there as binary PLY (``dense.ply``). ``progress`` reports
    the stages ``depth_maps`` and ``fusion``.

    Raises
    ------
    kai.InvalidInputError
        For an output without a .ply extension, a registered photo that is missing or
        whose size differs from its camera, or an invalid option.
    kai.NotFoundError
        When the model folder or the parameter set does not exist.
    """
    check_progress(progress)
    if isinstance(sparse, Reconstruction):
        native_sparse: Any = sparse._native
    elif isinstance(sparse, (str, os.PathLike)):
        native_sparse = os.fspath(sparse)
    else:
        raise TypeError(
            f"sparse must be a Reconstruction or a folder path, got {type(sparse).__name__}"
        )
    arrays = _kai.densify(
        native_sparse,
        _photos_arg(photos),
        _path(output),
        set=set,
        registry=_native_registry(registry),
        progress=progress,
    )
    return PointCloud._from_native(arrays)


def _points_arg(points: PointCloud | PathLike) -> Any:
    if isinstance(points, PointCloud):
        return points._native()
    if isinstance(points, (str, os.PathLike)):
        return os.fspath(points)
    raise TypeError(f"points must be a PointCloud or a PLY path, got {type(points).__name__}")


def _mesh_arg(name: str, value: Mesh | PathLike) -> Any:
    if isinstance(value, Mesh):
        return value._native()
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"{name} must be a Mesh or a mesh file path, got {type(value).__name__}")


def mesh(
    points: PointCloud | PathLike,
    output: PathLike | None = None,
    *,
    set: str | None = None,
    registry: Registry | None = None,
    progress: Callable[[str, float], object] | None = None,
) -> Mesh:
    """Reconstruct a surface from points, as ``kai recon mesh`` does.

    ``points`` is a :class:`PointCloud` or a PLY file (such as the ``dense.ply`` of
    :func:`densify`). The points are down-sampled, outliers removed and normals
    estimated (keeping the sign of normals the points have), then a screened Poisson
    surface is fitted and trimmed where no points support it, with the settings of
    ``set``. With ``output`` (``.ply``, ``.obj`` or ``.glb``) the mesh is written there.
    ``progress`` reports the stage ``meshing``.

    Raises
    ------
    kai.InvalidInputError
        For a malformed PLY file, arrays of the wrong shape or with values that are not
        finite, too few points for a surface, or an output without a model extension.
    kai.NotFoundError
        When the PLY file or the parameter set does not exist.
    """
    check_progress(progress)
    arrays = _kai.mesh(
        _points_arg(points),
        _path(output),
        set=set,
        registry=_native_registry(registry),
        progress=progress,
    )
    return Mesh._from_native(arrays)


def levels_of_detail(
    mesh: Mesh | PathLike,
    output_dir: PathLike,
    *,
    set: str | None = None,
    registry: Registry | None = None,
) -> tuple[LevelFile, ...]:
    """Simplify a mesh into levels of detail, as ``kai recon lod`` does.

    ``mesh`` is a :class:`Mesh` or a mesh file (``.ply``, ``.obj``, ``.glb``). The set's
    ``recon.lod.*`` values give the number of levels and the share of triangles each
    keeps. The levels go into the folder ``output_dir`` (created when missing) as binary
    PLY: ``lod0.ply`` (the full mesh), ``lod1.ply``, ...

    Raises
    ------
    kai.InvalidInputError
        For a malformed mesh file or arrays, or ``output_dir`` that is a file.
    kai.NotFoundError
        When the mesh file or the parameter set does not exist.
    """
    levels = _kai.levels_of_detail(
        _mesh_arg("mesh", mesh),
        os.fspath(output_dir),
        set=set,
        registry=_native_registry(registry),
    )
    return tuple(LevelFile._from_json(level) for level in json.loads(levels))


def export_model(
    input: Mesh | Sequence[Mesh] | PathLike,
    output: PathLike,
    *,
    compression: str | None = None,
    set: str | None = None,
    registry: Registry | None = None,
) -> tuple[LevelFile, ...]:
    """Write levels of detail as model files, as ``kai recon export`` does.

    ``input`` is a folder that :func:`levels_of_detail` wrote (``lod0.ply``, ...), one
    mesh file, a :class:`Mesh`, or a list of meshes with the full one first. Level 0 goes
    to ``output``, whose extension (``.glb``, ``.ply`` or ``.obj``) chooses the format,
    and level N next to it as ``NAME.lodN.EXT``. GLB files use ``compression``:
    ``"meshopt"`` (EXT_meshopt_compression) or ``"none"``, by default the set's
    ``recon.export.compression``.

    Raises
    ------
    kai.InvalidInputError
        For an unknown compression or output extension, or a malformed mesh file.
    kai.NotFoundError
        When the input or the parameter set does not exist.
    """
    if isinstance(input, (list, tuple)):
        native: Any = [_mesh_arg(f"input[{i}]", level) for i, level in enumerate(input)]
    else:
        native = _mesh_arg("input", input)
    levels = _kai.export_model(
        native,
        os.fspath(output),
        compression=compression,
        set=set,
        registry=_native_registry(registry),
    )
    return tuple(LevelFile._from_json(level) for level in json.loads(levels))


def read_mesh(path: PathLike) -> Mesh:
    """Read a mesh from a ``.ply``, ``.obj`` or ``.glb`` file.

    GLB files may be compressed with EXT_meshopt_compression. Polygons of PLY and OBJ
    files are split into triangles. The GIL is released while the file is read.

    Raises
    ------
    kai.InvalidInputError
        For another extension, or a malformed file (the message names the file and the
        place in it).
    kai.NotFoundError
        When the file does not exist.
    """
    return Mesh._from_native(_kai.read_mesh(os.fspath(path)))


def write_mesh(mesh: Mesh, path: PathLike, *, compression: str = "meshopt") -> None:
    """Write a mesh to ``path`` in the format of its extension (``.ply``, ``.obj``, ``.glb``).

    PLY files are binary; OBJ files come with a material file ``NAME.mtl`` next to them.
    GLB files use ``compression``, ``"meshopt"`` (EXT_meshopt_compression, smaller
    files) or ``"none"``.

    Raises
    ------
    kai.InvalidInputError
        For another extension, an unknown compression, arrays of the wrong shape,
        values that are not finite, or triangles that refer to missing vertices.
    kai.StorageError
        When the file cannot be written.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a kai.recon.Mesh, got {type(mesh).__name__}")
    _kai.write_mesh(*mesh._native(), os.fspath(path), compression=compression)


def read_points(path: PathLike) -> PointCloud:
    """Read the points of a PLY file, ASCII or binary.

    Points without colours read as grey (128). Faces of a mesh file are ignored.

    Raises
    ------
    kai.InvalidInputError
        For a malformed file (the message names the file and the place in it).
    kai.NotFoundError
        When the file does not exist.
    """
    return PointCloud._from_native(_kai.read_points(os.fspath(path)))


def write_points(points: PointCloud, path: PathLike, *, ascii: bool = False) -> None:
    """Write points to a PLY file, binary little-endian unless ``ascii``.

    Raises
    ------
    kai.InvalidInputError
        For a path without a .ply extension, arrays of the wrong shape or values that
        are not finite.
    kai.StorageError
        When the file cannot be written.
    """
    if not isinstance(points, PointCloud):
        raise TypeError(f"points must be a kai.recon.PointCloud, got {type(points).__name__}")
    _kai.write_points(*points._native(), os.fspath(path), ascii=ascii)


@dataclass(frozen=True)
class JobError:
    """The error that ended a failed reconstruction job."""

    code: str
    """The kai error code, such as ``KAI_INVALID_INPUT``."""
    message: str


@dataclass(frozen=True)
class ReconJob:
    """A reconstruction job, with the fields of kai-server's ``/api/recon/jobs`` JSON."""

    id: str
    """The job id, a lower-case UUID."""
    status: str
    """``queued``, ``running``, ``succeeded`` or ``failed``."""
    stage: str | None
    """The running or last stage, such as ``matching``, or None before the job starts."""
    progress: float
    """Share of the work done, from 0 to 1."""
    error: JobError | None
    """The error that ended the job; None unless ``status`` is ``failed``."""
    result: PipelineSummary | None
    """Counts and errors; None unless ``status`` is ``succeeded``."""
    files: tuple[str, ...]
    """Output files of a succeeded job: the models first (``model.glb``,
    ``model.lod1.glb``, ...), then ``cameras.txt``, ``images.txt``, ``points3D.txt``,
    ``points.ply``, ``dense.ply`` and ``mesh.ply``."""
    created_at: str
    """Submission time, RFC 3339 in UTC."""
    finished_at: str | None
    """End time, RFC 3339 in UTC; None while the job waits or runs."""

    @property
    def finished(self) -> bool:
        """Whether the job has ended, successfully or not."""
        return self.status in ("succeeded", "failed")

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ReconJob:
        fields = _snake_case_keys(data)
        if fields["error"] is not None:
            fields["error"] = JobError(**fields["error"])
        if fields["result"] is not None:
            fields["result"] = PipelineSummary._from_json(fields["result"])
        fields["files"] = tuple(fields["files"])
        return cls(**fields)


class JobQueue:
    """Reconstruction jobs in the folder ``root``, run by ``workers`` threads of this process.

    Each job runs every stage, as :func:`reconstruct_model` does, and keeps its record
    and, once it succeeded, its output files (see :attr:`ReconJob.files`) in
    ``root/<id>/``. Jobs left queued or running by an earlier process are marked failed
    when the queue opens. One process at a time may use a folder.
    """

    def __init__(self, root: str | os.PathLike[str], workers: int = 1) -> None:
        self._native = _kai.JobQueue(os.fspath(root), workers)

    @property
    def root(self) -> Path:
        """The job folder."""
        return Path(self._native.root)

    @property
    def max_images(self) -> int:
        """The maximum number of photos in one job."""
        return self._native.max_images

    def submit(
        self,
        photos: PhotoLike | Sequence[PhotoLike],
        *,
        set: str | None = None,
        registry: Registry | None = None,
    ) -> ReconJob:
        """Store the photos in a new job and queue it; return the job, ``queued``.

        ``photos`` and ``set`` are as for :func:`reconstruct_model`. Photo names must be
        unique.

        Raises
        ------
        kai.InvalidInputError
            For fewer than 2 or more than :attr:`max_images` photos, a repeated name, or
            a file that is not an image.
        """
        job = self._native.submit(_photos_arg(photos), set, _native_registry(registry))
        return ReconJob._from_json(json.loads(job))

    def get(self, id: str) -> ReconJob | None:
        """Return the job ``id``, or None when no job has it."""
        job = self._native.get(id)
        return None if job is None else ReconJob._from_json(json.loads(job))

    def list(self) -> list[ReconJob]:
        """Return every job, oldest first."""
        return [ReconJob._from_json(job) for job in json.loads(self._native.list())]

    def file(self, id: str, name: str) -> Path:
        """Return the path of the output file ``name`` of a succeeded job.

        Raises
        ------
        kai.NotFoundError
            For an unknown job or a name that is not in the job's :attr:`ReconJob.files`.
        """
        return Path(self._native.file(id, name))

    def wait(self, id: str, *, timeout: float | None = None, interval: float = 0.25) -> ReconJob:
        """Poll the job every ``interval`` seconds until it finishes and return it.

        Raises
        ------
        kai.NotFoundError
            When no job has the id.
        TimeoutError
            When the job has not finished after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(id)
            if job is None:
                raise NotFoundError(f"reconstruction job `{id}` not found")
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"reconstruction job {id} is still {job.status} after {timeout} s "
                    f"({job.progress:.0%} done)"
                )
            time.sleep(interval)

    def __repr__(self) -> str:
        return f"JobQueue(root={str(self.root)!r})"
