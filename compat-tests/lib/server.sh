# Shared by compat-tests/run.sh and compat-tests/s3-tests/run.sh (sourced, not run): start and
# stop a real just-storage server on a scratch data directory and, for PostgreSQL, a scratch
# database.
#
# The caller sets JS_BIN, WORK (scratch directory), SERVER_LOG, ACCESS_KEY, SECRET_KEY and, for
# PostgreSQL, DB_NAME; for a TLS server also SCHEME=https and TLS_CA (the CA's PEM file); it
# defines log() and die().

PG_HOST="${JS_PG_HOST:-127.0.0.1}"
PG_PORT="${JS_PG_PORT:-5432}"
PG_USER="${JS_PG_USER:-postgres}"
HEALTH_TRIES="${JS_HEALTH_TRIES:-100}"
SERVER_PID=""
PORT=""

print_server_log() {
    if [[ -n "${SERVER_LOG:-}" && -s "$SERVER_LOG" ]]; then
        echo "---- last 100 lines of server log ($SERVER_LOG) ----" >&2
        tail -n 100 "$SERVER_LOG" | sed 's/^/  | /' >&2
        echo "---- end of server log ----" >&2
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

create_db() {
    DB_NAME="$1_$(date +%s)_$(rand_hex 4)"
    psql_admin -c "CREATE DATABASE \"$DB_NAME\"" || die "could not create database $DB_NAME"
    log "created database $DB_NAME"
}

drop_db() {
    local db="${DB_NAME:-}"
    [[ -n "$db" ]] || return 0
    DB_NAME=""
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
        psql_admin -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null ||
        echo "warning: could not drop database $db" >&2
}

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

# The store arguments of every subcommand (serve, admin, gc, fsck) for BACKEND.
store_args() {
    STORE_ARGS=(--data-dir "$WORK/data")
    if [[ "$1" == postgres ]]; then
        STORE_ARGS+=(--database-url "postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_NAME")
    fi
}

# start_server BACKEND [extra serve args...]; sets SERVER_PID, PORT
start_server() {
    local backend="$1" attempt i port
    shift
    local -a args
    store_args "$backend"
    for ((attempt = 1; attempt <= 10; attempt++)); do
        port=$((19000 + RANDOM % 5000))
        if port_in_use "$port"; then
            continue
        fi
        args=(serve --listen "127.0.0.1:$port" "${STORE_ARGS[@]}" "$@")
        echo "\$ $JS_BIN ${args[*]}" >>"$SERVER_LOG"
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
                    echo "---- retry ----" >>"$SERVER_LOG"
                    continue 2
                fi
                die "server exited with status $rc before becoming healthy"
            fi
            if curl -fsS -o /dev/null --max-time 2 ${TLS_CA:+--cacert "$TLS_CA"} \
                "${SCHEME:-http}://127.0.0.1:$port/health" 2>/dev/null &&
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
