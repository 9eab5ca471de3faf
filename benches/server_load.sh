#!/usr/bin/env bash
# Load test of kai-server's batched inference routes, with dynamic batching on and off.
#
# Builds kai and kai-server in release, imports examples/catalog into a temporary store,
# starts kai-server on 127.0.0.1 twice (MAX_BATCH_SIZE=16, then MAX_BATCH_SIZE=1) and
# drives POST /api/embed/text (one short text per request) and POST /api/recognize (one
# photo per request) with wrk at 1, 8 and 32 connections. It prints a Markdown table of
# throughput, p50 and p99 latency and mean batch size, and writes it as the section
# "kai-server under load" of benches/RESULTS.md, replacing that section only.
#
# Needs the models in MODEL_DIR (`python3 models/fetch.py`). wrk comes from Debian: the
# script installs it with apt-get when it is missing, which needs root.
#
# Settings, from the environment:
#   DURATION         wrk duration of each run (default 15s)
#   CONCURRENCY      connection counts (default "1 8 32")
#   PORT             the server's port on 127.0.0.1 (default 18081)
#   BATCH_WINDOW_MS  KAI_BATCH_WINDOW_MS of the server (default 5, the server's default)
#   PHOTO            the photo sent to /api/recognize
#   RESULTS          the file to update (default benches/RESULTS.md; /dev/null only prints)

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kai/target}
export MODEL_DIR=${MODEL_DIR:-$HOME/.cache/kai/models}
DURATION=${DURATION:-15s}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
PORT=${PORT:-18081}
BATCH_WINDOW_MS=${BATCH_WINDOW_MS:-5}
PHOTO=${PHOTO:-$ROOT/examples/queries/heldout-cracked-grey-rock.jpg}
RESULTS=${RESULTS:-$ROOT/benches/RESULTS.md}
BASE=http://127.0.0.1:$PORT
# High enough that no run reaches a rate limit.
UNLIMITED=1000000000

if ! command -v wrk >/dev/null; then
    echo "installing wrk with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

echo "building kai and kai-server in release" >&2
cargo build --release -p kai-server --manifest-path "$ROOT/Cargo.toml" >&2
BIN=$CARGO_TARGET_DIR/release

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "importing examples/catalog into $WORK/store" >&2
"$BIN/kai" import "$ROOT/examples/catalog" --store "$WORK/store" >&2

# wrk scripts: the request body, and a last line `RESULT requests/s p50_ms p99_ms errors`.
cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format("RESULT %.2f %.2f %.2f %d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
LUA
cat "$WORK/report.lua" - >"$WORK/embed_text.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "polished grey granite floor tiles"}'
LUA
cat "$WORK/report.lua" - >"$WORK/recognize.lua" <<'LUA'
local file = assert(io.open(os.getenv("KAI_BENCH_PHOTO"), "rb"))
local photo = file:read("*a")
file:close()
local boundary = "kai-bench-boundary-5f0e"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n"
    .. 'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
    .. "Content-Type: image/jpeg\r\n\r\n" .. photo .. "\r\n--" .. boundary .. "--\r\n"
LUA

start_server() {
    local batch=$1
    env KAI_BIND_ADDRESS=127.0.0.1 MCP_SERVER_PORT="$PORT" KAI_DATA_DIR="$WORK/store" \
        MODEL_DIR="$MODEL_DIR" KAI_DEVICE=cpu LOG_LEVEL=warn LOG_FORMAT=text \
        MAX_BATCH_SIZE="$batch" KAI_BATCH_WINDOW_MS="$BATCH_WINDOW_MS" \
        ML_RATE_LIMIT=$UNLIMITED DEFAULT_RATE_LIMIT=$UNLIMITED AGENT_RATE_LIMIT=$UNLIMITED \
        "$BIN/kai-server" >"$WORK/server-$batch.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 120); do
        if curl -sf "$BASE/health" >/dev/null; then
            break
        fi
        sleep 0.5
    done
    curl -sf "$BASE/health" >/dev/null || {
        echo "kai-server did not start; its log:" >&2
        cat "$WORK/server-$batch.log" >&2
        exit 1
    }
    # One request per route loads the models, so no run measures a model load.
    curl -sf -X POST -H 'Content-Type: application/json' -d '{"text": "warm up"}' \
        "$BASE/api/embed/text" >/dev/null
    curl -sf -X POST -F "image=@$PHOTO" "$BASE/api/recognize" >/dev/null
}

stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}

# Prints the sum and count of kai_batch_size{kind=KIND} from /metrics ("0 0" without).
batch_totals() {
    curl -sf "$BASE/metrics" | awk -v kind="kind=\"$1\"" '
        index($0, "kai_batch_size_sum{") == 1 && index($0, kind) { sum = $NF }
        index($0, "kai_batch_size_count{") == 1 && index($0, kind) { count = $NF }
        END { printf "%s %s\n", sum + 0, count + 0 }'
}

