#!/usr/bin/env bash
# Tests kai-server's Model Context Protocol endpoint with the official MCP SDKs: the Python
# SDK (`mcp` on PyPI) and the TypeScript SDKs (`@modelcontextprotocol/sdk` 1.x and
# `@modelcontextprotocol/client` 2.x on npm), pinned in kai-server/tests/mcp/.
#
# The script installs the clients into the user cache and reinstalls them when their pins
# change. It builds the kai and kai-server binaries in the dev profile and imports
# examples/catalog into a temporary store with a few parameter sets and results. Then it
# starts kai-server on a free port of 127.0.0.1 and runs the Python and the Node tests
# against it. Last, it checks that SIGTERM stops the server promptly while an MCP event
# stream is open.
#
# Needs the models (python3 models/fetch.py), Python 3.10+, Node 20+ and npm.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cache=${KAI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kai}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
export MODEL_DIR=${MODEL_DIR:-$cache/models}
python=${KAI_PYTHON:-python3}
tests="$root/kai-server/tests/mcp"

# Prints the checksum of the pin files given.
pins() {
    cat "$@" | sha256sum
}

# Succeeds when the client folder $1 was installed from other pins than the files given.
stale() {
    local folder=$1
    shift
    [ "$(cat "$folder/.kai-pins" 2>/dev/null)" != "$(pins "$@")" ]
}

venv="$cache/mcp-py"
if [ ! -x "$venv/bin/python" ] || stale "$venv" "$tests/requirements.txt"; then
    echo "installing the Python MCP SDK into $venv"
    "$python" -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$tests/requirements.txt"
    pins "$tests/requirements.txt" >"$venv/.kai-pins"
fi

node_dir="$cache/mcp-node"
node_pins=("$tests/package.json" "$tests/package-lock.json")
if [ ! -d "$node_dir/node_modules" ] || stale "$node_dir" "${node_pins[@]}"; then
    echo "installing the TypeScript MCP SDKs into $node_dir"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "${node_pins[@]}" "$node_dir/"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    pins "${node_pins[@]}" >"$node_dir/.kai-pins"
fi

echo "building kai and kai-server"
cargo build --quiet --locked -p kai-server --bin kai-server --bin kai
bin="$CARGO_TARGET_DIR/debug"

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

store="$work/store"
export KAI_DEVICE=cpu
"$bin/kai" import examples/catalog --store "$store" >/dev/null
# Two sets with results on one material, for get_parameters and suggest_parameters.
params() {
    "$bin/kai" params "$@" --store "$store" >/dev/null
}
params set standard recognition.top_k=5 --author kai-tests --note "first version"
params set standard recognition.top_k=8 --author kai-tests --note "more candidates"
params set premium recognition.top_k=3 --author kai-tests
params record standard red-brown-plank-floor score=0.9
params record premium red-brown-plank-floor score=0.4

# A port that is free now; the server binds it a moment later.
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
# The tests send a few hundred requests a minute from one address, above the default
# AGENT_RATE_LIMIT of 30. The shutdown check needs a grace period longer than its wait.
KAI_DATA_DIR="$store" MCP_SERVER_PORT="$port" KAI_BIND_ADDRESS=127.0.0.1 LOG_FORMAT=text \
    LOG_LEVEL=${LOG_LEVEL:-warn} AGENT_RATE_LIMIT=100000 KAI_SHUTDOWN_TIMEOUT_MS=60000 \
    "$bin/kai-server" >"$work/server.log" 2>&1 &
server_pid=$!

health="http://127.0.0.1:$port/health"
if ! "$python" - "$health" "$server_pid" <<'EOF'; then
import os, sys, time, urllib.request

url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"kai-server exited before {url} answered")
    time.sleep(0.2)
sys.exit(f"{url} did not answer 200 within 60 s")
EOF
    cat "$work/server.log" >&2
    exit 1
fi

export KAI_MCP_URL="http://127.0.0.1:$port/mcp"
export KAI_MCP_NODE_MODULES="$node_dir/node_modules"
status=0
echo "testing with the Python SDK"
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    --rootdir "$tests" "$tests/test_python_sdk.py" || status=1
echo "testing with the TypeScript SDKs"
node --test "$tests/typescript_sdk.test.mjs" || status=1

echo "checking that SIGTERM closes an open MCP event stream"
# A client of the earlier revisions opens a session and its standalone event stream, which
# stays open until the server closes it.
"$venv/bin/python" "$tests/open_event_stream.py" "$KAI_MCP_URL" >"$work/stream.log" 2>&1 &
reader_pid=$!
for _ in $(seq 100); do
    grep -q "stream open" "$work/stream.log" && break
    sleep 0.1
done
if ! grep -q "stream open" "$work/stream.log"; then
    echo "error: the event stream did not open" >&2
    cat "$work/stream.log" >&2
    status=1
fi
kill -TERM "$server_pid" 2>/dev/null || true
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
    echo "error: kai-server still runs 10 s after SIGTERM with an MCP event stream open" >&2
    status=1
elif wait "$server_pid"; then
    echo "kai-server stopped after SIGTERM"
else
    echo "error: kai-server exited with status $? after SIGTERM" >&2
    status=1
fi
if [ "$status" != 0 ]; then
    echo "kai-server log:" >&2
    cat "$work/server.log" >&2
fi
server_pid=
kill "$reader_pid" 2>/dev/null || true
wait "$reader_pid" 2>/dev/null || true
exit "$status"
