"""Tests of kai.recon on scenes rendered by kai's synthetic scene generator: two-view
relative pose on seeded correspondences, structure from motion against the ground-truth
cameras, the written COLMAP model (read back with pycolmap) and the job queue's errors
(test_recon_model.py runs jobs to the end)."""

import io

import numpy as np
import pytest
from PIL import Image

import kai
from kai import recon

# The scene that the structure-from-motion tests reconstruct: 16 photos of 640x480 on a
# full ring of cameras. Rendering it takes a few seconds.
SCENE_IMAGES = 16
SCENE_SEED = 3

# Accuracy bounds of a reconstruction of the scene, after a similarity alignment of the
# camera centres to the ground truth.
MAX_ROTATION_ERROR_DEG = 1.0
MAX_CENTER_ERROR_RATIO = 0.02  # of the mean distance of the true centres from their mean
MAX_MEAN_REPROJECTION_ERROR_PX = 1.0
MIN_REGISTERED = SCENE_IMAGES - 1


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Return the angle of the rotation that takes ``a`` to ``b``, in degrees."""
    cosine = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def align_similarity(source: np.ndarray, target: np.ndarray):
    """Return ``(scale, rotation, translation)`` minimising the squared distances of
    ``scale * rotation @ source[i] + translation`` to ``target[i]``, in closed form from
    the SVD of the cross-covariance of the centred points."""
    mu_s = source.mean(axis=0)
    mu_t = target.mean(axis=0)
    s = source - mu_s
    t = target - mu_t
    covariance = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    variance = (s**2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ sign) / variance)
    translation = mu_t - scale * rotation @ mu_s
    return scale, rotation, translation


def random_rotation(rng: np.random.Generator, max_angle_deg: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-max_angle_deg, max_angle_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def two_view_correspondences(seed: int, count: int, outlier_ratio: float, noise_px: float):
    """Return normalized correspondences of random points seen by two cameras with a
    known relative pose, with Gaussian noise (pixels at a focal length of 1000 px) and a
    share of random outliers."""
    rng = np.random.default_rng(seed)
    rotation = random_rotation(rng, 15.0)
    translation = rng.normal(size=3)
    translation /= np.linalg.norm(translation)
    points = np.column_stack(
        [rng.uniform(-2, 2, count), rng.uniform(-2, 2, count), rng.uniform(4, 8, count)]
    )
    in_second = points @ rotation.T + translation
    x1 = points[:, :2] / points[:, 2:]
    x2 = in_second[:, :2] / in_second[:, 2:]
    x1 += rng.normal(scale=noise_px / 1000.0, size=x1.shape)
    x2 += rng.normal(scale=noise_px / 1000.0, size=x2.shape)
    outliers = rng.random(count) < outlier_ratio
    x2[outliers] = rng.uniform(-0.5, 0.5, size=(int(outliers.sum()), 2))
    return x1, x2, rotation, translation, outliers


def test_relative_pose_recovers_pose_with_outliers():
    x1, x2, rotation, translation, outliers = two_view_correspondences(
        seed=11, count=500, outlier_ratio=0.3, noise_px=0.5
    )
    pose = recon.relative_pose(x1, x2, threshold=2e-3, seed=5)
    assert pose.rotation.shape == (3, 3)
    assert pose.translation.shape == (3,)
    assert pose.inliers.dtype == np.bool_
    assert rotation_angle_deg(pose.rotation, rotation) < 0.2
    direction_error = np.degrees(np.arccos(np.clip(pose.translation @ translation, -1, 1)))
    assert direction_error < 1.0
    assert abs(np.linalg.norm(pose.translation) - 1.0) < 1e-9
    # Almost every true inlier is kept and almost every outlier rejected.
    assert pose.inliers[~outliers].mean() > 0.95
    assert pose.inliers[outliers].mean() < 0.05


def test_relative_pose_repeats_with_seed():
    x1, x2, *_ = two_view_correspondences(seed=12, count=200, outlier_ratio=0.4, noise_px=1.0)
    first = recon.relative_pose(x1, x2, threshold=2e-3, seed=9)
    second = recon.relative_pose(x1, x2, threshold=2e-3, seed=9)
    np.testing.assert_array_equal(first.rotation, second.rotation)
    np.testing.assert_array_equal(first.translation, second.translation)
    np.testing.assert_array_equal(first.inliers, second.inliers)


def test_relative_pose_accepts_float32_lists():
    x1, x2, rotation, *_ = two_view_correspondences(
        seed=13, count=100, outlier_ratio=0.0, noise_px=0.0
    )
    pose = recon.relative_pose(x1.astype(np.float32), x2.tolist())
    assert rotation_angle_deg(pose.rotation, rotation) < 0.1


@pytest.mark.parametrize(
    ("x1", "x2", "message"),
    [
        (np.zeros((10, 3)), np.zeros((10, 3)), r"shape \(10, 3\); expected \(N, 2\)"),
        (np.zeros((10, 2)), np.zeros((9, 2)), "correspondences come in pairs"),
        (np.zeros((3, 2)), np.zeros((3, 2)), "at least 5"),
        (np.full((10, 2), np.nan), np.zeros((10, 2)), "not finite"),
    ],
)
def test_relative_pose_rejects_bad_input(x1, x2, message):
    with pytest.raises(kai.InvalidInputError, match=message):
        recon.relative_pose(x1, x2)


def test_relative_pose_rejects_pure_rotation():
    rng = np.random.default_rng(14)
    rotation = random_rotation(rng, 10.0)
    points = rng.normal(size=(200, 3)) + np.array([0.0, 0.0, 6.0])
    x1 = points[:, :2] / points[:, 2:]
    turned = points @ rotation.T
    x2 = turned[:, :2] / turned[:, 2:]
    with pytest.raises(kai.InvalidInputError):
        recon.relative_pose(x1, x2)


def test_generate_scene_writes_photos_and_ground_truth(tmp_path):
    scene = recon.generate_scene(tmp_path / "scene", images=4, seed=1, width=160, height=120)
    assert [p.name for p in scene.images] == [f"image_{i:03}.png" for i in range(4)]
    for path in scene.images:
        assert path.parent == tmp_path / "scene"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    truth = scene.ground_truth
    assert len(truth.images) == 4
    assert truth.cameras[0].width == 160
    assert truth.cameras[0].height == 120
    for image in truth.images:
        np.testing.assert_allclose(image.rotation @ image.rotation.T, np.eye(3), atol=1e-12)
    assert len(truth.points) > 100
    assert truth.points.xyz.shape == (len(truth.points), 3)
    assert (truth.points.track_length >= 2).all()
    assert truth.summary.mean_reprojection_error < 1e-9
    for name in ("cameras.txt", "images.txt", "points3D.txt", "points.ply"):
        assert (scene.ground_truth_dir / name).is_file()


def test_generate_scene_repeats_with_seed(tmp_path):
    first = recon.generate_scene(tmp_path / "a", images=2, seed=5, width=64, height=48)
    second = recon.generate_scene(tmp_path / "b", images=2, seed=5, width=64, height=48)
    other = recon.generate_scene(tmp_path / "c", images=2, seed=6, width=64, height=48)
    assert first.images[1].read_bytes() == second.images[1].read_bytes()
    assert first.images[1].read_bytes() != other.images[1].read_bytes()


def test_generate_scene_rejects_tiny_size(tmp_path):
    with pytest.raises(kai.InvalidInputError, match="width"):
        recon.generate_scene(tmp_path, images=2, width=8, height=48)
    with pytest.raises(kai.InvalidInputError, match="arc_degrees"):
        recon.generate_scene(tmp_path, images=2, arc_degrees=5)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return recon.generate_scene(
        tmp_path_factory.mktemp("recon") / "scene", images=SCENE_IMAGES, seed=SCENE_SEED
    )


@pytest.fixture(scope="module")
def reconstructed(scene, tmp_path_factory):
    """The scene reconstructed once from its folder with the model written out, and the
    progress reports of the run."""
    out = tmp_path_factory.mktemp("model")
    reports = []

    def progress(stage, fraction):
        reports.append((stage, fraction))

    model = recon.reconstruct(scene.images[0].parent, out=out, progress=progress)
    assert scene.images[0].parent.name == "scene"
    return model, out, reports


def test_reconstruct_registers_every_photo(reconstructed):
    model, _, _ = reconstructed
    summary = model.summary
    assert summary.images == SCENE_IMAGES
    assert summary.registered_images >= MIN_REGISTERED, summary.unregistered
    assert summary.registered_images + len(summary.unregistered) == SCENE_IMAGES
    assert summary.points == len(model.points) > 500
    assert summary.mean_track_length > 2.0
    assert summary.mean_reprojection_error < MAX_MEAN_REPROJECTION_ERROR_PX


def test_reconstruct_matches_ground_truth(reconstructed, scene):
    model, _, _ = reconstructed
    truth = {image.name: image for image in scene.ground_truth.images}
    names = [image.name for image in model.images]
    estimated = np.array([image.center for image in model.images])
    expected = np.array([truth[name].center for name in names])
    scale, rotation, translation = align_similarity(estimated, expected)
    aligned = scale * estimated @ rotation.T + translation
    spread = np.linalg.norm(expected - expected.mean(axis=0), axis=1).mean()
    center_errors = np.linalg.norm(aligned - expected, axis=1) / spread
    assert center_errors.max() < MAX_CENTER_ERROR_RATIO, center_errors
    # A world change x_true = s R x + t turns a camera rotation R_i into R_i Rᵀ.
    rotation_errors = [
        rotation_angle_deg(image.rotation @ rotation.T, truth[image.name].rotation)
        for image in model.images
    ]
    assert max(rotation_errors) < MAX_ROTATION_ERROR_DEG, rotation_errors


def test_reconstruct_returns_consistent_arrays(reconstructed):
    model, _, _ = reconstructed
    count = len(model.points)
    assert model.points.xyz.shape == (count, 3)
    assert model.points.xyz.dtype == np.float64
    assert model.points.rgb.shape == (count, 3)
    assert model.points.rgb.dtype == np.uint8
    assert model.points.error.shape == (count,)
    assert (model.points.track_length >= 2).all()
    assert np.isfinite(model.points.xyz).all()
    # The textures are coloured, so the sampled colours are not all grey.
    assert model.points.rgb.std(axis=0).max() > 10
    for image in model.images:
        assert image.rotation.shape == (3, 3)
        np.testing.assert_allclose(image.rotation @ image.rotation.T, np.eye(3), atol=1e-9)
        assert 0 <= image.camera < len(model.cameras)
    assert model.cameras[0].model in ("PINHOLE", "OPENCV")


def test_reconstruct_reports_progress_in_order(reconstructed):
    _, _, reports = reconstructed
    stages = [stage for stage, _ in reports]
    fractions = [fraction for _, fraction in reports]
    order = ["screening", "features", "matching", "verification", "registration", "refinement"]
    assert set(stages) <= set(order)
    seen = [stage for i, stage in enumerate(stages) if i == 0 or stages[i - 1] != stage]
    assert seen == sorted(seen, key=order.index), seen
    assert "registration" in stages
    assert fractions == sorted(fractions)
    assert 0.0 <= fractions[0]
    assert fractions[-1] <= 1.0
    assert fractions[-1] > 0.9


def test_reconstruct_writes_model_that_pycolmap_reads(reconstructed):
    pycolmap = pytest.importorskip("pycolmap")
    model, out, _ = reconstructed
    for name in ("cameras.txt", "images.txt", "points3D.txt", "points.ply"):
        assert (out / name).is_file()
    read = pycolmap.Reconstruction(str(out))
    assert read.num_cameras() == len(model.cameras)
    assert read.num_reg_images() == len(model.images)
    assert read.num_points3D() == len(model.points)
    names = sorted(image.name for image in read.images.values())
    assert names == sorted(image.name for image in model.images)
    by_name = {image.name: image for image in read.images.values()}
    for image in model.images:
        pose = by_name[image.name].cam_from_world()
        np.testing.assert_allclose(pose.rotation.matrix(), image.rotation, atol=1e-6)
        np.testing.assert_allclose(pose.translation, image.translation, atol=1e-6)


def test_ground_truth_model_is_read_by_pycolmap(scene):
    pycolmap = pytest.importorskip("pycolmap")
    read = pycolmap.Reconstruction(str(scene.ground_truth_dir))
    assert read.num_reg_images() == SCENE_IMAGES
    assert read.num_points3D() == len(scene.ground_truth.points)


def test_reconstruct_photos_as_bytes_with_set(scene, tmp_path):
    """Photos given as bytes are named image-N, and a store's set configures the run."""
    registry = kai.Registry(tmp_path / "store")
    photos = [path.read_bytes() for path in scene.images]
    model = recon.reconstruct(photos, set="standard", registry=registry)
    names = {image.name for image in model.images} | {u.name for u in model.unregistered}
    assert names == {f"image-{i}" for i in range(1, SCENE_IMAGES + 1)}
    assert model.summary.registered_images >= MIN_REGISTERED
    assert model.summary.mean_reprojection_error < MAX_MEAN_REPROJECTION_ERROR_PX


