#!/usr/bin/env bash
# Checks the 3D files kai writes with readers that are not kai's own. It renders a small
# synthetic scene, runs `kai reconstruct` on it and exports the levels of detail again as
# uncompressed GLB, PLY and OBJ. Then:
#
# - the Khronos glTF validator checks every GLB (it skips the data of compressed buffer
#   views, hence the next check);
# - glTF Transform with the meshoptimizer decoder decodes each compressed level and
#   compares it with the same level written without compression;
# - trimesh loads each level as PLY, OBJ and uncompressed GLB, and the three must agree.
#
# Uses the `kai` binary of the dev profile (`cargo build -p kai-server --bin kai`) and the
# Python interpreter in KAI_TEST_PYTHON (with trimesh installed), as scripts/test sets up.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${KAI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kai}
target=${CARGO_TARGET_DIR:-$cache/target}
kai="$target/debug/kai"
python=${KAI_TEST_PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$kai" recon synth "$work/scene" --images 10 --width 400 --height 300 --arc-degrees 90 --seed 5
"$kai" reconstruct "$work/scene" -o "$work/meshopt/model.glb" --work "$work/stages"
"$kai" recon export "$work/stages/lod" -o "$work/plain/model.glb" --compression none
"$kai" recon export "$work/stages/lod" -o "$work/ply/model.ply"
"$kai" recon export "$work/stages/lod" -o "$work/obj/model.obj"

mapfile -t glbs < <(find "$work" -name '*.glb' | sort)
node scripts/check_gltf.mjs validate "${glbs[@]}"
for compressed in "$work"/meshopt/*.glb; do
    name=$(basename "$compressed")
    node scripts/check_gltf.mjs compare "$compressed" "$work/plain/$name"
    stem=${name%.glb}
    "$python" scripts/check_mesh_readers.py \
        "$work/ply/$stem.ply" "$work/obj/$stem.obj" "$work/plain/$name"
done
# The stage files are PLY too: the dense points and the full mesh.
"$python" scripts/check_mesh_readers.py "$work/stages/mesh.ply" "$work/stages/lod/lod0.ply"
