"""Tests of the reconstruction stages after structure from motion in kai.recon.

They cover the whole pipeline on a small rendered scene, with model files that read back
and are checked against the scene's true surface. They also cover each stage on its own,
the job queue, mesh and point cloud files with numpy arrays, and the errors of bad input.
GLB files are also read by a minimal reader in this file, independent of kai's."""

import json
import struct

import numpy as np
import pytest
from PIL import Image

import kai
from kai import recon

# A small scene, so the whole pipeline takes seconds: 10 photos of 400x300 on a 90 degree
# arc, as kai-core's job test uses.
SMALL_SCENE = dict(images=10, width=400, height=300, seed=7, arc_degrees=90.0)
MIN_REGISTERED = 9
MIN_DENSE_POINTS = 1000
# The true surface samples cover the boxes and the ground within this horizontal distance
# of the origin, in world units. The mesh also covers ground farther out, where no samples
# lie to compare with.
SAMPLED_RADIUS = 2.5
# Distances between the mesh and the true surface, as shares of the spread of the true
# camera centres, after aligning the cameras to the truth. On this scene the mesh vertices
# measured a median of 0.005 and a 90th percentile of 0.014 from the surface, and the true
# samples a median of 0.010 from the nearest vertex.
MAX_MEDIAN_SURFACE_ERROR = 0.01
MAX_P90_SURFACE_ERROR = 0.03
MAX_MEDIAN_SAMPLE_GAP = 0.02
MODEL_STAGES = ["depth_maps", "fusion", "meshing", "simplification", "export"]
ALL_STAGES = [
    "screening",
    "features",
    "matching",
    "verification",
    "registration",
    "refinement",
    *MODEL_STAGES,
]

GLB_JSON = 0x4E4F534A
GLB_BIN = 0x004E4942


def read_glb(path):
    """Return the JSON document and the binary chunk of a GLB file, checking its header."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF", magic
    assert version == 2
    assert length == len(data)
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == GLB_JSON
    document = json.loads(data[20 : 20 + json_length])
    binary = b""
    offset = 20 + json_length
    if offset < len(data):
        bin_length, bin_type = struct.unpack_from("<II", data, offset)
        assert bin_type == GLB_BIN
        binary = data[offset + 8 : offset + 8 + bin_length]
    return document, binary


def accessor(document, binary, index):
    """Return accessor `index` of an uncompressed GLB as an array of shape (count, width)."""
    item = document["accessors"][index]
    view = document["bufferViews"][item["bufferView"]]
    dtype = np.dtype(
        {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}[
            item["componentType"]
        ]
    )
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[item["type"]]
    start = view.get("byteOffset", 0) + item.get("byteOffset", 0)
    stride = view.get("byteStride", dtype.itemsize * width)
    return np.ndarray(
        shape=(item["count"], width),
        dtype=dtype,
        buffer=binary,
        offset=start,
        strides=(stride, dtype.itemsize),
    ).copy()


def primitive(document):
    meshes = document["meshes"]
    assert len(meshes) == 1
    assert len(meshes[0]["primitives"]) == 1
    return meshes[0]["primitives"][0]


def align_similarity(source, target):
    """Return ``(scale, rotation, translation)`` minimising the squared distances of
    ``scale * rotation @ source[i] + translation`` to ``target[i]`` (Umeyama's closed
    form from the SVD of the cross-covariance)."""
    mu_s = source.mean(axis=0)
    mu_t = target.mean(axis=0)
    s = source - mu_s
    t = target - mu_t
    u, d, vt = np.linalg.svd(t.T @ s / len(source))
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / ((s**2).sum() / len(source)))
    return scale, rotation, mu_t - scale * rotation @ mu_s


def nearest_indices(points, reference, k, chunk=256):
    """Return the indices of the ``k`` nearest reference points of each point."""
    out = np.empty((len(points), k), dtype=np.int64)
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        squared = ((block[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)
        out[start : start + chunk] = np.argpartition(squared, k - 1, axis=1)[:, :k]
    return out


def nearest_distances(points, reference):
    """Return each point's distance to the nearest reference point."""
    nearest = reference[nearest_indices(points, reference, 1)[:, 0]]
    return np.linalg.norm(points - nearest, axis=1)