def test_reconstruct_applies_set_quality_thresholds(scene):
    """The shipped premium set screens out photos below its minimum resolution, which
    the 640x480 photos of the scene are."""
    with pytest.raises(kai.InvalidInputError, match="low_resolution"):
        recon.reconstruct(scene.images[:3], set="premium")


def test_reconstruct_rejects_unknown_set(scene, tmp_path):
    registry = kai.Registry(tmp_path / "store")
    with pytest.raises(kai.NotFoundError, match="no-such-set"):
        recon.reconstruct(scene.images[:2], set="no-such-set", registry=registry)
    with pytest.raises(kai.NotFoundError, match="no-such-set"):
        recon.reconstruct(scene.images[:2], set="no-such-set")
    with pytest.raises(TypeError, match="registry must be"):
        recon.reconstruct(scene.images[:2], set="standard", registry="kai-data")


def test_reconstruct_rejects_bad_photos(tmp_path):
    with pytest.raises(kai.InvalidInputError, match=r"photos\[1\]"):
        recon.reconstruct([str(tmp_path / "a.png"), 42])
    with pytest.raises(TypeError, match="photos must be"):
        recon.reconstruct(42)
    with pytest.raises(TypeError, match="progress must be"):
        recon.reconstruct(str(tmp_path), progress="not callable")
    (tmp_path / "notes.txt").write_text("no photos here")
    with pytest.raises(kai.InvalidInputError, match="contains no photo"):
        recon.reconstruct(tmp_path)
    with pytest.raises(kai.NotFoundError, match="photo folder"):
        recon.reconstruct(tmp_path / "no-such-folder")


