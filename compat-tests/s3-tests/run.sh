#!/usr/bin/env bash
# Runs the ceph/s3-tests conformance suite against a real just-storage server and checks the
# committed pass list (compat-tests/s3-tests/pass.txt): every listed test that the profile
# selects must pass.
#
# Usage: compat-tests/s3-tests/run.sh [--profile core|full] [--update] [sqlite|postgres|all]
#   --profile core   the object/bucket/list/multipart/auth core (SNAPSHOT.md's "core")
#   --profile full   everything in scope for an S3 gateway (default)
#   --update         add the tests that passed (on every backend run) to the pass list
#
# Per backend, it starts the server on a scratch data directory (and a scratch PostgreSQL
# database), creates the suite's `alt` user (tenant s3t-alt) and `tenant` user (tenant testx),
# writes the suite's config, runs pytest and writes one line per test, `<outcome> <test>`, to
# $S3TESTS_OUT/<backend>-<profile>.txt. It fails when a listed test did not pass, when a test
# hit the per-test timeout, or when the server logged an internal error.
#
# Env:
#   S3TESTS_DIR      the suite (default ../shared/s3-tests beside the repository, then
#                    /work/shared/s3-tests; if both are missing, a clone of ceph/s3-tests at
#                    $S3TESTS_COMMIT in target/)
#   S3TESTS_VENV     Python venv for the suite (default target/s3-tests/venv, made if missing)
#   S3TESTS_OUT      result directory (default target/s3-tests/results)
#   S3TESTS_TIMEOUT  seconds per test (default 120)
#   S3TESTS_K        extra pytest -k expression to narrow the run (the pass list is then only
#                    checked for the tests that ran)
#   JS_BIN           server binary (default: cargo build --bin just-storage)
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPAT_DIR="$(dirname "$HERE")"
ROOT="$(dirname "$COMPAT_DIR")"
PASS_LIST="$HERE/pass.txt"
# Seconds in a lifecycle day for the server and the suite.
LC_DAY=2
S3TESTS_COMMIT="8f0ae7b"

log() { echo "[s3-tests${BACKEND:+:$BACKEND}] $*"; }
die() {
    echo "[s3-tests${BACKEND:+:$BACKEND}] FAIL: $*" >&2
    exit 1
}

PROFILE=full
UPDATE=0
BACKEND_ARG=all
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) PROFILE="${2:-}"; shift 2 ;;
        --update) UPDATE=1; shift ;;
        sqlite | postgres) BACKEND_ARG="$1"; shift ;;
        all | both) BACKEND_ARG=all; shift ;;
        *) echo "usage: $0 [--profile core|full] [--update] [sqlite|postgres|all]" >&2; exit 2 ;;
    esac
done
[[ "$PROFILE" == core || "$PROFILE" == full ]] || die "unknown profile $PROFILE"

OUT_DIR="${S3TESTS_OUT:-$ROOT/target/s3-tests/results}"
VENV="${S3TESTS_VENV:-$ROOT/target/s3-tests/venv}"
mkdir -p "$OUT_DIR"

# ------------------------------------------------------------------ the suite and its venv
find_suite() {
    if [[ -n "${S3TESTS_DIR:-}" ]]; then
        SUITE="$S3TESTS_DIR"
    elif [[ -f "$ROOT/../shared/s3-tests/pytest.ini" ]]; then
        SUITE="$(cd "$ROOT/../shared/s3-tests" && pwd)"
    elif [[ -f /work/shared/s3-tests/pytest.ini ]]; then
        # CI's clean clone is not always beside shared/.
        SUITE=/work/shared/s3-tests
    else
        SUITE="$ROOT/target/s3-tests/suite"
        if [[ ! -f "$SUITE/pytest.ini" ]]; then
            log "cloning ceph/s3-tests at $S3TESTS_COMMIT into $SUITE"
            rm -rf "$SUITE"
            git clone -q https://github.com/ceph/s3-tests.git "$SUITE"
            git -C "$SUITE" checkout -q "$S3TESTS_COMMIT"
        fi
    fi
    [[ -f "$SUITE/pytest.ini" ]] || die "no s3-tests suite at $SUITE"
}

