#!/usr/bin/env python3
"""Compare kai's point cloud clean-up, Poisson meshing and simplification with Open3D.

The driver builds a closed ground-truth mesh: an icosphere subdivided 8 times (1,310,720
triangles) whose radius is displaced by seeded sinusoids, so the surface has bumps of
several sizes. It samples points uniformly by area with the true (face) normals, adds
Gaussian noise of 0.1 % of the bounding box diagonal, and replaces 1 % of the points by
uniform points in the bounding box (planted outliers). Every tool reads the same PLY files.

kai runs each operation in the release binary `bench-recon-mesh`, which times the
operation alone; Open3D runs in this process, timed the same way. Both get two threads
(RAYON_NUM_THREADS and OMP_NUM_THREADS, and Open3D's Poisson `n_threads`). Quality is
measured here, the same way for every tool:

- outlier removal: recall (share of planted outliers removed) and precision (share of
  removed points that were planted outliers);
- normals: angle to the true normal ignoring sign (the fit), and the share of normals on
  the outer side (the orientation), also up to one global flip;
- meshes: points sampled uniformly by area on each mesh (seeded, same count), with their
  exact distance to the other surface from Open3D's ray-casting scene; Chamfer is the mean
  of both directions' mean distances, Hausdorff the larger maximum. Distances are given in
  percent of the ground truth's bounding box diagonal.

Simplification runs on the ground-truth mesh to 10 % and 1 % of its triangles: kai's
`lod::simplify`, Open3D's `simplify_quadric_decimation` and fast-simplification (both
peers use one thread there, whatever the thread settings).

Last, the bench binary renders the synthetic scene of ``kai recon synth`` and densifies it
from its true cameras. Both tools then run the same chain on that dense cloud (statistical
outliers, normals, Poisson, density trim), measured against points on the true surfaces.

Set up the peer environment once with ``benches/setup-peers.sh``, then:

    ~/.cache/kai/peers/bin/python benches/recon_mesh.py --threads 2

It prints Markdown tables with the ratios (kai / peer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# Ground truth


def icosphere(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Builds the unit icosphere: vertices (n x 3) and counter-clockwise triangles (m x 3)."""
    t = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
                  [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]],
                 dtype=float)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9],
                  [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2],
                  [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
                  [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(levels):
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        edges.sort(axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = v[unique[:, 0]] + v[unique[:, 1]]
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = inverse.reshape(3, -1).T + len(v)  # midpoints of edges 01, 12, 20
        v = np.concatenate([v, mid])
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        ab, bc, ca = m[:, 0], m[:, 1], m[:, 2]
        f = np.concatenate([np.column_stack([a, ab, ca]), np.column_stack([b, bc, ab]),
                            np.column_stack([c, ca, bc]), np.column_stack([ab, bc, ca])])
    return v, f


def ground_truth(seed: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Builds the displaced sphere: radius 1 plus six seeded sinusoids along random axes."""
    rng = np.random.default_rng(seed)
    v, f = icosphere(levels)
    radius = np.ones(len(v))
    for _ in range(6):
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        radius += rng.uniform(0.02, 0.05) * np.sin(rng.uniform(3, 10) * (v @ direction)
                                                   + rng.uniform(0, 2 * np.pi))
    return v * radius[:, None], f


def face_frames(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    area = np.linalg.norm(cross, axis=1) / 2
    return area, cross / np.maximum(2 * area, 1e-300)[:, None]


def sample_mesh(v: np.ndarray, f: np.ndarray, count: int, seed: int):
    """Samples points uniformly by area, each with the normal of its face."""
    rng = np.random.default_rng(seed)
    area, normal = face_frames(v, f)
    faces = rng.choice(len(f), size=count, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
    a, b, c = v[f[faces, 0]], v[f[faces, 1]], v[f[faces, 2]]
    points = ((1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c)
    return points, normal[faces]


# ---------------------------------------------------------------------------------------
# PLY files (binary little-endian, as both tools read them)


def write_cloud(path: Path, points: np.ndarray, normals: np.ndarray | None = None) -> None:
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals is not None else [])
    data = points if normals is None else np.column_stack([points, normals])
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(points)}"]
    header += [f"property float {n}" for n in names] + ["end_header\n"]
    with open(path, "wb") as out:
        out.write("\n".join(header).encode())
        out.write(data.astype("<f4").tobytes())


def write_mesh(path: Path, v: np.ndarray, f: np.ndarray) -> None:
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(v)}",
              "property float x", "property float y", "property float z",
              f"element face {len(f)}", "property list uchar int vertex_indices",
              "end_header\n"]
    faces = np.zeros(len(f), dtype=[("n", "u1"), ("i", "<i4", 3)])
    faces["n"] = 3
    faces["i"] = f
    with open(path, "wb") as out:
        out.write("\n".join(header).encode())
        out.write(v.astype("<f4").tobytes())
        out.write(faces.tobytes())


def read_mesh(o3d, path: Path) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.io.read_triangle_mesh(str(path))
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


# ---------------------------------------------------------------------------------------
# Measures


class Surface:
    """Exact point-to-surface distances through Open3D's ray-casting scene."""

    def __init__(self, o3d, v: np.ndarray, f: np.ndarray):
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(v.astype(np.float32), f.astype(np.uint32))
        self.o3d = o3d

    def distance(self, points: np.ndarray) -> np.ndarray:
        query = self.o3d.core.Tensor(points.astype(np.float32))
        return self.scene.compute_distance(query).numpy().astype(float)


def mesh_error(o3d, truth: tuple, truth_surface: Surface, v: np.ndarray, f: np.ndarray,
               samples: int, seed: int) -> dict:
    """Returns Chamfer (mean of both mean distances) and Hausdorff of a mesh to the truth."""
    if len(f) == 0:
        return {"chamfer": float("nan"), "hausdorff": float("nan")}
    on_mesh, _ = sample_mesh(v, f, samples, seed)
    on_truth, _ = sample_mesh(truth[0], truth[1], samples, seed + 1)
    to_truth = truth_surface.distance(on_mesh)
    to_mesh = Surface(o3d, v, f).distance(on_truth)
    return {"chamfer": (to_truth.mean() + to_mesh.mean()) / 2,
            "hausdorff": max(to_truth.max(), to_mesh.max())}


def removal_scores(kept_indices: np.ndarray, outlier: np.ndarray) -> dict:
    removed = np.ones(len(outlier), dtype=bool)
    removed[kept_indices] = False
    hits = np.count_nonzero(removed & outlier)
    return {"removed": int(removed.sum()), "recall": hits / max(outlier.sum(), 1),
            "precision": hits / max(removed.sum(), 1)}


def normal_scores(estimated: np.ndarray, truth: np.ndarray) -> dict:
    estimated = estimated / np.maximum(np.linalg.norm(estimated, axis=1, keepdims=True),
                                       1e-300)
    cos = np.sum(estimated * truth, axis=1)
    unsigned = np.degrees(np.arccos(np.clip(np.abs(cos), 0, 1)))
    outward = float(np.mean(cos > 0))
    return {"angle_mean": float(unsigned.mean()), "angle_median": float(np.median(unsigned)),
            "outward": outward, "consistent": max(outward, 1 - outward)}


# ---------------------------------------------------------------------------------------
# Runners


def run_kai(binary: Path, env: dict, *args: str) -> dict:
    out = subprocess.run([str(binary), *args], check=True, env=env, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, default=8, help="icosphere subdivisions")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--outliers", type=float, default=0.01, help="share of the points")
    parser.add_argument("--noise", type=float, default=0.001, help="sigma / diagonal")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--orient-neighbors", type=int, default=10)
    parser.add_argument("--depths", default="8,9")
    parser.add_argument("--trim", type=float, default=0.02, help="density trim quantile")
    parser.add_argument("--ratios", default="0.1,0.01", help="simplification ratios")
    parser.add_argument("--samples", type=int, default=200_000, help="per mesh, for errors")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--scene-images", type=int, default=30)
    parser.add_argument("--scene-depth", type=int, default=8)
    parser.add_argument("--scene-trim", type=float, default=0.1)
    parser.add_argument("--work", type=Path, help="keep the files in this folder")
    parser.add_argument("--only", default="voxel,statistical,radius,normals,poisson,simplify,scene")
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import open3d as o3d  # noqa: PLC0415 - the peers are only needed here

    try:
        import fast_simplification  # noqa: PLC0415
    except ImportError:
        fast_simplification = None
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    only = set(args.only.split(","))
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "release" / "bench-recon-mesh"
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "kai-benches", "--bin",
                        "bench-recon-mesh"], cwd=ROOT, check=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        v, f = ground_truth(args.seed, args.levels)
        truth = (v, f)
        lo, hi = v.min(0), v.max(0)
        diagonal = float(np.linalg.norm(hi - lo))
        args.diagonal = diagonal
        pct = 100 / diagonal
        rng = np.random.default_rng(args.seed + 10)
        n_out = int(round(args.points * args.outliers))
        surface, true_normals = sample_mesh(v, f, args.points - n_out, args.seed + 20)
        surface += rng.normal(0, args.noise * diagonal, surface.shape)
        noisy = np.concatenate([surface, rng.uniform(lo, hi, (n_out, 3))])
        outlier = np.zeros(len(noisy), dtype=bool)
        outlier[len(surface):] = True
        order = rng.permutation(len(noisy))
        noisy, outlier = noisy[order], outlier[order]
        files = {name: work / f"{name}.ply" for name in ("truth", "noisy", "surface",
                                                         "oriented")}
        write_mesh(files["truth"], v, f)
        write_cloud(files["noisy"], noisy)
        write_cloud(files["surface"], surface)
        write_cloud(files["oriented"], surface, true_normals)
        truth_surface = Surface(o3d, v, f)
        print(f"ground truth: {len(v):,} vertices, {len(f):,} triangles, diagonal "
              f"{diagonal:.3f}; {len(noisy):,} points ({n_out:,} outliers)", flush=True)

        def cloud(path: Path):
            return o3d.io.read_point_cloud(str(path))

        rows: dict[str, dict] = {}
        voxel = 0.005 * diagonal
        radius = 0.005 * diagonal
        min_neighbors = 16

        if "voxel" in only:
            out = work / "kai_voxel.ply"
            k = run_kai(binary, env, "voxel", str(files["noisy"]), str(out),
                        "--size", str(voxel))
            pcd = cloud(files["noisy"])
            seconds, reduced = timed(lambda: pcd.voxel_down_sample(voxel))
            kai_points = np.asarray(cloud(out).points)
            o3d_points = np.asarray(reduced.points)
            rows["voxel"] = {
                "kai": {"seconds": k["seconds"], "count": len(kai_points),
                        "median": np.median(truth_surface.distance(kai_points)) * pct},
                "open3d": {"seconds": seconds, "count": len(o3d_points),
                           "median": np.median(truth_surface.distance(o3d_points)) * pct}}
            print("voxel", rows["voxel"], flush=True)

        for name, kai_args, peer in (
            ("statistical", ["--neighbors", "20", "--std-ratio", "2.0"],
             lambda p: p.remove_statistical_outlier(nb_neighbors=20, std_ratio=2.0)),
            ("radius", ["--radius", str(radius), "--min-neighbors", str(min_neighbors)],
             lambda p: p.remove_radius_outlier(nb_points=min_neighbors, radius=radius)),
        ):
            if name not in only:
                continue
            out = work / f"kai_{name}.u32"
            k = run_kai(binary, env, name, str(files["noisy"]), str(out), *kai_args)
            kept_indices = np.fromfile(out, dtype="<u4").astype(np.int64)
            pcd = cloud(files["noisy"])
            seconds, (_, index) = timed(lambda: peer(pcd))
            rows[name] = {"kai": {"seconds": k["seconds"], **removal_scores(kept_indices, outlier)},
                          "open3d": {"seconds": seconds,
                                     **removal_scores(np.asarray(index, dtype=np.int64), outlier)}}
            print(name, rows[name], flush=True)

        if "normals" in only:
            out = work / "kai_normals.ply"
            k = run_kai(binary, env, "normals", str(files["surface"]), str(out),
                        "--neighbors", "30", "--orient-neighbors", str(args.orient_neighbors))
            pcd = cloud(files["surface"])
            estimate, _ = timed(lambda: pcd.estimate_normals(
                o3d.geometry.KDTreeSearchParamKNN(knn=30)))
            orient, _ = timed(lambda: pcd.orient_normals_consistent_tangent_plane(
                args.orient_neighbors))
            rows["normals"] = {
                "kai": {"seconds": k["seconds"], "estimate": k["estimate_seconds"],
                        "orient": k["orient_seconds"],
                        **normal_scores(np.asarray(cloud(out).normals), true_normals)},
                "open3d": {"seconds": estimate + orient, "estimate": estimate,
                           "orient": orient,
                           **normal_scores(np.asarray(pcd.normals), true_normals)}}
            print("normals", rows["normals"], flush=True)

        if "poisson" in only:
            for depth in (int(d) for d in args.depths.split(",")):
                out = work / f"kai_poisson{depth}.ply"
                k = run_kai(binary, env, "poisson", str(files["oriented"]), str(out),
                            "--depth", str(depth), "--trim-quantile", str(args.trim))
                kv, kf = read_mesh(o3d, out)
                pcd = cloud(files["oriented"])

                def poisson(pcd=pcd, depth=depth):
                    mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
                        pcd, depth=depth, n_threads=args.threads)
                    density = np.asarray(density)
                    mesh.remove_vertices_by_mask(density < np.quantile(density, args.trim))
                    return mesh

                seconds, mesh = timed(poisson)
                ov, of = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
                rows[f"poisson{depth}"] = {
                    "kai": {"seconds": k["seconds"], "triangles": len(kf),
                            **mesh_error(o3d, truth, truth_surface, kv, kf, args.samples,
                                         args.seed + 30)},
                    "open3d": {"seconds": seconds, "triangles": len(of),
                               **mesh_error(o3d, truth, truth_surface, ov, of, args.samples,
                                            args.seed + 30)}}
                print(f"poisson{depth}", rows[f"poisson{depth}"], flush=True)

        if "simplify" in only:
            mesh = o3d.io.read_triangle_mesh(str(files["truth"]))
            for ratio in (float(r) for r in args.ratios.split(",")):
                target_count = int(round(len(f) * ratio))
                out = work / f"kai_simplify{ratio}.ply"
                k = run_kai(binary, env, "simplify", str(files["truth"]), str(out),
                            "--ratio", str(ratio))
                kv, kf = read_mesh(o3d, out)
                row = {"kai": {"seconds": k["seconds"], "triangles": len(kf),
                               **mesh_error(o3d, truth, truth_surface, kv, kf, args.samples,
                                            args.seed + 40)}}
                seconds, simple = timed(lambda: mesh.simplify_quadric_decimation(target_count))
                sv, sf = np.asarray(simple.vertices), np.asarray(simple.triangles)
                row["open3d"] = {"seconds": seconds, "triangles": len(sf),
                                 **mesh_error(o3d, truth, truth_surface, sv, sf, args.samples,
                                              args.seed + 40)}
                if fast_simplification is not None:
                    seconds, (sv, sf) = timed(lambda: fast_simplification.simplify(
                        v.astype(np.float32), f.astype(np.int32), target_count=target_count))
                    row["fast-simplification"] = {
                        "seconds": seconds, "triangles": len(sf),
                        **mesh_error(o3d, truth, truth_surface, sv, sf, args.samples,
                                     args.seed + 40)}
                rows[f"simplify{ratio}"] = row
                print(f"simplify{ratio}", row, flush=True)

        if "scene" in only:
            rows["scene"] = scene_rows(o3d, binary, env, work, args)

    report(args, rows, len(f), len(noisy), n_out, voxel * pct, radius * pct, min_neighbors,
           o3d.__version__, getattr(fast_simplification, "__version__", None))


def nearest(o3d, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Returns the distance from each source point to the nearest target point."""
    a, b = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
    a.points = o3d.utility.Vector3dVector(source)
    b.points = o3d.utility.Vector3dVector(target)
    return np.asarray(a.compute_point_cloud_distance(b))


def scene_rows(o3d, binary: Path, env: dict, work: Path, args) -> dict:
    """Measures kai's dense cloud of a generated scene, then the same clean-up and meshing
    chain in both tools, against points sampled on the scene's true surfaces."""
    folder = work / "scene"
    dense = run_kai(binary, env, "scene", str(folder), "--images", str(args.scene_images),
                    "--seed", str(args.seed))
    truth = np.asarray(o3d.io.read_point_cloud(str(folder / "truth.ply")).points)
    cloud = o3d.io.read_point_cloud(str(folder / "dense.ply"))
    # The truth covers only the ground near the objects. Both tools get the dense points
    # inside its bounding box (5 % margin), so far ground does not count as error.
    lo, hi = truth.min(0), truth.max(0)
    margin = 0.05 * (hi - lo)
    box = o3d.geometry.AxisAlignedBoundingBox(lo - margin, hi + margin)
    cropped = cloud.crop(box)
    points = np.asarray(cropped.points)
    write_cloud(folder / "cropped.ply", points, np.asarray(cropped.normals))
    diagonal = float(np.linalg.norm(hi - lo))
    args.scene_diagonal = diagonal

    def scores(samples: np.ndarray) -> dict:
        accuracy = nearest(o3d, samples, truth)
        completeness = nearest(o3d, truth, samples)
        return {"accuracy": accuracy.mean(), "completeness": completeness.mean(),
                "chamfer": (accuracy.mean() + completeness.mean()) / 2}

    rows = {"dense": {"seconds": dense["seconds"], "points": dense["points"],
                      "cropped": len(points), **scores(points)}}
    out = folder / "kai_mesh.ply"
    k = run_kai(binary, env, "chain", str(folder / "cropped.ply"), str(out),
                "--depth", str(args.scene_depth), "--trim-quantile", str(args.scene_trim))
    kv, kf = read_mesh(o3d, out)
    rows["kai"] = {"seconds": k["seconds"], "triangles": len(kf),
                   **scores(sample_mesh(kv, kf, args.samples, args.seed + 50)[0])}

    def chain():
        pcd = o3d.io.read_point_cloud(str(folder / "cropped.ply"))
        start = time.perf_counter()
        pcd, _ = pcd.remove_statistical_outlier(nb_neighbors=20, std_ratio=2.0)
        # Open3D keeps the orientation of normals already present, as kai does.
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=30))
        mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
            pcd, depth=args.scene_depth, n_threads=args.threads)
        density = np.asarray(density)
        mesh.remove_vertices_by_mask(density < np.quantile(density, args.scene_trim))
        return time.perf_counter() - start, mesh

    seconds, mesh = chain()
    ov, of = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    rows["open3d"] = {"seconds": seconds, "triangles": len(of),
                      **scores(sample_mesh(ov, of, args.samples, args.seed + 50)[0])}
    print("scene", rows, flush=True)
    return rows


