#!/usr/bin/env bash
# The one command that runs the whole test suite on a fresh machine:
#   1. installs the tools the compat tests need if they are missing
#      (aws CLI v1 and boto3 with pip, rclone with apt-get),
#   2. makes sure PostgreSQL is up on 127.0.0.1:5432,
#   3. cargo test (all targets, then doctests; dev profile with optimised dependencies),
#   4. compat-tests/run.sh (real server, aws CLI + boto3 + rclone), SQLite and PostgreSQL at once,
#      then over https (SQLite).
#   4b. compat-tests/s3-tests/run.sh (ceph/s3-tests against the committed pass list), both at once.
#   4c. deploy/validate.sh (the Kubernetes manifests, compose file, dashboard and Dockerfile).
#   5. scripts/bench-smoke.sh (the benchmark tool's tiny smoke profile, SQLite only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { echo "[test.sh] $*"; }
die() { echo "[test.sh] FAIL: $*" >&2; exit 1; }

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found"

# ------------------------------------------------------------------ python tools
PYTHON="${PYTHON:-python3}"
export PYTHON
if ! command -v aws >/dev/null 2>&1 || ! "$PYTHON" -c 'import boto3, awscrt' >/dev/null 2>&1; then
    log "installing awscli, boto3 (pip)"
    "$PYTHON" -m pip install --quiet awscli boto3 'botocore[crt]'
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash || true
    fi
    hash -r
fi
command -v aws >/dev/null 2>&1 || die "aws CLI still not on PATH after pip install"
"$PYTHON" -c 'import boto3, awscrt' || die "boto3 or awscrt still not importable by $PYTHON after pip install"
log "$(aws --version 2>&1), boto3 $("$PYTHON" -c 'import boto3; print(boto3.__version__)')"

# ------------------------------------------------------------------ rclone (Debian package)
if ! command -v rclone >/dev/null 2>&1; then
    log "installing rclone (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq rclone >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq rclone >/dev/null; } ||
        die "apt-get install rclone failed"
    hash -r
fi
command -v rclone >/dev/null 2>&1 || die "rclone still not on PATH after apt-get install"
log "$(rclone version 2>/dev/null | head -n 1)"

# ------------------------------------------------------------------ postgres
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$ver" ]] || die "PostgreSQL is not running and no cluster found under /etc/postgresql"
    log "starting PostgreSQL $ver/main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 60); do
        pg_isready -h 127.0.0.1 -p 5432 -q && break
        sleep 0.5
    done
    pg_isready -h 127.0.0.1 -p 5432 -q || die "PostgreSQL did not come up on 127.0.0.1:5432"
fi
log "PostgreSQL is up"

# ------------------------------------------------------------------ cargo tests
log "cargo test --all-targets"
cargo test --all-targets
log "cargo test --doc"
cargo test --doc

# ------------------------------------------------------------------ compat tests
# The two backends run at once (each has its own server, port, data dir, database and bucket
# names): the scripts mostly wait on client start-up, so this saves minutes of CI.
log "compat-tests/run.sh sqlite (then https) and postgres, concurrently"
# With the example in the same build, dev-dependency features are unified as in `cargo test`,
# so this reuses the test build's artifacts (`--bin` alone rebuilt the crate and its
# dependencies with other features: 2+ minutes of CI).
cargo build --bin just-storage --example bench
export JS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/just-storage"
compat_logs="$(mktemp -d "${TMPDIR:-/tmp}/js-compat-logs.XXXXXX")"
# The https pass (SQLite behind TLS, a test CA, a certificate reload under load) follows the
# SQLite one in the same job.
(bash compat-tests/run.sh sqlite && bash compat-tests/run.sh https) >"$compat_logs/sqlite.log" 2>&1 &
sqlite_pid=$!
bash compat-tests/run.sh postgres >"$compat_logs/postgres.log" 2>&1 &
postgres_pid=$!
compat_failed=()
wait "$sqlite_pid" || compat_failed+=(sqlite)
wait "$postgres_pid" || compat_failed+=(postgres)
cat "$compat_logs/sqlite.log" "$compat_logs/postgres.log"
rm -rf "$compat_logs"
[[ ${#compat_failed[@]} -eq 0 ]] || die "compat tests failed on: ${compat_failed[*]} (logs above)"

# ------------------------------------------------------------------ conformance
# ceph/s3-tests, everything in scope, both databases at once; fails when a test on
# compat-tests/s3-tests/pass.txt fails, a test hangs or the server logs an internal error.
log "compat-tests/s3-tests/run.sh --profile full (SQLite and PostgreSQL)"
bash compat-tests/s3-tests/run.sh --profile full all

# ------------------------------------------------------------------ deploy manifests
# Renders the kustomize overlays and checks them offline (Kubernetes schemas, CRD fields,
# references, PromQL and metric names), plus the compose file, the Grafana dashboard and the
# Dockerfile; the image is built only where a container engine runs (skipped here otherwise).
log "deploy/validate.sh"
bash deploy/validate.sh

# ------------------------------------------------------------------ benchmark smoke
log "scripts/bench-smoke.sh"
bash scripts/bench-smoke.sh

log "all tests passed"
