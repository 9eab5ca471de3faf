#!/usr/bin/env python3
"""Compare kai's structure from motion with COLMAP's CPU pipeline on a generated scene.

The driver renders a seeded synthetic scene with the release `kai` binary
(`kai recon synth`), which also writes the ground-truth cameras as a COLMAP text model.
kai reconstructs it with `kai recon sfm`; COLMAP runs through pycolmap, its official
Python bindings: SIFT extraction on the CPU, exhaustive matching, incremental mapping,
with one shared camera as kai estimates. Both use the same number of threads.

Measured: wall time, registered images, points, mean reprojection error, and the pose
error against the ground truth after a similarity alignment of the camera centres:
rotation error (degrees) and camera position error (percent of the scene's extent).

Set up the peer environment once with ``benches/setup-peers.sh``, then:

    ~/.cache/kai/peers/bin/python benches/recon_sfm.py --threads 2

It prints a Markdown table with the ratios (kai / COLMAP).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def umeyama(source: np.ndarray, target: np.ndarray):
    """Scale, rotation and translation that map `source` points onto `target` points."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(t.T @ s / len(source))
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / s.var(0).sum()
    return scale, rotation, mu_t - scale * rotation @ mu_s


def angle_deg(r: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def evaluate(pycolmap, model_dir: Path, truth) -> dict:
    model = pycolmap.Reconstruction(str(model_dir))
    truth_by_name = {image.name: image for image in truth.images.values()}
    names, est_c, true_c, est_r, true_r = [], [], [], [], []
    for image in model.images.values():
        if not image.has_pose or image.name not in truth_by_name:
            continue
        gt = truth_by_name[image.name]
        names.append(image.name)
        est_c.append(image.projection_center())
        true_c.append(gt.projection_center())
        est_r.append(image.cam_from_world().rotation.matrix())
        true_r.append(gt.cam_from_world().rotation.matrix())
    est_c, true_c = np.array(est_c), np.array(true_c)
    scale, rotation, shift = umeyama(est_c, true_c)
    aligned = (scale * (rotation @ est_c.T)).T + shift
    extent = np.linalg.norm(true_c.max(0) - true_c.min(0))
    position = np.linalg.norm(aligned - true_c, axis=1) / extent * 100
    rot = [angle_deg(gt @ (est @ rotation.T).T) for est, gt in zip(est_r, true_r)]
    return {
        "registered": len(names),
        "points": model.num_points3D(),
        "reprojection": model.compute_mean_reprojection_error(),
        "rot_mean": float(np.mean(rot)), "rot_max": float(np.max(rot)),
        "pos_median": float(np.median(position)), "pos_max": float(np.max(position)),
    }


def run_colmap(pycolmap, images: Path, work: Path, threads: int) -> Path:
    database = work / "database.db"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = threads
    extraction.use_gpu = False
    pycolmap.extract_features(database, images, camera_mode=pycolmap.CameraMode.SINGLE,
                              extraction_options=extraction, device=pycolmap.Device.cpu)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = threads
    matching.use_gpu = False
    pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = threads
    output = work / "sparse"
    output.mkdir()
    models = pycolmap.incremental_mapping(database, images, output, options=options)
    best = max(models.values(), key=lambda m: m.num_reg_images())
    text = work / "model"
    text.mkdir()
    best.write_text(str(text))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()

    import pycolmap  # noqa: PLC0415 - the peer is only needed here

    pycolmap.set_random_seed(args.seed)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    kai = target / "release" / "kai"
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "kai-server", "--bin", "kai"],
                       cwd=ROOT, check=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        scene = work / "scene"
        subprocess.run([str(kai), "recon", "synth", str(scene), "--images", str(args.images),
                        "--seed", str(args.seed), "--width", str(args.width), "--height",
                        str(args.height)], check=True, env=env, capture_output=True)
        truth = pycolmap.Reconstruction(str(scene / "ground_truth"))
        images = work / "images"
        images.mkdir()
        for photo in sorted(scene.iterdir()):
            if photo.is_file():
                shutil.copy(photo, images / photo.name)

        start = time.perf_counter()
        subprocess.run([str(kai), "recon", "sfm", str(images), "-o", str(work / "kai")],
                       check=True, env=env, capture_output=True)
        kai_seconds = time.perf_counter() - start
        kai_result = evaluate(pycolmap, work / "kai", truth)

        colmap_work = work / "colmap"
        colmap_work.mkdir()
        start = time.perf_counter()
        colmap_model = run_colmap(pycolmap, images, colmap_work, args.threads)
        colmap_seconds = time.perf_counter() - start
        colmap_result = evaluate(pycolmap, colmap_model, truth)

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{args.images} images {args.width}x{args.height}, seed {args.seed}, "
          f"{args.threads} threads; pycolmap {pycolmap.__version__}\n")
    print("| | time (s) | registered | points | mean reproj. (px) | rot. err. mean / max "
          "(deg) | position err. median / max (% of extent) |")
    print("|---|---:|---:|---:|---:|---|---|")
    for name, seconds, r in (("kai", kai_seconds, kai_result),
                             ("COLMAP", colmap_seconds, colmap_result)):
        print(f"| {name} | {seconds:.1f} | {r['registered']}/{args.images} | {r['points']:,} | "
              f"{r['reprojection']:.3f} | {r['rot_mean']:.3f} / {r['rot_max']:.3f} | "
              f"{r['pos_median']:.3f} / {r['pos_max']:.3f} |")
    print(f"\nkai / COLMAP time: {kai_seconds / colmap_seconds:.2f}")


if __name__ == "__main__":
    main()