def report(args, rows, triangles, points, n_out, voxel_pct, radius_pct, min_neighbors,
           o3d_version, fs_version) -> None:
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{args.threads} threads; Open3D {o3d_version}, fast-simplification {fs_version}; "
          f"ground truth {triangles:,} triangles, {points:,} points ({n_out:,} outliers), "
          f"noise {args.noise:.1%} of the diagonal, seed {args.seed}\n")

    def ratio(a, b):
        return f"{a / b:.2f}" if b else "n/a"

    if "voxel" in rows:
        k, o = rows["voxel"]["kai"], rows["voxel"]["open3d"]
        print(f"Voxel down-sampling, voxel {voxel_pct:.2f} % of the diagonal:\n")
        print("| | time (s) | points out | median distance to truth (% diag.) |")
        print("|---|---:|---:|---:|")
        for name, r in (("kai", k), ("Open3D", o)):
            print(f"| {name} | {r['seconds']:.3f} | {r['count']:,} | {r['median']:.4f} |")
        print(f"\nkai / Open3D time: {ratio(k['seconds'], o['seconds'])}\n")
    for name, title in (("statistical", "Statistical outlier removal, k = 20, std ratio 2.0"),
                        ("radius", f"Radius outlier removal, radius {radius_pct:.2f} % of "
                                   f"the diagonal, at least {min_neighbors} neighbours")):
        if name not in rows:
            continue
        k, o = rows[name]["kai"], rows[name]["open3d"]
        print(f"{title}:\n")
        print("| | time (s) | removed | outlier recall | outlier precision |")
        print("|---|---:|---:|---:|---:|")
        for lib, r in (("kai", k), ("Open3D", o)):
            print(f"| {lib} | {r['seconds']:.3f} | {r['removed']:,} | {r['recall']:.4f} | "
                  f"{r['precision']:.4f} |")
        print(f"\nkai / Open3D time: {ratio(k['seconds'], o['seconds'])}\n")
    if "normals" in rows:
        k, o = rows["normals"]["kai"], rows["normals"]["open3d"]
        print(f"Normals: PCA over 30 neighbours, then consistent orientation over "
              f"{args.orient_neighbors} neighbours:\n")
        print("| | estimate (s) | orient (s) | angle mean / median (deg, unsigned) | "
              "outward | consistent (up to one flip) |")
        print("|---|---:|---:|---|---:|---:|")
        for lib, r in (("kai", k), ("Open3D", o)):
            print(f"| {lib} | {r['estimate']:.2f} | {r['orient']:.2f} | "
                  f"{r['angle_mean']:.2f} / {r['angle_median']:.2f} | {r['outward']:.4f} | "
                  f"{r['consistent']:.4f} |")
        print(f"\nkai / Open3D time: estimate {ratio(k['estimate'], o['estimate'])}, "
              f"orient {ratio(k['orient'], o['orient'])}\n")
    poisson = [key for key in rows if key.startswith("poisson")]
    if poisson:
        print(f"Poisson from the oriented points (true normals), trim quantile {args.trim}; "
              f"errors in % of the diagonal:\n")
        print("| depth | | time (s) | triangles | Chamfer | Hausdorff |")
        print("|---:|---|---:|---:|---:|---:|")
        for key in poisson:
            for lib, r in (("kai", rows[key]["kai"]), ("Open3D", rows[key]["open3d"])):
                print(f"| {key[7:]} | {lib} | {r['seconds']:.1f} | {r['triangles']:,} | "
                      f"{r['chamfer'] * 100 / args.diagonal:.4f} | "
                      f"{r['hausdorff'] * 100 / args.diagonal:.4f} |")
        print("\nkai / Open3D time: " + ", ".join(
            f"depth {key[7:]} {ratio(rows[key]['kai']['seconds'], rows[key]['open3d']['seconds'])}"
            for key in poisson) + "\n")
    simplify = [key for key in rows if key.startswith("simplify")]
    if simplify:
        print("Simplification of the ground truth; errors in % of the diagonal:\n")
        print("| ratio | | time (s) | triangles | Chamfer | Hausdorff |")
        print("|---:|---|---:|---:|---:|---:|")
        for key in simplify:
            for lib, r in rows[key].items():
                print(f"| {key[8:]} | {lib} | {r['seconds']:.2f} | {r['triangles']:,} | "
                      f"{r['chamfer'] * 100 / args.diagonal:.4f} | "
                      f"{r['hausdorff'] * 100 / args.diagonal:.4f} |")
        print("\nkai / peer time: " + "; ".join(
            f"ratio {key[8:]}: " + ", ".join(
                f"{lib} {ratio(rows[key]['kai']['seconds'], r['seconds'])}"
                for lib, r in rows[key].items() if lib != "kai") for key in simplify))
    if "scene" in rows:
        s, d = rows["scene"], rows["scene"]["dense"]
        pct = 100 / args.scene_diagonal
        print(f"\nGenerated scene ({args.scene_images} images, true cameras): kai's dense "
              f"cloud, {d['points']:,} points ({d['seconds']:.1f} s), {d['cropped']:,} "
              f"inside the truth's box; then statistical outliers, normals and Poisson at "
              f"depth {args.scene_depth} (trim {args.scene_trim}). Distances to "
              f"{args.samples:,} true surface points in % of the scene's diagonal:\n")
        print("| | time (s) | triangles | accuracy | completeness | Chamfer |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| dense cloud (input) | | | {d['accuracy'] * pct:.3f} | "
              f"{d['completeness'] * pct:.3f} | {d['chamfer'] * pct:.3f} |")
        for lib, r in (("kai", s["kai"]), ("Open3D", s["open3d"])):
            print(f"| {lib} | {r['seconds']:.1f} | {r['triangles']:,} | "
                  f"{r['accuracy'] * pct:.3f} | {r['completeness'] * pct:.3f} | "
                  f"{r['chamfer'] * pct:.3f} |")
        print(f"\nkai / Open3D time: {s['kai']['seconds'] / s['open3d']['seconds']:.2f}")


if __name__ == "__main__":
    main()
