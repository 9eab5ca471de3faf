#!/usr/bin/env bash
# Tests kai-node's TypeScript client against a real kai-server.
#
# The script installs the Node tools pinned in kai-node/package.json and package-lock.json
# (TypeScript, @types/node, @napi-rs/cli) into the user cache, compiles kai-node/ts into
# kai-node/dist with tsc, and type-checks and compiles examples/node against the package's
# types. It imports examples/catalog into a temporary store, starts kai-server on a free
# port of 127.0.0.1 with a JWT_SECRET, and runs the node:test suites of
# kai-node/__test__/client against it. Last, it runs the compiled example through the
# server and in-process. The server is stopped by its PID when the script ends.
#
# Uses the native module kai-node/kai.node that `node kai-node/scripts/build-native.mjs`
# builds, and builds it first when it is missing. Needs the models (python3
# models/fetch.py), Node 20+ and npm.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cache=${KAI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kai}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
export MODEL_DIR=${MODEL_DIR:-$cache/models}

# The tools live outside the clone, in the folder that scripts/test installs them into for
# the native build, and are installed again whenever kai-node/package-lock.json changes.
tools="$cache/node-tools"
if ! cmp -s kai-node/package-lock.json "$tools/installed-lock.json"; then
    echo "installing the Node tools into $tools"
    rm -rf "$tools"
    mkdir -p "$tools"
    cp kai-node/package.json kai-node/package-lock.json "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
    # Written last, so an interrupted install is repeated.
    cp kai-node/package-lock.json "$tools/installed-lock.json"
fi
export KAI_NODE_TOOLS=$tools
tsc="$tools/node_modules/.bin/tsc"
type_roots="$tools/node_modules/@types"

if [ ! -f kai-node/kai.node ]; then
    echo "building the native module"
    node kai-node/scripts/build-native.mjs --tools "$tools"
fi

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

echo "compiling kai-node/ts with tsc $("$tsc" --version | sed 's/^Version //')"
rm -rf kai-node/dist
"$tsc" -p kai-node/tsconfig.json --typeRoots "$type_roots"

echo "type-checking examples/node against the package's types"
# A copy of the example with the package linked into its node_modules, as `npm install`
# links the `file:` dependency, so the example resolves `kai` as an application does.
example="$work/example"
mkdir -p "$example/node_modules"
cp examples/node/quickstart.ts examples/node/tsconfig.json examples/node/package.json "$example/"
ln -s "$root/kai-node" "$example/node_modules/kai"
"$tsc" -p "$example/tsconfig.json" --typeRoots "$type_roots" --noEmit
"$tsc" -p "$example/tsconfig.json" --typeRoots "$type_roots"

echo "building kai and kai-server"
cargo build --quiet --locked -p kai-server --bin kai-server --bin kai
bin="$CARGO_TARGET_DIR/debug"

store="$work/store"
export KAI_DEVICE=cpu
"$bin/kai" import examples/catalog --store "$store" >/dev/null

# A port that is free now, for the server to bind a moment later.
port=$(node -e 'const s = require("node:net").createServer()
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })')
secret=$(node -e 'console.log(require("node:crypto").randomBytes(32).toString("hex"))')
# The tests send a few hundred requests a minute from one address, above the default
# rate limits. KAI_MAX_IMAGE_BYTES is low so that a test can exceed it with a small body.
KAI_DATA_DIR="$store" MCP_SERVER_PORT="$port" KAI_BIND_ADDRESS=127.0.0.1 LOG_FORMAT=text \
    LOG_LEVEL=${LOG_LEVEL:-warn} DEFAULT_RATE_LIMIT=100000 ML_RATE_LIMIT=100000 \
    AGENT_RATE_LIMIT=100000 KAI_MAX_IMAGE_BYTES=1000000 JWT_SECRET="$secret" \
    "$bin/kai-server" >"$work/server.log" 2>&1 &
server_pid=$!

url="http://127.0.0.1:$port"
if ! node - "$url/health" "$server_pid" <<'EOF'; then
const [url, pid] = process.argv.slice(2)
const deadline = Date.now() + 60_000
async function wait() {
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
      if (response.status === 200) {
        return
      }
    } catch {
      // Not listening yet.
    }
    try {
      process.kill(Number(pid), 0)
    } catch {
      throw new Error(`kai-server exited before ${url} responded`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`${url} did not return 200 within 60 s`)
}
wait().catch((err) => {
  console.error(`error: ${err.message}`)
  process.exit(1)
})
EOF
    cat "$work/server.log" >&2
    exit 1
fi

export KAI_TEST_SERVER_URL=$url KAI_TEST_JWT_SECRET=$secret KAI_TEST_STORE=$store
status=0
echo "testing the client against kai-server at $url"
# One file at a time and in this order, because node --test sorts the files it is given:
# the parity tests compare the native module and the server on the imported store, and
# the remote tests change that store afterwards.
for file in config create errors parity remote recon; do
    node --test "kai-node/__test__/client/$file.test.mjs" || status=1
done

echo "running examples/node through kai-server"
token=$(node -e '
const { createHmac } = require("node:crypto")
const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url")
const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ exp: Math.floor(Date.now() / 1000) + 600 })}`
console.log(`${body}.${createHmac("sha256", process.argv[1]).update(body).digest("base64url")}`)
' "$secret")
if output=$(USE_MCP_SERVER=true MCP_SERVER_URL="$url" KAI_API_TOKEN="$token" \
    node "$example/dist/quickstart.js" examples/queries/altered-red-brown-plank-floor.jpg 2>&1); then
    echo "$output"
    if ! grep -q "red-brown-plank-floor" <<<"$output" || grep -q "health check" <<<"$output"; then
        echo "error: the example did not recognize red-brown-plank-floor through kai-server" >&2
        status=1
    fi
else
    echo "$output" >&2
    echo "error: examples/node failed" >&2
    status=1
fi

echo "running examples/node in-process"
# The in-process run imports examples/catalog into an empty store first.
if output=$(KAI_DATA_DIR="$work/example-store" node "$example/dist/quickstart.js" 2>&1); then
    echo "$output"
    if ! grep -q "imported 44 materials" <<<"$output" || ! grep -q "red-brown-plank-floor" <<<"$output"; then
        echo "error: the in-process example did not import the catalog and recognize the photo" >&2
        status=1
    fi
else
    echo "$output" >&2
    echo "error: examples/node failed in-process" >&2
    status=1
fi

if [ "$status" != 0 ]; then
    echo "kai-server log:" >&2
    cat "$work/server.log" >&2
fi
exit "$status"
