#!/usr/bin/env bash
# Validates deploy/ offline, on a machine that reaches PyPI and nothing else:
#   1. renders deploy/kubernetes/base and every overlay with `kubectl kustomize`;
#   2. checks the output (deploy/validate.py): built-in kinds against the Kubernetes schemas of
#      kubernetes-validate (strict), the CRDs (CloudNativePG, Prometheus operator) against
#      structural schemas kept in validate.py, references inside each overlay, the gateway's
#      settings against src/config.rs, every PromQL expression (alerts, dashboard) and the metric
#      names it uses against src/, the Grafana JSON, the compose file and the Dockerfile;
#   3. builds the image, and starts it for a /health and /ready check, only when a container
#      engine answers and its base images are there or can be pulled; otherwise says it skipped.
#      JS_DEPLOY_IMAGE=0 skips it, JS_DEPLOY_IMAGE=1 makes a skipped build a failure.
# Python tools go into a venv under ${TMPDIR:-/tmp} (reused across runs).
# Exits non-zero on any validation failure; each step has a time limit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { echo "[validate.sh] $*"; }
die() { echo "[validate.sh] FAIL: $*" >&2; exit 1; }

started=$SECONDS
PYTHON="${PYTHON:-python3}"
TOOLS="${TMPDIR:-/tmp}/juststorage-deploy-tools"
# Pinned: the same schemas and parser everywhere. promql-parser is taken as a wheel only (it is
# Rust inside; never compiled here).
REQUIREMENTS="kubernetes-validate==1.37.0 PyYAML>=6 promql-parser==0.11.0"

# ------------------------------------------------------------------ python tools
# A venv when the interpreter has the venv module, else `pip install --target` (Debian's python3
# without python3-venv).
tools_python=""
setup_tools() {
    local stamp="$TOOLS/requirements.txt"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$REQUIREMENTS" ]]; then
        if [[ -x "$TOOLS/venv/bin/python" ]]; then
            tools_python="$TOOLS/venv/bin/python"
            return
        elif [[ -d "$TOOLS/site" ]]; then
            tools_python="$PYTHON"
            export PYTHONPATH="$TOOLS/site${PYTHONPATH:+:$PYTHONPATH}"
            return
        fi
    fi
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS"
    local pip_args=(--quiet --disable-pip-version-check --no-input)
    if "$PYTHON" -m venv "$TOOLS/venv" >/dev/null 2>&1 && [[ -x "$TOOLS/venv/bin/python" ]]; then
        tools_python="$TOOLS/venv/bin/python"
        log "installing kubernetes-validate, PyYAML into $TOOLS/venv"
        timeout 300 "$tools_python" -m pip install "${pip_args[@]}" kubernetes-validate==1.37.0 'PyYAML>=6' ||
            die "pip install kubernetes-validate failed"
        timeout 120 "$tools_python" -m pip install "${pip_args[@]}" --only-binary=:all: promql-parser==0.11.0 ||
            log "promql-parser has no wheel for this platform: PromQL will not be parsed (names still checked)"
    else
        rm -rf "$TOOLS/venv"
        tools_python="$PYTHON"
        log "no venv module: installing kubernetes-validate, PyYAML into $TOOLS/site"
        timeout 300 "$PYTHON" -m pip install "${pip_args[@]}" --target "$TOOLS/site" kubernetes-validate==1.37.0 'PyYAML>=6' ||
            die "pip install kubernetes-validate failed"
        timeout 120 "$PYTHON" -m pip install "${pip_args[@]}" --target "$TOOLS/site" --only-binary=:all: promql-parser==0.11.0 ||
            log "promql-parser has no wheel for this platform: PromQL will not be parsed (names still checked)"
        export PYTHONPATH="$TOOLS/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    echo "$REQUIREMENTS" >"$stamp"
}
setup_tools
"$tools_python" -c 'import kubernetes_validate, yaml, jsonschema' ||
    die "kubernetes-validate is not importable from $TOOLS"
log "python tools ready ($((SECONDS - started)) s)"

# ------------------------------------------------------------------ render
command -v kubectl >/dev/null 2>&1 || die "kubectl not found (needed for 'kubectl kustomize')"
render="$(mktemp -d "${TMPDIR:-/tmp}/juststorage-deploy-render.XXXXXX")"
trap 'rm -rf "$render"' EXIT
for target in base overlays/single overlays/production; do
    name="${target#overlays/}"
    timeout 60 kubectl kustomize "deploy/kubernetes/$target" >"$render/$name.yaml" ||
        die "kubectl kustomize deploy/kubernetes/$target failed"
    log "rendered deploy/kubernetes/$target: $(grep -c '^kind:' "$render/$name.yaml") objects"
done

# ------------------------------------------------------------------ checks
timeout 300 "$tools_python" deploy/validate.py "$ROOT" "$render" ||
    die "deploy checks failed (the FAIL lines above)"

# ------------------------------------------------------------------ image
# Builds only where an engine runs and the base images can be had: a build that cannot start
# for want of an engine or a registry is skipped, never failed (unless JS_DEPLOY_IMAGE=1).
image_skip() {
    if [[ "${JS_DEPLOY_IMAGE:-auto}" == 1 ]]; then
        die "image build required (JS_DEPLOY_IMAGE=1) but skipped: $*"
    fi
    log "SKIP image build: $*"
}
image_check() {
    if [[ "${JS_DEPLOY_IMAGE:-auto}" == 0 ]]; then
        log "SKIP image build: JS_DEPLOY_IMAGE=0"
        return
    fi
    if ! command -v docker >/dev/null 2>&1; then
        image_skip "no docker client on this machine"
        return
    fi
    if ! timeout 10 docker info >/dev/null 2>&1; then
        image_skip "no container engine answers ('docker info' fails: only the docker client is installed here)"
        return
    fi
    local base
    for base in rust:1.95-slim-bookworm debian:bookworm-slim; do
        if ! docker image inspect "$base" >/dev/null 2>&1 && ! timeout 120 docker pull -q "$base" >/dev/null 2>&1; then
            image_skip "base image $base is not present and cannot be pulled (no registry access)"
            return
        fi
    done
    local tag="just-storage:validate"
    log "docker build -f deploy/Dockerfile -t $tag . (up to ${JS_DEPLOY_IMAGE_TIMEOUT:-2400} s)"
    timeout "${JS_DEPLOY_IMAGE_TIMEOUT:-2400}" docker build -f deploy/Dockerfile -t "$tag" . ||
        die "docker build failed"
    # Start it on SQLite (the image's default) and ask for /health and /ready.
    local cid port ok=""
    cid="$(docker run -d --rm --read-only --tmpfs /tmp --cap-drop ALL -p 127.0.0.1::9000 "$tag")" ||
        die "docker run $tag failed"
    port="$(docker port "$cid" 9000/tcp | head -n 1 | sed 's/.*://')"
    for _ in $(seq 1 60); do
        if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 &&
            curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then
            ok=1
            break
        fi
        sleep 1
    done
    if [[ -z "$ok" ]]; then
        docker logs "$cid" >&2 || true
        docker stop "$cid" >/dev/null 2>&1 || true
        die "the image did not answer /health and /ready within 60 s"
    fi
    docker stop "$cid" >/dev/null
    log "image $tag built; a container answered /health and /ready"
}
image_check

log "deploy/ is valid ($((SECONDS - started)) s)"
