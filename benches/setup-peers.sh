#!/usr/bin/env bash
# Creates the virtual environment with the peer libraries that the benchmarks compare kai
# against (sentence-transformers on PyTorch), in KAI_CACHE_DIR/peers (default
# ~/.cache/kai/peers). Safe to rerun: pip skips what is installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KAI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kai}
venv="$cache/peers"
# Open3D's wheel links the system libusb-1.0; install it where this script may (root
# with apt).
if ! ldconfig -p 2>/dev/null | grep -q libusb-1.0; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y --no-install-recommends libusb-1.0-0 >/dev/null \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends libusb-1.0-0 >/dev/null; }
    else
        echo "note: Open3D needs libusb-1.0 (Debian and Ubuntu: apt-get install libusb-1.0-0)" >&2
    fi
fi
[ -x "$venv/bin/python" ] || "${KAI_PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-peers.txt"
echo "peer environment ready: $venv/bin/python"
