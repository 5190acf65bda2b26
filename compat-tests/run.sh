#!/usr/bin/env bash
# Runs every compat script (compat-tests/*.sh except this one, and
# compat-tests/*.py) against a freshly started real just-storage server,
# once per metadata backend.
#
# Usage: compat-tests/run.sh [sqlite|postgres|all]     (default: all)
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

usage() { echo "usage: $0 [sqlite|postgres|all]" >&2; }
case "${1:-all}" in
    sqlite) BACKENDS=(sqlite) ;;
    postgres | postgresql | pg) BACKENDS=(postgres) ;;
    all | both) BACKENDS=(sqlite postgres) ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
esac
[[ $# -le 1 ]] || { usage; exit 2; }

PYTHON="${PYTHON:-python3}"
PG_HOST="${JS_PG_HOST:-127.0.0.1}"
PG_PORT="${JS_PG_PORT:-5432}"
PG_USER="${JS_PG_USER:-postgres}"
HEALTH_TRIES="${JS_HEALTH_TRIES:-100}"
SCRIPT_TIMEOUT="${JS_SCRIPT_TIMEOUT:-900}"

log()  { echo "[compat] $*"; }
die()  { echo "[compat] FAIL: $*" >&2; exit 1; }

# ------------------------------------------------------------------ state + cleanup
SERVER_PID=""
CHILD_PID=""
SERVER_LOG=""
WORK=""
DB_NAME=""
FAILURES=()

print_server_log() {
    if [[ -n "$SERVER_LOG" && -s "$SERVER_LOG" ]]; then
        echo "[compat] ---- last 100 lines of server log ($SERVER_LOG) ----" >&2
        tail -n 100 "$SERVER_LOG" | sed 's/^/  | /' >&2
        echo "[compat] ---- end of server log ----" >&2
    fi
}

stop_server() {
    local pid="$SERVER_PID"
    [[ -n "$pid" ]] || return 0
    SERVER_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "server $pid did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

psql_admin() {
    PGCONNECT_TIMEOUT=10 psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
        -X -q -v ON_ERROR_STOP=1 "$@"
}

drop_db() {
    local db="$DB_NAME"
    [[ -n "$db" ]] || return 0
    DB_NAME=""
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
        psql_admin -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null ||
        echo "[compat] warning: could not drop database $db" >&2
}

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

ensure_postgres() {
    if pg_isready -h "$PG_HOST" -p "$PG_PORT" -q; then
        return 0
    fi
    local ver
    ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$ver" ]] || die "PostgreSQL is not running and no cluster found under /etc/postgresql"
    log "PostgreSQL not reachable; starting cluster $ver/main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    local i
    for ((i = 0; i < 60; i++)); do
        pg_isready -h "$PG_HOST" -p "$PG_PORT" -q && return 0
        sleep 0.5
    done
    die "PostgreSQL did not come up on $PG_HOST:$PG_PORT"
}

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# True if something accepts connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ------------------------------------------------------------------ server
# start_server BACKEND ; sets SERVER_PID, PORT
start_server() {
    local backend="$1" attempt i port
    local -a args
    for ((attempt = 1; attempt <= 10; attempt++)); do
        port=$((19000 + RANDOM % 5000))
        if port_in_use "$port"; then
            continue
        fi
        args=(serve --listen "127.0.0.1:$port" --data-dir "$WORK/data")
        if [[ "$backend" == postgres ]]; then
            args+=(--database-url "postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_NAME")
        fi
        echo "[compat] \$ $JS_BIN ${args[*]}" >>"$SERVER_LOG"
        JUST_STORAGE_ROOT_ACCESS_KEY="$ACCESS_KEY" \
            JUST_STORAGE_ROOT_SECRET_KEY="$SECRET_KEY" \
            RUST_LOG="${RUST_LOG:-info}" \
            "$JS_BIN" "${args[@]}" >>"$SERVER_LOG" 2>&1 </dev/null &
        SERVER_PID=$!
        for ((i = 0; i < HEALTH_TRIES; i++)); do
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then
                local rc=0
                wait "$SERVER_PID" || rc=$?
                SERVER_PID=""
                if grep -qiE 'address already in use|AddrInUse|os error 98' "$SERVER_LOG"; then
                    log "port $port taken (server exited $rc); retrying with another port"
                    echo "[compat] ---- retry ----" >>"$SERVER_LOG"
                    continue 2
                fi
                die "server exited with status $rc before becoming healthy"
            fi
            if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null &&
                kill -0 "$SERVER_PID" 2>/dev/null; then
                PORT="$port"
                log "server up (pid $SERVER_PID) on 127.0.0.1:$PORT after $i polls"
                return 0
            fi
            sleep 0.1
        done
        die "server did not answer 200 on GET /health within $HEALTH_TRIES polls"
    done
    die "could not find a free port after 10 attempts"
}

run_script() {
    local backend="$1" script="$2" rc=0
    local -a cmd
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
        ENDPOINT="http://127.0.0.1:$PORT" \
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
        DB_NAME="js_compat_$(date +%s)_$(rand_hex 4)"
        psql_admin -c "CREATE DATABASE \"$DB_NAME\"" || die "could not create database $DB_NAME"
        log "created database $DB_NAME"
    fi

    log "######## backend: $backend"
    start_server "$backend"
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