ensure_venv() {
    if [[ ! -x "$VENV/bin/pytest" ]] || ! "$VENV/bin/python" -c 'import pytest_timeout, boto3, munch' 2>/dev/null; then
        log "making the suite's venv in $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet -r "$SUITE/requirements.txt" pytest-timeout
    fi
}

# ------------------------------------------------------------------ profiles (SNAPSHOT.md)
OUT_OF_SCOPE="fails_on_aws s3select sns test_of_sts webidentity_test abac_test iam_account
iam_cross_account iam_role iam_tenant iam_user role_policy session_policy group_policy group
user_policy token_claims_trust_policy_test token_principal_tag_role_policy_test
token_request_tag_trust_policy_test token_resource_tags_test token_role_tags_test
token_tag_keys_test cloud_transition cloud_restore target_by_bucket bucket_logging
bucket_logging_cleanup fails_without_logging_rollover appendobject s3website
s3website_routing_rules s3website_redirect_location"
CORE_MARKERS_OUT="bucket_policy bucket_encryption encryption sse_s3 object_lock object_ownership
lifecycle lifecycle_expiration lifecycle_transition versioning delete_marker tagging
storage_class"
CORE_NAMES_OUT="object_lock versioning versioned acl cors block_public public_access ownership
lifecycle tagging encryption sse access_bucket bucket_policy logging"

or_list() { echo $1 | sed 's/ / or /g'; }

selection() {
    MARKS="not ($(or_list "$OUT_OF_SCOPE"))"
    KEYS=""
    if [[ "$PROFILE" == core ]]; then
        MARKS="$MARKS and not ($(or_list "$CORE_MARKERS_OUT"))"
        KEYS="not ($(or_list "$CORE_NAMES_OUT"))"
    fi
    if [[ -n "${S3TESTS_K:-}" ]]; then
        KEYS="${KEYS:+($KEYS) and }(${S3TESTS_K})"
    fi
}

# ------------------------------------------------------------------ one backend
new_key() { # TENANT -> "ACCESS SECRET"
    local out
    out="$("$JS_BIN" admin "${STORE_ARGS[@]}" key create --tenant "$1" 2>>"$SERVER_LOG")"
    awk '/^access key:/ {a=$3} /^secret key:/ {s=$3} END {print a, s}' <<<"$out"
}

owner_id() { # ACCESS SECRET -> the canonical id ListBuckets shows for that user
    "$VENV/bin/python" - "$1" "$2" "http://127.0.0.1:$PORT" <<'PY'
import sys, boto3
c = boto3.client("s3", endpoint_url=sys.argv[3], aws_access_key_id=sys.argv[1],
                 aws_secret_access_key=sys.argv[2], region_name="us-east-1")
print(c.list_buckets()["Owner"]["ID"])
PY
}

