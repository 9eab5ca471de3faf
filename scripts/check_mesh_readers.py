#!/usr/bin/env python3
"""Check kai's PLY, OBJ and GLB meshes with trimesh, a reader independent of kai.

Requires: pip install "trimesh==4.*" numpy  (into the virtual environment that runs it).

    python scripts/check_mesh_readers.py FILE...

Each file is loaded with trimesh without merging or reordering vertices. Two checks
apply:

* Sidecar: when FILE.json exists (for example mesh.ply.json), it contains kai's own
  description of the mesh, ``{"vertices": N, "triangles": M, "min": [x, y, z],
  "max": [x, y, z]}``, and the file must match it.
* Same mesh: all files given together must contain the same mesh in different formats.
  Their triangle counts, bounds, surface areas and vertex counts must agree with the
  first file's. GLB files compressed with EXT_meshopt_compression are skipped, because
  trimesh cannot decode them, so check those with check_gltf.mjs.

Bounds and areas are compared to within 1e-6 of the mesh's extent (or area), which
float32 coordinates meet exactly. Exits with status 1 on any mismatch.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import trimesh

TOLERANCE = 1e-6


def glb_required_extensions(path: Path) -> list:
    """Return the extensionsRequired list of a GLB file's JSON chunk."""
    data = path.read_bytes()
    if len(data) < 20 or data[:4] != b"glTF":
        raise ValueError(f"{path}: not a GLB file")
    (length,) = struct.unpack_from("<I", data, 12)
    document = json.loads(data[20 : 20 + length])
    return document.get("extensionsRequired", [])


def load(path: Path) -> trimesh.Trimesh:
    mesh = trimesh.load(path, force="mesh", process=False, maintain_order=True)
    if not isinstance(mesh, trimesh.Trimesh):
        raise ValueError(f"{path}: trimesh did not load a triangle mesh")
    return mesh


def describe(mesh: trimesh.Trimesh) -> dict:
    return {
        "vertices": len(mesh.vertices),
        "triangles": len(mesh.faces),
        "min": mesh.bounds[0].tolist(),
        "max": mesh.bounds[1].tolist(),
        "area": float(mesh.area),
    }


def compare(name: str, got: dict, expected: dict, keys) -> list:
    problems = []
    extent = max(float(np.max(np.subtract(expected["max"], expected["min"]))), 1e-12)
    for key in keys:
        if key not in expected:
            continue
        if key in ("vertices", "triangles"):
            if got[key] != expected[key]:
                problems.append(f"{name}: {got[key]} {key}, expected {expected[key]}")
        elif key == "area":
            if abs(got[key] - expected[key]) > TOLERANCE * max(expected[key], 1e-12):
                problems.append(f"{name}: area {got[key]}, expected {expected[key]}")
        else:
            difference = float(np.max(np.abs(np.subtract(got[key], expected[key]))))
            if difference > TOLERANCE * extent:
                problems.append(f"{name}: {key} {got[key]}, expected {expected[key]}")
    return problems


def main(paths) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    problems = []
    reference = None
    for path in map(Path, paths):
        if path.suffix.lower() == ".glb" and "EXT_meshopt_compression" in glb_required_extensions(path):
            print(f"{path}: skipped, trimesh cannot decode EXT_meshopt_compression")
            continue
        got = describe(load(path))
        print(
            f"{path}: {got['vertices']} vertices, {got['triangles']} triangles, "
            f"bounds {got['min']} .. {got['max']}, area {got['area']:.6f}"
        )
        sidecar = Path(f"{path}.json")
        if sidecar.exists():
            expected = json.loads(sidecar.read_text())
            problems += compare(f"{path} vs {sidecar}", got, expected, ["vertices", "triangles", "min", "max"])
        if reference is None:
            reference = (path, got)
        else:
            first, expected = reference
            problems += compare(f"{path} vs {first}", got, expected, ["vertices", "triangles", "min", "max", "area"])
    for problem in problems:
        print(f"mismatch: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
