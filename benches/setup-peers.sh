#!/usr/bin/env bash
# Creates the virtual environment with the peer libraries that the benchmarks compare kai
# against (sentence-transformers on PyTorch), in KAI_CACHE_DIR/peers (default
# ~/.cache/kai/peers). Safe to rerun: pip skips what is installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KAI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kai}
venv="$cache/peers"
[ -x "$venv/bin/python" ] || "${KAI_PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-peers.txt"
echo "peer environment ready: $venv/bin/python"