ROWS=()
declare -A RATE P99
run() {
    local batching=$1 route=$2 script=$3 kind=$4 clients=$5
    local threads=$((clients < 2 ? clients : 2))
    local before after output result mean
    before=$(batch_totals "$kind")
    output=$(KAI_BENCH_PHOTO=$PHOTO wrk -t"$threads" -c"$clients" -d"$DURATION" \
        --timeout 30s -s "$WORK/$script" "$BASE$route")
    after=$(batch_totals "$kind")
    result=$(grep '^RESULT' <<<"$output")
    mean=$(awk -v b="$before" -v a="$after" 'BEGIN {
        split(b, x, " "); split(a, y, " "); n = y[2] - x[2];
        if (n > 0) printf "%.1f", (y[1] - x[1]) / n; else printf "-" }')
    read -r _ rate p50 p99 errors <<<"$result"
    echo "$route c=$clients batching=$batching: $rate req/s, p50 $p50 ms, p99 $p99 ms, mean batch $mean, errors $errors" >&2
    ROWS+=("| \`POST $route\` | $clients | $batching | $rate | $p50 | $p99 | $mean | $errors |")
    RATE[$route,$clients,$batching]=$rate
    P99[$route,$clients,$batching]=$p99
}

# Prints one row per route and client count: batching on relative to off.
ratio_rows() {
    local route clients
    for route in /api/embed/text /api/recognize; do
        for clients in $CONCURRENCY; do
            awk -v route="$route" -v clients="$clients" \
                -v rate_on="${RATE[$route,$clients,on]}" -v rate_off="${RATE[$route,$clients,off]}" \
                -v p99_on="${P99[$route,$clients,on]}" -v p99_off="${P99[$route,$clients,off]}" \
                'BEGIN { printf "| `POST %s` | %s | %.2f | %.2f |\n", route, clients,
                         rate_on / rate_off, p99_on / p99_off }'
        done
    done
}

for batch in 16 1; do
    label=$([[ $batch == 1 ]] && echo "off" || echo "on")
    start_server "$batch"
    for clients in $CONCURRENCY; do
        run "$label" /api/embed/text embed_text.lua text "$clients"
        run "$label" /api/recognize recognize.lua recognition "$clients"
    done
    stop_server
done

CPU=$(lscpu | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2; exit }')
MEMORY=$(free -g | awk '/^Mem:/ { print $2 }')
GPU=$(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo "no GPU")
SECTION=$(
    cat <<EOF
## kai-server under load: dynamic batching on and off

- Date: $(date -u +%Y-%m-%d).
- Command: \`benches/server_load.sh\` (DURATION=$DURATION, CONCURRENCY="$CONCURRENCY",
  KAI_BATCH_WINDOW_MS=$BATCH_WINDOW_MS).
- Machine: $(nproc) vCPUs ($CPU), $MEMORY GiB, Linux $(uname -r), $GPU. wrk runs on
  the same machine and takes CPU time from the server.
- Server: release build of kai-server on 127.0.0.1 with the sample catalog, the default
  models on the CPU, rate limits raised out of the way. Batching on is MAX_BATCH_SIZE=16,
  off is MAX_BATCH_SIZE=1; everything else is the default configuration.
- Load: \`wrk -t min(clients, 2) -c clients -d $DURATION\`. \`/api/embed/text\` sends
  one short text per request, \`/api/recognize\` one $(stat -c %s "$PHOTO")-byte JPEG
  ($(basename "$PHOTO")). Latencies are wrk's percentiles; the mean batch is requests
  per model call from kai-server's \`kai_batch_size\` histogram.

| route | clients | batching | requests/s | p50 (ms) | p99 (ms) | mean batch | errors |
| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${ROWS[@]}")

Batching on relative to off, in the same run:

| route | clients | throughput on / off | p99 on / off (lower is better) |
| --- | ---: | ---: | ---: |
$(ratio_rows)
EOF
)
echo "$SECTION"

# Replaces this benchmark's section of RESULTS (up to the next "## " heading), or appends it.
if [[ $RESULTS != /dev/null ]]; then
    SECTION=$SECTION python3 - "$RESULTS" <<'PY'
import os
import sys

path = sys.argv[1]
heading = "## kai-server under load"
section = os.environ["SECTION"].rstrip("\n") + "\n"
lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
if start is None:
    text = "".join(lines).rstrip("\n") + "\n\n" + section
else:
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
    )
    rest = "".join(lines[end:])
    text = "".join(lines[:start]) + section + ("\n" + rest if rest else "")
open(path, "w", encoding="utf-8").write(text)
PY
    echo "updated $RESULTS" >&2
fi