def test_reconstruct_names_unusable_photos(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(kai.InvalidInputError, match="broken.png: cannot be decoded"):
        recon.reconstruct([broken, tmp_path / "missing.png"])
    with pytest.raises(kai.InvalidInputError, match="missing.png: cannot be decoded"):
        recon.reconstruct([broken, tmp_path / "missing.png"])


def test_job_queue_rejects_bad_requests(tmp_path):
    queue = recon.JobQueue(tmp_path / "jobs")
    with pytest.raises(kai.InvalidInputError, match="at least 2 photos"):
        queue.submit([b"only one"])
    assert queue.get("00000000-0000-4000-8000-000000000000") is None
    assert queue.get("../etc") is None
    with pytest.raises(kai.NotFoundError):
        queue.file("00000000-0000-4000-8000-000000000000", "cameras.txt")
    with pytest.raises(kai.NotFoundError):
        queue.wait("00000000-0000-4000-8000-000000000000")
    with pytest.raises(kai.InvalidInputError, match="workers"):
        recon.JobQueue(tmp_path / "other", workers=0)


def test_job_queue_marks_failed_job(tmp_path):
    queue = recon.JobQueue(tmp_path / "jobs")
    flat = np.full((120, 160, 3), 128, dtype=np.uint8)
    photos = []
    for _ in range(2):
        buffer = io.BytesIO()
        Image.fromarray(flat).save(buffer, format="PNG")
        photos.append(buffer.getvalue())
    job = queue.submit(photos)
    finished = queue.wait(job.id, timeout=120)
    assert finished.status == "failed"
    assert finished.error.code.startswith("KAI_")
    assert finished.error.message
    assert finished.files == ()
    assert finished.result is None