write_config() { # CONF
    local alt tenant main_id alt_id tenant_id
    "$JS_BIN" admin "${STORE_ARGS[@]}" tenant create s3t-alt >>"$SERVER_LOG" 2>&1
    "$JS_BIN" admin "${STORE_ARGS[@]}" tenant create testx >>"$SERVER_LOG" 2>&1
    read -r -a alt <<<"$(new_key s3t-alt)"
    read -r -a tenant <<<"$(new_key testx)"
    [[ ${#alt[@]} -eq 2 && ${#tenant[@]} -eq 2 ]] || die "could not create the suite's keys"
    main_id="$(owner_id "$ACCESS_KEY" "$SECRET_KEY")"
    alt_id="$(owner_id "${alt[0]}" "${alt[1]}")"
    tenant_id="$(owner_id "${tenant[0]}" "${tenant[1]}")"
    cat >"$1" <<CONF
[DEFAULT]
host = 127.0.0.1
port = $PORT
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = s3t-{random}-

[s3 main]
display_name = $main_id
user_id = $main_id
email = main@example.com
api_name = us-east-1
lc_debug_interval = $LC_DAY
access_key = $ACCESS_KEY
secret_key = $SECRET_KEY

[s3 alt]
display_name = $alt_id
user_id = $alt_id
email = alt@example.com
access_key = ${alt[0]}
secret_key = ${alt[1]}

[s3 tenant]
display_name = $tenant_id
user_id = $tenant_id
email = tenant@example.com
tenant = testx
access_key = ${tenant[0]}
secret_key = ${tenant[1]}

# Read only by the IAM/STS tests, which are out of scope.
[iam]
email = main@example.com
user_id = $main_id
access_key = $ACCESS_KEY
secret_key = $SECRET_KEY
display_name = $main_id

[iam root]
access_key = $ACCESS_KEY
secret_key = $SECRET_KEY
user_id = $main_id
email = main@example.com

[iam alt root]
access_key = ${alt[0]}
secret_key = ${alt[1]}
user_id = $alt_id
email = alt@example.com
CONF
}

# junit XML -> "<outcome> <file>::<test>" lines, sorted by test.
outcomes() { # JUNIT OUT
    "$VENV/bin/python" - "$1" <<'PY' | LC_ALL=C sort -k2 >"$2"
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).iter("testcase"):
    module = case.get("classname", "").rsplit(".", 1)[-1]
    name = f"{module}.py::{case.get('name')}"
    tags = {c.tag for c in case}
    if "error" in tags:
        outcome = "error"
    elif "failure" in tags:
        outcome = "failed"
    elif "skipped" in tags:
        outcome = "skipped"
    else:
        outcome = "passed"
    print(outcome, name)
PY
}

run_backend() {
    BACKEND="$1"
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/js-s3tests-$BACKEND.XXXXXX")"
    SERVER_LOG="$OUT_DIR/$BACKEND-$PROFILE.server.log"
    : >"$SERVER_LOG"
    DB_NAME=""
    ACCESS_KEY="JSS3T$(rand_hex 7 | tr 'a-f' 'A-F')"
    SECRET_KEY="$(rand_hex 20)"
    trap 'rc=$?; stop_server; drop_db; rm -rf "$WORK"; exit $rc' EXIT
    if [[ "$BACKEND" == postgres ]]; then
        ensure_postgres
        create_db js_s3tests
    fi
    mkdir -p "$WORK/data"
    # The server's own default filter: s3s logs every error answer at ERROR level, which would
    # hide the server's internal errors among the suite's expected refusals.
    # Lifecycle days of LC_DAY seconds, applied every second (the suite's `lc_debug_interval`).
    RUST_LOG="${RUST_LOG:-info,sqlx=warn,s3s=off}" start_server "$BACKEND" \
        --lifecycle-day-secs "$LC_DAY" --lifecycle-interval-secs 1
    write_config "$WORK/s3tests.conf"

    selection
    local junit="$WORK/junit.xml" result="$OUT_DIR/$BACKEND-$PROFILE.txt" rc=0
    local -a args=(-p no:cacheprovider -q --timeout "${S3TESTS_TIMEOUT:-120}" --junitxml "$junit"
        s3tests/functional/test_s3.py s3tests/functional/test_headers.py -m "$MARKS")
    [[ -z "$KEYS" ]] || args+=(-k "$KEYS")
    log "pytest, profile $PROFILE (log: $OUT_DIR/$BACKEND-$PROFILE.pytest.log)"
    (cd "$SUITE" && S3TEST_CONF="$WORK/s3tests.conf" PYTHONDONTWRITEBYTECODE=1 \
        timeout -k 10 2400 "$VENV/bin/pytest" "${args[@]}") \
        >"$OUT_DIR/$BACKEND-$PROFILE.pytest.log" 2>&1 </dev/null || rc=$?
    # pytest: 0 all passed, 1 some failed; anything else is a broken run.
    [[ $rc -le 1 && -s "$junit" ]] || {
        tail -n 40 "$OUT_DIR/$BACKEND-$PROFILE.pytest.log" >&2
        die "pytest did not complete (status $rc)"
    }
    outcomes "$junit" "$result"
    cp "$junit" "$OUT_DIR/$BACKEND-$PROFILE.junit.xml"

    local total passed
    total="$(wc -l <"$result")"
    passed="$(grep -c '^passed ' "$result" || true)"
    log "$passed of $total passed ($(awk '{print $1}' "$result" | sort | uniq -c | tr -s ' ' | paste -sd, -))"

    local problems=0 missing timeouts errors
    missing="$(comm -12 <(awk '$1 != "passed" {print $2}' "$result" | LC_ALL=C sort) \
        <(grep -v '^#' "$PASS_LIST" | LC_ALL=C sort))"
    if [[ -n "$missing" ]]; then
        log "listed tests that did not pass:"
        sed 's/^/    /' <<<"$missing" >&2
        problems=1
    fi
    timeouts="$(grep -c 'Timeout' "$OUT_DIR/$BACKEND-$PROFILE.pytest.log" || true)"
    if [[ "$timeouts" -gt 0 ]]; then
        log "$timeouts per-test timeouts (a hang)"
        problems=1
    fi
    # The server logs without colours to a file only when told; strip them either way.
    errors="$(sed 's/\x1b\[[0-9;]*m//g' "$SERVER_LOG" | grep -E '^\S+\s+ERROR ' || true)"
    if [[ -n "$errors" ]]; then
        log "the server logged internal errors:"
        head -n 20 <<<"$errors" >&2
        problems=1
    fi
    local new
    new="$(comm -23 <(awk '$1 == "passed" {print $2}' "$result") <(grep -v '^#' "$PASS_LIST" | LC_ALL=C sort))"
    if [[ -n "$new" ]]; then
        log "$(wc -l <<<"$new") passing tests not on the pass list (run with --update to add them)"
    fi
    [[ "$problems" -eq 0 ]] || die "conformance regressions (above)"
    log "ok"
}

# ------------------------------------------------------------------ main
find_suite
ensure_venv
if [[ -z "${JS_BIN:-}" ]]; then
    log "building server: cargo build --bin just-storage"
    (cd "$ROOT" && cargo build --bin just-storage)
    JS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/just-storage"
fi
[[ -x "$JS_BIN" ]] || die "server binary not found: $JS_BIN"
touch "$PASS_LIST"
# shellcheck source=../lib/server.sh
. "$COMPAT_DIR/lib/server.sh"

if [[ "$BACKEND_ARG" == all ]]; then
    BACKENDS=(sqlite postgres)
else
    BACKENDS=("$BACKEND_ARG")
fi

# The backends run at once, each in its own subshell (own server, data, database, log).
declare -A PIDS=()
for b in "${BACKENDS[@]}"; do
    (run_backend "$b") &
    PIDS[$b]=$!
done
failed=()
for b in "${BACKENDS[@]}"; do
    wait "${PIDS[$b]}" || failed+=("$b")
done

if [[ "$UPDATE" -eq 1 ]]; then
    added="$(
        for b in "${BACKENDS[@]}"; do
            awk '$1 == "passed" {print $2}' "$OUT_DIR/$b-$PROFILE.txt"
        done | LC_ALL=C sort | uniq -c | awk -v n="${#BACKENDS[@]}" '$1 == n {print $2}'
    )"
    {
        grep '^#' "$PASS_LIST" || true
        { grep -v '^#' "$PASS_LIST" || true; echo "$added"; } | grep . | LC_ALL=C sort -u
    } >"$PASS_LIST.new"
    mv "$PASS_LIST.new" "$PASS_LIST"
    log "pass list: $(grep -vc '^#' "$PASS_LIST") tests"
fi
[[ ${#failed[@]} -eq 0 ]] || die "failed on: ${failed[*]}"
log "passed on: ${BACKENDS[*]} (profile $PROFILE)"