def plane_distances(points, samples, k=8):
    """Return each point's distance to the plane fitted to its ``k`` nearest samples.

    Unlike the distance to the nearest sample, this does not grow with the spacing of the
    samples, as long as the surface is flat at that scale (the scene is made of planes)."""
    neighbours = samples[nearest_indices(points, samples, k)]
    centres = neighbours.mean(axis=1)
    offsets = neighbours - centres[:, None, :]
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", offsets, offsets))
    normals = vectors[:, :, 0]
    return np.abs(((points - centres) * normals).sum(axis=1))


def canonical_triangles(mesh, decimals=4):
    """Return the triangles as corner coordinates, independent of vertex and triangle
    order (writers may reorder both for faster rendering) but not of winding: each
    triangle is rotated to start at its smallest corner, then the triangles are sorted."""
    corners = np.round(np.asarray(mesh.positions, dtype=np.float64)[mesh.triangles], decimals)
    out = []
    for triangle in corners:
        keys = [tuple(corner) for corner in triangle]
        first = keys.index(min(keys))
        out.append(tuple(keys[first:] + keys[:first]))
    return sorted(out)


def tetrahedron():
    """A closed tetrahedron with outward winding, normals and colours."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    triangles = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.uint32)
    centre = positions.mean(axis=0)
    normals = positions - centre
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 200, 200]], dtype=np.uint8)
    return recon.Mesh(positions, triangles, normals=normals, colors=colors)


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):
    return recon.generate_scene(
        tmp_path_factory.mktemp("small") / "scene", points=20000, **SMALL_SCENE
    )


@pytest.fixture(scope="module")
def built(small_scene, tmp_path_factory):
    """The small scene reconstructed once into model.glb, with the stage files kept and
    the progress reports of the run."""
    root = tmp_path_factory.mktemp("built")
    reports = []
    result = recon.reconstruct_model(
        small_scene.images[0].parent,
        root / "out" / "model.glb",
        work=root / "work",
        set="standard",
        progress=lambda stage, fraction: reports.append((stage, fraction)),
    )
    return result, root, reports


def test_reconstruct_model_writes_the_levels(built):
    result, root, _ = built
    summary = result.summary
    assert summary.images == SMALL_SCENE["images"]
    assert summary.registered_images >= MIN_REGISTERED, summary.unregistered
    model = result.model
    assert model.dense_points >= MIN_DENSE_POINTS
    assert 0 < model.surface_points <= model.dense_points
    levels = model.levels
    assert len(levels) >= 2
    assert [level.file for level in levels][:2] == ["model.glb", "model.lod1.glb"]
    triangles = [level.triangles for level in levels]
    assert triangles == sorted(triangles, reverse=True)
    assert triangles[-1] < triangles[0]
    assert result.files[: len(levels)] == tuple(
        root / "out" / level.file for level in levels
    )
    for path in result.files:
        assert path.is_file(), path
    work = root / "work"
    stage_files = (
        "sparse/cameras.txt",
        "sparse/points.ply",
        "dense.ply",
        "mesh.ply",
        "lod/lod0.ply",
    )
    for name in stage_files:
        assert work / name in result.files, name
    assert len(result.reconstruction.images) == summary.registered_images


def test_reconstruct_model_glb_reads_back(built):
    result, root, _ = built
    level = result.model.levels[0]
    mesh = recon.read_mesh(root / "out" / "model.glb")
    assert mesh.positions.dtype == np.float32
    assert mesh.positions.shape == (level.vertices, 3)
    assert mesh.triangles.dtype == np.uint32
    assert mesh.triangles.shape == (level.triangles, 3)
    assert int(mesh.triangles.max()) < len(mesh.positions)
    assert mesh.colors is not None and mesh.colors.dtype == np.uint8
    assert mesh.colors.std(axis=0).max() > 10, "the colours come from the textured photos"
    # The same mesh as the full-resolution level kept in the work folder, up to the
    # precision the compression keeps.
    lod0 = recon.read_mesh(root / "work" / "lod" / "lod0.ply")
    assert lod0.triangles.shape == mesh.triangles.shape
    extent = np.ptp(lod0.positions, axis=0).max()
    np.testing.assert_allclose(
        np.sort(mesh.positions, axis=0), np.sort(lod0.positions, axis=0), atol=1e-3 * extent
    )
    # The file is GLB 2.0 with one primitive whose bounds are the mesh's.
    document, _ = read_glb(root / "out" / "model.glb")
    assert document["asset"]["version"] == "2.0"
    prim = primitive(document)
    bounds = document["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_allclose(bounds["min"], mesh.positions.min(axis=0), atol=1e-3 * extent)
    np.testing.assert_allclose(bounds["max"], mesh.positions.max(axis=0), atol=1e-3 * extent)
    assert "EXT_meshopt_compression" in document.get("extensionsRequired", [])


def test_reconstruct_model_lies_on_the_true_surface(built, small_scene):
    result, root, _ = built
    truth = {image.name: image for image in small_scene.ground_truth.images}
    names = [image.name for image in result.reconstruction.images]
    estimated = np.array([image.center for image in result.reconstruction.images])
    expected = np.array([truth[name].center for name in names])
    scale, rotation, translation = align_similarity(estimated, expected)
    spread = np.linalg.norm(expected - expected.mean(axis=0), axis=1).mean()
    mesh = recon.read_mesh(root / "work" / "mesh.ply")
    vertices = scale * mesh.positions.astype(np.float64) @ rotation.T + translation
    samples = small_scene.ground_truth.points.xyz
    assert np.linalg.norm(samples[:, :2], axis=1).max() <= SAMPLED_RADIUS

    # Accuracy: vertices over the sampled area lie on the true surface.
    inside = vertices[np.linalg.norm(vertices[:, :2], axis=1) < SAMPLED_RADIUS - 0.1]
    assert len(inside) > 1000, len(inside)
    rng = np.random.default_rng(0)
    chosen = inside[rng.choice(len(inside), size=min(3000, len(inside)), replace=False)]
    errors = plane_distances(chosen, samples) / spread
    assert np.median(errors) < MAX_MEDIAN_SURFACE_ERROR, np.percentile(errors, [50, 90])
    assert np.percentile(errors, 90) < MAX_P90_SURFACE_ERROR, np.percentile(errors, [50, 90])

    # Completeness: the mesh reaches the true samples, so it has no large holes there.
    nearby = vertices[np.linalg.norm(vertices[:, :2], axis=1) < SAMPLED_RADIUS + 0.5]
    probes = samples[rng.choice(len(samples), size=min(2000, len(samples)), replace=False)]
    gaps = nearest_distances(probes, nearby) / spread
    assert np.median(gaps) < MAX_MEDIAN_SAMPLE_GAP, np.percentile(gaps, [50, 90])


def test_reconstruct_model_reports_every_stage(built):
    _, _, reports = built
    stages = [stage for stage, _ in reports]
    fractions = [fraction for _, fraction in reports]
    assert set(stages) <= set(ALL_STAGES), set(stages) - set(ALL_STAGES)
    seen = [stage for i, stage in enumerate(stages) if i == 0 or stages[i - 1] != stage]
    assert seen == sorted(seen, key=ALL_STAGES.index), seen
    for stage in ("registration", "depth_maps", "meshing", "export"):
        assert stage in stages, stage
    assert fractions == sorted(fractions)
    assert 0.0 <= fractions[0]
    assert fractions[-1] == pytest.approx(1.0)


def test_stages_chain_through_their_files(built, small_scene, tmp_path):
    """Screening, then dense points, mesh, levels and export from the sparse model that
    the whole run kept, each stage reading the previous one's file."""
    result, root, _ = built
    photos = small_scene.images[0].parent
    report = recon.screen(photos, tmp_path / "screening.json")
    assert len(report.accepted) == SMALL_SCENE["images"]
    assert report.rejected == ()
    assert report.accepted[0].width == SMALL_SCENE["width"]
    written = json.loads((tmp_path / "screening.json").read_text())
    assert [p["name"] for p in written["accepted"]] == [p.name for p in report.accepted]

    reports = []
    cloud = recon.densify(
        root / "work" / "sparse",
        photos,
        tmp_path / "dense.ply",
        progress=lambda stage, fraction: reports.append((stage, fraction)),
    )
    assert len(cloud) == result.model.dense_points, "the stage repeats the whole run's points"
    assert cloud.normals is not None
    np.testing.assert_allclose(np.linalg.norm(cloud.normals, axis=1), 1.0, atol=1e-4)
    assert {stage for stage, _ in reports} <= {"depth_maps", "fusion"}
    assert reports[-1][1] == pytest.approx(1.0)
    read = recon.read_points(tmp_path / "dense.ply")
    np.testing.assert_allclose(read.positions, cloud.positions, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(read.colors, cloud.colors)

    surface = recon.mesh(tmp_path / "dense.ply", tmp_path / "mesh.ply")
    whole = recon.read_mesh(root / "work" / "mesh.ply")
    # The whole run meshes the dense points at the precision of dense.ply, so the stage
    # gives the same mesh.
    np.testing.assert_array_equal(surface.triangles, whole.triangles)
    np.testing.assert_array_equal(surface.positions, whole.positions)
    # A mesh of the in-memory cloud is the same surface.
    assert recon.mesh(cloud).triangles.shape[0] == pytest.approx(len(surface.triangles), rel=0.01)

    levels = recon.levels_of_detail(tmp_path / "mesh.ply", tmp_path / "lod")
    assert [level.path.name for level in levels][:2] == ["lod0.ply", "lod1.ply"]
    assert levels[0].triangles == len(surface.triangles)
    assert levels[1].triangles < levels[0].triangles

    files = recon.export_model(tmp_path / "lod", tmp_path / "out" / "model.glb", compression="none")
    assert [f.path.name for f in files][:2] == ["model.glb", "model.lod1.glb"]
    assert [f.triangles for f in files] == [level.triangles for level in levels]
    # Without compression, the minimal reader of this file decodes the same arrays.
    document, binary = read_glb(tmp_path / "out" / "model.lod1.glb")
    assert "EXT_meshopt_compression" not in document.get("extensionsRequired", [])
    prim = primitive(document)
    positions = accessor(document, binary, prim["attributes"]["POSITION"])
    indices = accessor(document, binary, prim["indices"]).reshape(-1, 3)
    mesh = recon.read_mesh(tmp_path / "out" / "model.lod1.glb")
    np.testing.assert_array_equal(positions, mesh.positions)
    np.testing.assert_array_equal(indices, mesh.triangles)
    assert len(indices) == levels[1].triangles


def test_job_queue_produces_the_model(small_scene, tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    queue = recon.JobQueue(tmp_path / "jobs", workers=1)
    assert queue.root == tmp_path / "jobs"
    job = queue.submit(small_scene.images, set="standard")
    assert job.status == "queued"
    finished = queue.wait(job.id, timeout=600)
    assert finished.status == "succeeded", finished.error
    assert finished.progress == 1.0
    assert finished.files[0] == "model.glb"
    for name in ("model.lod1.glb", "cameras.txt", "points.ply", "dense.ply", "mesh.ply"):
        assert name in finished.files, finished.files
    summary = finished.result
    assert summary.registered_images >= MIN_REGISTERED
    assert summary.model.dense_points >= MIN_DENSE_POINTS
    assert [level.file for level in summary.model.levels][0] == "model.glb"
    mesh = recon.read_mesh(queue.file(job.id, "model.glb"))
    assert len(mesh.triangles) == summary.model.levels[0].triangles
    coarse = recon.read_mesh(queue.file(job.id, "model.lod1.glb"))
    assert len(coarse.triangles) == summary.model.levels[1].triangles
    assert [j.id for j in queue.list()] == [job.id]
    assert queue.list()[0].result == summary
    # The sparse model next to the models is a COLMAP model that COLMAP reads.
    read = pycolmap.Reconstruction(str(queue.file(job.id, "cameras.txt").parent))
    assert read.num_reg_images() == summary.registered_images
    assert read.num_points3D() == summary.points


def test_mesh_files_round_trip(tmp_path):
    mesh = tetrahedron()
    for name, compression in [
        ("a.ply", "meshopt"),
        ("a.obj", "meshopt"),
        ("a.glb", "meshopt"),
        ("b.glb", "none"),
    ]:
        recon.write_mesh(mesh, tmp_path / name, compression=compression)
        read = recon.read_mesh(tmp_path / name)
        assert canonical_triangles(read) == canonical_triangles(mesh), name
        assert read.colors is not None, name
        order = [int(np.argmin(np.abs(mesh.positions - p).sum(axis=1))) for p in read.positions]
        np.testing.assert_allclose(read.colors, mesh.colors[order], atol=1, err_msg=name)
    assert (tmp_path / "a.mtl").is_file()
    # A mesh from plain Python lists and other dtypes is converted.
    plain = recon.Mesh(mesh.positions.tolist(), mesh.triangles.astype(np.int64))
    recon.write_mesh(plain, tmp_path / "plain.ply")
    read = recon.read_mesh(tmp_path / "plain.ply")
    assert read.normals is None
    assert read.colors is None
    assert canonical_triangles(read) == canonical_triangles(mesh)


def test_mesh_levels_and_export_from_arrays(tmp_path):
    # A finely tessellated sphere, so the levels have triangles to remove.
    rings, segments = 40, 80
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)
    positions = np.vstack([[0, 0, 1], ring.reshape(-1, 3), [0, 0, -1]]).astype(np.float32)
    south = len(positions) - 1

    def at(r, s):
        return 1 + r * segments + s % segments

    triangles = []
    for s in range(segments):
        triangles.append([0, at(0, s), at(0, s + 1)])
        triangles.append([south, at(rings - 2, s + 1), at(rings - 2, s)])
    for r in range(rings - 2):
        for s in range(segments):
            triangles.append([at(r, s), at(r + 1, s), at(r + 1, s + 1)])
            triangles.append([at(r, s), at(r + 1, s + 1), at(r, s + 1)])
    sphere = recon.Mesh(positions, np.array(triangles, dtype=np.uint32))
    levels = recon.levels_of_detail(sphere, tmp_path / "lod")
    assert levels[0].triangles == len(triangles)
    assert levels[1].triangles < 0.5 * len(triangles)
    coarse = recon.read_mesh(levels[1].path)
    radii = np.linalg.norm(coarse.positions, axis=1)
    assert np.abs(radii - 1.0).max() < 0.05, "simplification keeps the sphere's shape"
    files = recon.export_model([sphere, coarse], tmp_path / "sphere.ply")
    assert [f.path.name for f in files] == ["sphere.ply", "sphere.lod1.ply"]
    assert files[1].triangles == len(coarse.triangles)


def test_point_files_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    cloud = recon.PointCloud(
        positions=rng.normal(size=(200, 3)),
        colors=rng.integers(0, 256, size=(200, 3), dtype=np.uint8),
        normals=np.tile([0.0, 0.0, 1.0], (200, 1)),
    )
    for name, ascii in [("binary.ply", False), ("text.ply", True)]:
        recon.write_points(cloud, tmp_path / name, ascii=ascii)
        read = recon.read_points(tmp_path / name)
        assert len(read) == 200
        # PLY stores float32 coordinates.
        np.testing.assert_allclose(read.positions, cloud.positions, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(read.colors, cloud.colors)
        np.testing.assert_allclose(read.normals, cloud.normals, atol=1e-6)
    assert (tmp_path / "text.ply").read_bytes().startswith(b"ply\nformat ascii 1.0\n")


def test_stages_reject_missing_inputs(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(kai.NotFoundError, match="no-such-folder"):
        recon.reconstruct_model(missing, tmp_path / "model.glb")
    with pytest.raises(kai.NotFoundError, match="no-such-folder"):
        recon.screen(missing)
    with pytest.raises(kai.NotFoundError, match="sparse model folder"):
        recon.densify(missing, tmp_path)
    with pytest.raises(kai.NotFoundError, match="missing.ply"):
        recon.mesh(tmp_path / "missing.ply")
    with pytest.raises(kai.NotFoundError, match="missing.glb"):
        recon.read_mesh(tmp_path / "missing.glb")
    with pytest.raises(kai.NotFoundError, match="missing.ply"):
        recon.read_points(tmp_path / "missing.ply")
    with pytest.raises(kai.NotFoundError, match="no-such-folder"):
        recon.export_model(missing, tmp_path / "model.glb")
    with pytest.raises(kai.NotFoundError, match="lod0.ply"):
        recon.export_model(tmp_path, tmp_path / "model.glb")
    with pytest.raises(kai.NotFoundError, match="no-such-set"):
        recon.levels_of_detail(tetrahedron(), tmp_path / "lod", set="no-such-set")


def test_stages_reject_wrong_extensions(small_scene, tmp_path):
    photos = small_scene.images[0].parent
    with pytest.raises(kai.InvalidInputError, match="model.stl"):
        recon.reconstruct_model(photos, tmp_path / "model.stl")
    with pytest.raises(kai.InvalidInputError, match="model.stl"):
        recon.export_model(tetrahedron(), tmp_path / "model.stl")
    with pytest.raises(kai.InvalidInputError, match="a.stl"):
        recon.write_mesh(tetrahedron(), tmp_path / "a.stl")
    (tmp_path / "mesh.stl").write_bytes(b"solid nothing\nendsolid\n")
    with pytest.raises(kai.InvalidInputError, match="mesh.stl"):
        recon.read_mesh(tmp_path / "mesh.stl")
    cloud = recon.PointCloud(np.zeros((3, 3)), np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(kai.InvalidInputError, match="cloud.xyz"):
        recon.write_points(cloud, tmp_path / "cloud.xyz")
    with pytest.raises(kai.InvalidInputError, match="dense.txt"):
        recon.densify(tmp_path, photos, tmp_path / "dense.txt")


def test_readers_reject_malformed_files(tmp_path):
    broken_ply = tmp_path / "broken.ply"
    broken_ply.write_bytes(
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        b"property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
        b"end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n"
    )
    with pytest.raises(kai.InvalidInputError, match="broken.ply"):
        recon.read_mesh(broken_ply)
    not_ply = tmp_path / "text.ply"
    not_ply.write_text("these are not points\n")
    with pytest.raises(kai.InvalidInputError, match="text.ply"):
        recon.read_points(not_ply)
    with pytest.raises(kai.InvalidInputError, match="text.ply"):
        recon.mesh(not_ply)
    broken_glb = tmp_path / "broken.glb"
    broken_glb.write_bytes(b"glTF" + struct.pack("<II", 2, 400) + b"\x00" * 12)
    with pytest.raises(kai.InvalidInputError, match="broken.glb"):
        recon.read_mesh(broken_glb)
    with pytest.raises(kai.InvalidInputError, match="broken.glb"):
        recon.levels_of_detail(broken_glb, tmp_path / "lod")


def test_stages_reject_bad_values(tmp_path):
    mesh = tetrahedron()
    with pytest.raises(kai.InvalidInputError, match="draco"):
        recon.export_model(mesh, tmp_path / "model.glb", compression="draco")
    with pytest.raises(kai.InvalidInputError, match="zip"):
        recon.write_mesh(mesh, tmp_path / "model.glb", compression="zip")
    with pytest.raises(kai.InvalidInputError, match=r"mesh.positions: has shape \(4, 2\)"):
        recon.write_mesh(recon.Mesh(mesh.positions[:, :2], mesh.triangles), tmp_path / "a.ply")
    with pytest.raises(kai.InvalidInputError, match="mesh.triangles.*-1"):
        recon.write_mesh(recon.Mesh(mesh.positions, [[0, 1, -1]]), tmp_path / "a.ply")
    with pytest.raises(kai.InvalidInputError, match=r"\[0, 1, 9\]"):
        recon.write_mesh(recon.Mesh(mesh.positions, [[0, 1, 9]]), tmp_path / "a.ply")

    # Casts that would change values silently: fractional or NaN indices, colours in [0, 1].
    with pytest.raises(kai.InvalidInputError, match="mesh.triangles: has dtype float64"):
        recon.write_mesh(recon.Mesh(mesh.positions, [[0, 1, 2.9]]), tmp_path / "a.ply")
    with pytest.raises(kai.InvalidInputError, match="mesh.triangles: has dtype float64"):
        recon.write_mesh(recon.Mesh(mesh.positions, [[0, 1, np.nan]]), tmp_path / "a.ply")
    unit_colors = recon.Mesh(mesh.positions, mesh.triangles, colors=[[0.2, 0.5, 1.0]] * 4)
    with pytest.raises(kai.InvalidInputError, match="mesh.colors: has dtype float64"):
        recon.write_mesh(unit_colors, tmp_path / "a.ply")
    with pytest.raises(kai.InvalidInputError, match="mesh.positions: has dtype <U1"):
        recon.write_mesh(recon.Mesh([["a", "b", "c"]] * 4, mesh.triangles), tmp_path / "a.ply")
    float_colors = recon.PointCloud(np.zeros((4, 3)), np.full((4, 3), 0.5))
    with pytest.raises(kai.InvalidInputError, match="points.colors: has dtype float64"):
        recon.write_points(float_colors, tmp_path / "a.ply")
    assert not (tmp_path / "a.ply").exists()

    nan = mesh.positions.copy()
    nan[2, 1] = np.nan
    with pytest.raises(kai.InvalidInputError, match="not finite"):
        recon.levels_of_detail(recon.Mesh(nan, mesh.triangles), tmp_path / "lod")
    (tmp_path / "file").write_text("")
    with pytest.raises(kai.InvalidInputError, match="is a file"):
        recon.levels_of_detail(mesh, tmp_path / "file")

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 64)).save(photos / "a.png")
    # The output is checked before the photos are read, so the run fails at once.
    with pytest.raises(kai.InvalidInputError, match="file is a file, not a folder"):
        recon.reconstruct_model(photos, tmp_path / "file" / "model.glb")
    with pytest.raises(kai.InvalidInputError, match="file is a file, not a folder"):
        recon.export_model(mesh, tmp_path / "file" / "out" / "model.glb")

    few = recon.PointCloud(
        np.random.default_rng(0).normal(size=(20, 3)), np.zeros((20, 3), dtype=np.uint8)
    )
    with pytest.raises(kai.InvalidInputError, match="fewer than"):
        recon.mesh(few)

    with pytest.raises(TypeError, match="mesh must be"):
        recon.write_mesh("mesh.ply", tmp_path / "a.ply")
    with pytest.raises(TypeError, match="points must be"):
        recon.mesh(42)
    with pytest.raises(TypeError, match="progress must be"):
        recon.reconstruct_model(tmp_path, tmp_path / "model.glb", progress="yes")
