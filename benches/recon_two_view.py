#!/usr/bin/env python3
"""Compare kai's relative pose estimation with OpenCV's findEssentialMat + recoverPose.

The driver draws two-view scenes with a seeded numpy generator: 3D points 4 to 8 units in
front of the first camera, a second camera rotated by 5 to 20 degrees about a random axis
and moved by one unit in a random direction, both with a 1000 px focal length on a
1000x1000 image. Matches are the projections with 0.5 px Gaussian noise; a share of them is
replaced by uniform random pixel pairs (outliers). For each match count (100, 1,000,
10,000) and outlier share (0 %, 25 %, 50 %) it writes the matches to a temporary folder.
kai runs as the release binary `bench-two-view` on those files; OpenCV runs in this process
with RANSAC and with USAC_MAGSAC. Every estimator gets the same threshold (1 px) and
confidence (0.999) and runs on one thread.

Measured per case: median wall time per estimate (pose recovery included), median
rotation error and median translation direction error against the true pose, and the
number of scenes whose rotation error exceeds 2 degrees (failures).

Set up the peer environment once with ``benches/setup-peers.sh``, then:

    ~/.cache/kai/peers/bin/python benches/recon_two_view.py

It prints a Markdown table with the ratios (kai / peer).
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
FOCAL = 1000.0
SIZE = 1000.0
K = np.array([[FOCAL, 0, SIZE / 2], [0, FOCAL, SIZE / 2], [0, 0, 1]])


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    x = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * x + (1 - np.cos(angle)) * x @ x


def scene(rng: np.random.Generator, count: int, outliers: float, noise: float):
    """Returns pixel matches (count x 2 each) and the true (R, t) of camera 2."""
    r = rotation(rng.standard_normal(3), np.radians(rng.uniform(5, 20)))
    t = rng.standard_normal(3)
    t /= np.linalg.norm(t)
    pts1, pts2 = [], []
    while sum(len(p) for p in pts1) < count:
        x = np.column_stack([rng.uniform(-2, 2, count), rng.uniform(-2, 2, count),
                             rng.uniform(4, 8, count)])
        y = x @ r.T + t
        keep = y[:, 2] > 0.5
        p1 = x[keep, :2] / x[keep, 2:] * FOCAL + SIZE / 2
        p2 = y[keep, :2] / y[keep, 2:] * FOCAL + SIZE / 2
        inside = np.all((p1 >= 0) & (p1 < SIZE) & (p2 >= 0) & (p2 < SIZE), axis=1)
        pts1.append(p1[inside])
        pts2.append(p2[inside])
    p1 = np.concatenate(pts1)[:count] + rng.normal(0, noise, (count, 2))
    p2 = np.concatenate(pts2)[:count] + rng.normal(0, noise, (count, 2))
    bad = rng.random(count) < outliers
    p2[bad] = rng.uniform(0, SIZE, (bad.sum(), 2))
    return p1, p2, r, t


def angle_deg(r: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def errors(r_est, t_est, r_true, t_true) -> tuple[float, float]:
    t_est = np.asarray(t_est, dtype=float).ravel()
    cos = float(np.dot(t_est / np.linalg.norm(t_est), t_true))
    return angle_deg(r_est @ r_true.T), float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def opencv(cv2, p1, p2, method, threshold, confidence, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        e, mask = cv2.findEssentialMat(p1, p2, K, method=method, prob=confidence,
                                       threshold=threshold)
        if e is None or e.shape != (3, 3):
            # OpenCV stacks several solutions when the sample is ambiguous; take the first.
            e = None if e is None else e[:3]
        if e is None:
            times.append(time.perf_counter() - start)
            continue
        _, r, t, _ = cv2.recoverPose(e, p1, p2, K, mask=mask)
        times.append(time.perf_counter() - start)
        result = (r, t)
    return float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="100,1000,10000")
    parser.add_argument("--outliers", default="0,0.25,0.5")
    parser.add_argument("--scenes", type=int, default=20, help="scenes per case")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per scene")
    parser.add_argument("--threshold", type=float, default=1.0, help="inlier threshold, px")
    parser.add_argument("--confidence", type=float, default=0.999)
    parser.add_argument("--noise", type=float, default=0.5, help="pixel noise sigma")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()

    import cv2  # noqa: PLC0415 - the peer is only needed here

    cv2.setNumThreads(1)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "release" / "bench-two-view"
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "kai-benches", "--bin",
                        "bench-two-view"], cwd=ROOT, check=True)
    rng = np.random.default_rng(args.seed)
    counts = [int(c) for c in args.counts.split(",")]
    shares = [float(o) for o in args.outliers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        cases = []
        for count in counts:
            for share in shares:
                for index in range(args.scenes):
                    p1, p2, r, t = scene(rng, count, share, args.noise)
                    name = f"n{count}_o{int(share * 100)}_s{index}"
                    np.column_stack([p1, p2]).astype("<f8").tofile(Path(folder) / f"{name}.f64")
                    cases.append((count, share, name, p1, p2, r, t))
        manifest = {"focal": FOCAL, "cx": SIZE / 2, "cy": SIZE / 2,
                    "threshold_px": args.threshold, "confidence": args.confidence,
                    "repeats": args.repeats, "cases": [c[2] for c in cases]}
        (Path(folder) / "manifest.json").write_text(json.dumps(manifest))
        env = dict(os.environ, RAYON_NUM_THREADS="1")
        out = subprocess.run([str(binary), "--data", folder], check=True, env=env,
                             capture_output=True, text=True).stdout
        kai = {row["case"]: row for row in json.loads(out)["results"]}
        for count in counts:
            for share in shares:
                stats = {name: {"time": [], "rot": [], "trans": [], "fail": 0}
                         for name in ("kai", "opencv-ransac", "opencv-magsac")}
                for c_count, c_share, name, p1, p2, r, t in cases:
                    if (c_count, c_share) != (count, share):
                        continue
                    k = kai[name]
                    estimates = {"kai": (k["seconds"], (np.array(k["rotation"]),
                                                        np.array(k["translation"]))
                                         if k.get("rotation") else None)}
                    estimates["opencv-ransac"] = opencv(cv2, p1, p2, cv2.RANSAC,
                                                        args.threshold, args.confidence,
                                                        args.repeats)
                    estimates["opencv-magsac"] = opencv(cv2, p1, p2, cv2.USAC_MAGSAC,
                                                        args.threshold, args.confidence,
                                                        args.repeats)
                    for lib, (seconds, pose) in estimates.items():
                        s = stats[lib]
                        s["time"].append(seconds)
                        if pose is None:
                            s["fail"] += 1
                            continue
                        rot, trans = errors(pose[0], pose[1], r, t)
                        s["rot"].append(rot)
                        s["trans"].append(trans)
                        s["fail"] += rot > 2.0
                rows.append((count, share, {
                    lib: (np.median(s["time"]) * 1e3,
                          np.median(s["rot"]) if s["rot"] else float("nan"),
                          np.median(s["trans"]) if s["trans"] else float("nan"), s["fail"])
                    for lib, s in stats.items()}))

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{args.scenes} scenes per case, threshold {args.threshold} px, noise "
          f"{args.noise} px, one thread\n")
    print("| matches | outliers | kai ms | OpenCV RANSAC ms | OpenCV MAGSAC ms | "
          "kai / RANSAC | kai / MAGSAC | rot. err. kai / RANSAC / MAGSAC (deg) | "
          "t err. kai / RANSAC / MAGSAC (deg) | failures kai / RANSAC / MAGSAC |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for count, share, s in rows:
        k, r, m = s["kai"], s["opencv-ransac"], s["opencv-magsac"]
        print(f"| {count:,} | {share:.0%} | {k[0]:.2f} | {r[0]:.2f} | {m[0]:.2f} | "
              f"{k[0] / r[0]:.2f} | {k[0] / m[0]:.2f} | {k[1]:.3f} / {r[1]:.3f} / {m[1]:.3f} | "
              f"{k[2]:.3f} / {r[2]:.3f} / {m[2]:.3f} | {k[3]} / {r[3]} / {m[3]} |")


if __name__ == "__main__":
    main()
