#!/usr/bin/env bash
# Runs every compat script (compat-tests/*.sh except this one, and
# compat-tests/*.py) against a freshly started real just-storage server,
# once per metadata backend, and once over https (SQLite, a test CA the clients
# trust through AWS_CA_BUNDLE, as users configure them).
#
# Usage: compat-tests/run.sh [sqlite|postgres|https|all]     (default: all)
#
# A script whose first lines say "compat: https-only" runs only in the https
# pass; it gets JS_SERVER_PID, JS_TLS_DIR and JS_TLS_SH (lib/tls.sh) to replace
# the server's certificate.
#
# Env:
#   JS_BIN              server binary; if unset it is built with
#                       `cargo build --bin just-storage`
#   PYTHON              python interpreter for *.py scripts (default python3)
#   JS_PG_HOST/PORT/USER  PostgreSQL to create scratch databases on
#                       (default 127.0.0.1 / 5432 / postgres)
#   JS_HEALTH_TRIES     health polls, 0.1 s apart (default 100)
#   JS_SCRIPT_TIMEOUT   seconds allowed per compat script (default 900)
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPAT_DIR="$ROOT/compat-tests"
cd "$ROOT"

usage() { echo "usage: $0 [sqlite|postgres|https|all]" >&2; }
case "${1:-all}" in
    sqlite) BACKENDS=(sqlite) ;;
    postgres | postgresql | pg) BACKENDS=(postgres) ;;
    https | tls) BACKENDS=(https) ;;
    all) BACKENDS=(sqlite postgres https) ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
esac
[[ $# -le 1 ]] || { usage; exit 2; }

PYTHON="${PYTHON:-python3}"
SCRIPT_TIMEOUT="${JS_SCRIPT_TIMEOUT:-900}"

log()  { echo "[compat] $*"; }
die()  { echo "[compat] FAIL: $*" >&2; exit 1; }

# ------------------------------------------------------------------ state + cleanup
# shellcheck source=lib/server.sh
. "$COMPAT_DIR/lib/server.sh"
CHILD_PID=""
SERVER_LOG=""
WORK=""
DB_NAME=""
SCHEME=http
TLS_CA=""
FAILURES=()

cleanup_backend() {
    stop_server
    drop_db
    if [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
        WORK=""
    fi
    SERVER_LOG=""
}

on_exit() {
    local rc=$?
    trap - EXIT
    if [[ -n "$CHILD_PID" ]]; then
        # a compat script is still running (we were interrupted): stop it
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 ]]; then
        print_server_log
    fi
    cleanup_backend
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ------------------------------------------------------------------ prerequisites
command -v curl >/dev/null || die "curl is required"
if [[ -z "${JS_BIN:-}" ]]; then
    log "building server: cargo build --bin just-storage"
    cargo build --bin just-storage
    JS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/just-storage"
fi
[[ -x "$JS_BIN" ]] || die "server binary not found or not executable: $JS_BIN"
log "server binary: $JS_BIN"

mapfile -t SCRIPTS < <(
    find "$COMPAT_DIR" -maxdepth 1 -type f \( -name '*.sh' -o -name '*.py' \) ! -name run.sh -printf '%f\n' |
        LC_ALL=C sort
)
[[ ${#SCRIPTS[@]} -gt 0 ]] || die "no compat scripts found in $COMPAT_DIR"
log "compat scripts: ${SCRIPTS[*]}"

run_script() {
    local backend="$1" script="$2" rc=0
    local -a cmd tls_env=()
    if head -n 30 "$COMPAT_DIR/$script" | grep -q 'compat: https-only'; then
        [[ "$backend" == https ]] || return 0
    fi
    if [[ "$backend" == https ]]; then
        # What a user sets to trust a private CA: aws-cli and botocore read AWS_CA_BUNDLE,
        # curl CURL_CA_BUNDLE, rclone RCLONE_CA_CERT.
        tls_env=(AWS_CA_BUNDLE="$TLS_CA" CURL_CA_BUNDLE="$TLS_CA" RCLONE_CA_CERT="$TLS_CA"
            JS_SERVER_PID="$SERVER_PID" JS_TLS_DIR="$WORK/tls" JS_TLS_SH="$COMPAT_DIR/lib/tls.sh")
    fi
    case "$script" in
        *.py) cmd=("$PYTHON" "$COMPAT_DIR/$script") ;;
        *) cmd=(bash "$COMPAT_DIR/$script") ;;
    esac
    log "==== [$backend] $script"
    # Isolate from any ~/.aws configuration of the machine.
    env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN -u AWS_SECURITY_TOKEN \
        -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 \
        AWS_CONFIG_FILE="$WORK/aws-config-empty" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials-empty" \
        AWS_EC2_METADATA_DISABLED=true \
        ENDPOINT="$SCHEME://127.0.0.1:$PORT" "${tls_env[@]}" \
        AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" \
        AWS_DEFAULT_REGION=us-east-1 \
        TMPDIR="$WORK" \
        timeout -k 10 "$SCRIPT_TIMEOUT" "${cmd[@]}" </dev/null &
    # Waiting on a background child keeps INT/TERM handling immediate.
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    if [[ $rc -ne 0 ]]; then
        [[ $rc -eq 124 ]] && echo "[compat] $script timed out after ${SCRIPT_TIMEOUT}s" >&2
        echo "[compat] FAIL: [$backend] $script exited with status $rc" >&2
        print_server_log
        FAILURES+=("$backend:$script")
        return 0
    fi
    log "==== [$backend] $script passed"
}

run_backend() {
    local backend="$1" script
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/js-compat-$backend.XXXXXX")"
    mkdir -p "$WORK/data"
    : >"$WORK/aws-config-empty"
    : >"$WORK/aws-credentials-empty"
    SERVER_LOG="$WORK/server.log"
    ACCESS_KEY="JSCOMPAT$(rand_hex 6 | tr 'a-f' 'A-F')"
    SECRET_KEY="$(rand_hex 20)"

    if [[ "$backend" == postgres ]]; then
        ensure_postgres
        create_db js_compat
    fi

    log "######## backend: $backend"
    if [[ "$backend" == https ]]; then
        mkdir -p "$WORK/tls"
        bash "$COMPAT_DIR/lib/tls.sh" ca "$WORK/tls"
        bash "$COMPAT_DIR/lib/tls.sh" issue "$WORK/tls" first
        SCHEME=https
        TLS_CA="$WORK/tls/ca.pem"
        start_server sqlite --tls-cert "$WORK/tls/tls.crt" --tls-key "$WORK/tls/tls.key"
    else
        SCHEME=http
        TLS_CA=""
        start_server "$backend"
    fi
    for script in "${SCRIPTS[@]}"; do
        run_script "$backend" "$script"
    done
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "[compat] FAIL: [$backend] server died during the tests" >&2
        print_server_log
        FAILURES+=("$backend:server-died")
    fi
    cleanup_backend
}

for backend in "${BACKENDS[@]}"; do
    run_backend "$backend"
done

if [[ ${#FAILURES[@]} -gt 0 ]]; then
    echo "[compat] FAILED: ${FAILURES[*]}" >&2
    exit 1
fi
log "all compat scripts passed on: ${BACKENDS[*]}"
