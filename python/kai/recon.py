"""3D reconstruction: calibrated cameras and a sparse point cloud from photos of an object.

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
from kai.errors import NotFoundError
from kai.registry import Registry

__all__ = [
    "Camera",
    "JobError",
    "JobQueue",
    "Points",
    "ReconJob",
    "Reconstruction",
    "ReconstructionSummary",
    "RegisteredImage",
    "RelativePose",
    "SyntheticScene",
    "UnregisteredImage",
    "generate_scene",
    "reconstruct",
    "relative_pose",
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
    ``refinement``) and the overall fraction in [0, 1], which never decreases. It runs on
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
) -> SyntheticScene:
    """Render a synthetic scene with known cameras into ``out_dir``.

    Textured boxes on a textured ground plane are ray cast from ``images`` cameras on a
    ring around them, with changes of distance, roll and lighting. The same arguments
    give the same pixels. As ``kai recon synth`` does, the PNGs go into ``out_dir`` and
    the ground truth into ``out_dir/ground_truth`` (COLMAP text model and points.ply)
    with ``points`` sampled surface points, so ``reconstruct(out_dir)`` reads the photos.
    The GIL is released while the scene renders.

    Raises
    ------
    kai.InvalidInputError
        For a size or count outside the generator's ranges (1-1000 images, 16-8192 px).
    kai.StorageError
        When ``out_dir`` cannot be written.
    """
    out = Path(out_dir)
    paths, truth = _kai.generate_scene(
        os.fspath(out), images=images, seed=seed, width=width, height=height, points=points
    )
    return SyntheticScene(
        images=tuple(Path(p) for p in paths),
        ground_truth=Reconstruction(truth),
        ground_truth_dir=out / "ground_truth",
    )


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
    result: ReconstructionSummary | None
    """Counts and errors; None unless ``status`` is ``succeeded``."""
    files: tuple[str, ...]
    """Output files of a succeeded job (``cameras.txt``, ``images.txt``, ...)."""
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
            fields["result"] = ReconstructionSummary._from_json(fields["result"])
        fields["files"] = tuple(fields["files"])
        return cls(**fields)


class JobQueue:
    """Reconstruction jobs in the folder ``root``, run by ``workers`` threads of this process.

    Each job keeps its record and, once it succeeded, its COLMAP text model and points.ply
    in ``root/<id>/``. Jobs left queued or running by an earlier process are marked failed
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

        ``photos`` and ``set`` are as for :func:`reconstruct`. Photo names must be unique.

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
