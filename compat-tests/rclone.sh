#!/usr/bin/env bash
# Drives the real rclone (s3 backend, provider "Other": ListObjects v1,
# path-style, mtime in X-Amz-Meta-Mtime updated by CopyObject REPLACE onto
# the same key) against a running JustStorage server.
#
# Required env:
#   ENDPOINT                 e.g. http://127.0.0.1:19123
#   AWS_ACCESS_KEY_ID        credentials of a user allowed to do everything
#   AWS_SECRET_ACCESS_KEY
#
# rclone is installed with apt-get if missing. The remote "js:" is defined
# purely by RCLONE_CONFIG_JS_* variables and RCLONE_CONFIG points at an empty
# file in a temp dir, so nothing in ~ is read or written. aws CLI (already
# needed by awscli.sh) is used only to read the multipart ETag.
set -Eeuo pipefail

: "${ENDPOINT:?ENDPOINT must be set, e.g. http://127.0.0.1:9000}"
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export LC_ALL=C.UTF-8 LANG=C.UTF-8 PYTHONIOENCODING=utf-8 TZ=UTC
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true
PYTHON="${PYTHON:-python3}"

ok()   { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    if [[ "$1" != "$2" ]]; then
        fail "$3: expected [$2], got [$1]"
    fi
}
# expect_same_file EXPECTED ACTUAL WHAT
expect_same_file() {
    diff -u "$1" "$2" >&2 || fail "$3: listings differ (-expected +actual)"
}

if ! command -v rclone >/dev/null 2>&1; then
    echo "rclone not found; installing it with apt-get" >&2
    [[ "$(id -u)" -eq 0 ]] || fail "rclone is not installed and we are not root (apt-get install rclone)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq rclone >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq rclone >/dev/null; } ||
        fail "apt-get install rclone failed"
    command -v rclone >/dev/null 2>&1 || fail "rclone still not on PATH after apt-get install"
fi
echo "using $(rclone version 2>/dev/null | head -n 1)"

W="$(mktemp -d "${TMPDIR:-/tmp}/js-rclone.XXXXXX")"
trap 'rm -rf "$W"' EXIT
trap 'echo "FAIL: rclone.sh line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------- remote "js:" from env only
: >"$W/rclone.conf"
export RCLONE_CONFIG="$W/rclone.conf"
export RCLONE_CACHE_DIR="$W/rclone-cache" XDG_CACHE_HOME="$W/cache" XDG_CONFIG_HOME="$W/config"
export RCLONE_CONFIG_JS_TYPE=s3
export RCLONE_CONFIG_JS_PROVIDER=Other
export RCLONE_CONFIG_JS_ENV_AUTH=false
export RCLONE_CONFIG_JS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_JS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_JS_ENDPOINT="$ENDPOINT"
export RCLONE_CONFIG_JS_REGION=us-east-1
export RCLONE_CONFIG_JS_FORCE_PATH_STYLE=true

# Failures must surface instead of being retried away. AWS_CA_BUNDLE (set on
# some machines) makes rclone 1.60's AWS SDK refuse to build its HTTP client
# ("unable to load custom CA bundle"); the endpoint is plain http anyway.
# Any ERROR line rclone logs fails the command, even where rclone itself
# goes on and exits 0 (e.g. "Failed to read versioning status").
rc() {
    local st=0
    env -u AWS_CA_BUNDLE rclone --retries 1 --low-level-retries 1 "$@" 2>"$W/rclone.stderr" || st=$?
    cat "$W/rclone.stderr" >&2
    if [[ $st -ne 0 ]]; then
        echo "FAIL: rclone $* exited with status $st" >&2
    elif grep -q ' ERROR : ' "$W/rclone.stderr"; then
        echo "FAIL: rclone $* exited 0 but logged the ERROR lines above" >&2
        st=1
    fi
    return "$st"
}

# aws CLI with an empty, private config: only used to read ETags.
export AWS_CONFIG_FILE="$W/aws-config" AWS_SHARED_CREDENTIALS_FILE="$W/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
s3api() { aws --endpoint-url "$ENDPOINT" s3api "$@"; }

MiB=$((1024 * 1024))
RUN_ID="$(date +%s)-$$-$RANDOM"
B="compat-rclone-${RUN_ID}"
R="js:$B"

# lsjson_listing JSON_FILE : "path<TAB>size<TAB>mtime-seconds<TAB>mimetype" for every
# file of an `rclone lsjson -R` output, sorted.
lsjson_listing() {
    "$PYTHON" - "$1" <<'EOF'
import datetime, json, re, sys
rows = []
for e in json.load(open(sys.argv[1], encoding="utf-8")):
    if e["IsDir"]:
        continue
    # RFC 3339 with up to nanoseconds; keep whole seconds only.
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", e["ModTime"])
    if not m:
        sys.exit(f"unparseable ModTime {e['ModTime']!r} for {e['Path']!r}")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    secs = int(datetime.datetime.fromisoformat(m.group(1) + tz).timestamp())
    rows.append(f"{e['Path']}\t{e['Size']}\t{secs}\t{e.get('MimeType', '')}")
for r in sorted(rows):
    print(r)
EOF
}
# remote_times PATH : "path<TAB>size<TAB>mtime-seconds" of every file below remote PATH
remote_times() {
    rc lsjson -R --files-only --s3-list-chunk 97 "$1" >"$W/lsjson.json"
    lsjson_listing "$W/lsjson.json" | cut -f1-3
}
# local_times DIR : "path<TAB>size<TAB>mtime-seconds" of every file below DIR
local_times() {
    (cd "$1" && find . -type f -printf '%P\t%s\t%T@\n') | sed -E 's/\.[0-9]+$//' | LC_ALL=C sort
}
# remote_names PATH / local_names DIR : sorted relative file paths
remote_names() { rc lsf -R --files-only --s3-list-chunk 97 "$1" | LC_ALL=C sort; }
local_names()  { (cd "$1" && find . -type f -printf '%P\n') | LC_ALL=C sort; }

# rclone_check SRC DST NFILES : `rclone check` must find 0 differences and
# NFILES matching files, all of them compared by hash.
rclone_check() {
    local out
    out="$(rc check "$1" "$2" 2>&1)" || { echo "$out" >&2; fail "rclone check $1 $2 reported differences or failed"; }
    grep -q ': 0 differences found' <<<"$out" || { echo "$out" >&2; fail "rclone check $1 $2: no '0 differences found'"; }
    grep -q ": $3 matching files" <<<"$out" || { echo "$out" >&2; fail "rclone check $1 $2: expected $3 matching files"; }
    if grep -q 'hashes could not be checked' <<<"$out"; then
        echo "$out" >&2
        fail "rclone check $1 $2: some hashes could not be checked"
    fi
}

# ---------------------------------------------------------------- bucket
rc mkdir "$R"
rc lsd js: >"$W/lsd"
awk '{print $NF}' "$W/lsd" | grep -Fxq "$B" || { cat "$W/lsd" >&2; fail "rclone lsd js: does not list $B"; }
ok "rclone mkdir $R (listed by rclone lsd js:)"

# ---------------------------------------------------------------- tree: copy up
T="$W/tree"
n=0
for d in alpha beta "gamma dir" "delta+plus ü"; do
    for s in s1 s2 s3 s4 s5; do
        mkdir -p "$T/$d/$s"
        for f in $(seq 1 15); do
            head -c $(((n * 613) % 9000 + 1)) /dev/urandom >"$T/$d/$s/file-$f.dat"
            n=$((n + 1))
        done
    done
    printf 'text file %s\n' "$d" >"$T/$d/notes.txt"
    n=$((n + 1))
done
mkdir -p "$T/deep/a/b/c/d"
printf 'leaf\n' >"$T/deep/a/b/c/d/leaf.txt"
: >"$T/deep/empty.txt"
head -c $((30 * MiB)) /dev/urandom >"$T/big-30MiB.bin"
n=$((n + 3))
nfiles="$(find "$T" -type f | wc -l)"
expect_eq "$nfiles" "$n" "number of local files generated"
# Distinct, past modification times with a sub-second part.
i=0
while IFS= read -r -d '' f; do
    touch -d "@$((1500000000 + i * 7919)).$(printf '%09d' $((i * 104729 % 1000000000)))" "$f"
    i=$((i + 1))
done < <(find "$T" -type f -print0)

rc copy "$T" "$R/tree"
ok "rclone copy of $nfiles files (nested dirs, one of 30 MiB) up to $R/tree"

rclone_check "$T" "$R/tree" "$nfiles"
ok "rclone check after copy: 0 differences, $nfiles matching files (all hashed)"

local_names "$T" >"$W/names.expected"
remote_names "$R/tree" >"$W/names.actual"
expect_same_file "$W/names.expected" "$W/names.actual" "rclone lsf -R (ListObjects v1 in pages of 97) after copy"
ok "rclone lsf -R lists exactly the local files (v1 listing paginated by 97)"

local_times "$T" >"$W/times.expected"
remote_times "$R/tree" >"$W/times.actual"
expect_same_file "$W/times.expected" "$W/times.actual" "rclone lsjson -R path/size/mtime after copy"
ok "rclone lsjson -R: size and modification time (to the second) of all $nfiles files equal the local ones"

# ---------------------------------------------------------------- modify / delete / add, then sync
head -c 4321 /dev/urandom >"$T/alpha/s1/file-1.dat"   # new size
size7="$(stat -c %s "$T/beta/s2/file-7.dat")"
head -c "$size7" /dev/urandom >"$T/beta/s2/file-7.dat"  # same size, new bytes
printf 'rewritten notes\n' >"$T/gamma dir/notes.txt"
deleted=("alpha/s3/file-2.dat" "delta+plus ü/s5/file-15.dat" "deep/a/b/c/d/leaf.txt")
for f in "${deleted[@]}"; do rm "$T/$f"; done
mkdir -p "$T/new dir"
printf 'brand new\n' >"$T/new dir/new+file ü.txt"
touch -d '@1600000000' "$T/alpha/s1/file-1.dat" "$T/gamma dir/notes.txt" "$T/new dir/new+file ü.txt"
touch -d '@1600000007' "$T/beta/s2/file-7.dat"
nfiles="$(find "$T" -type f | wc -l)"

rc sync "$T" "$R/tree"
rclone_check "$T" "$R/tree" "$nfiles"
ok "rclone sync after modify/delete/add; rclone check: 0 differences, $nfiles matching files"

remote_names "$R/tree" >"$W/names2.actual"
for f in "${deleted[@]}"; do
    if grep -Fxq "$f" "$W/names2.actual"; then
        fail "deleted file $f is still listed remotely after rclone sync"
    fi
    out="$(rc lsf "$R/tree/$f" 2>&1)" || { echo "$out" >&2; fail "rclone lsf of deleted $f failed"; }
    expect_eq "$out" "" "rclone lsf of deleted $f"
done
grep -Fxq "new dir/new+file ü.txt" "$W/names2.actual" || fail "added file not listed remotely after sync"
local_names "$T" >"$W/names2.expected"
expect_same_file "$W/names2.expected" "$W/names2.actual" "remote listing after rclone sync"
ok "deleted files are gone remotely, the added one is there, listing equals local"

local_times "$T" >"$W/times2.expected"
remote_times "$R/tree" >"$W/times2.actual"
expect_same_file "$W/times2.expected" "$W/times2.actual" "rclone lsjson -R path/size/mtime after sync"
ok "rclone lsjson -R after sync: sizes and modification times equal the local ones"

rc copyto "$R/tree/beta/s2/file-7.dat" "$W/file-7.dl"
cmp "$T/beta/s2/file-7.dat" "$W/file-7.dl" || fail "same-size modified file has old content remotely"
ok "same-size modified file was re-uploaded (content matches)"

# ---------------------------------------------------------------- multipart via rclone
mkdir -p "$W/mp"
head -c $((23 * MiB + 777)) /dev/urandom >"$W/mp/multi.bin"
rc copyto --s3-upload-cutoff 5M --s3-chunk-size 5M "$W/mp/multi.bin" "$R/mp/multi.bin"
etag="$(s3api head-object --bucket "$B" --key "mp/multi.bin" --query ETag --output text)"
expected="$("$PYTHON" - "$W/mp/multi.bin" $((5 * MiB)) <<'EOF'
import hashlib, sys
digests = []
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(int(sys.argv[2])):
        digests.append(hashlib.md5(chunk).digest())
print('"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests)))
EOF
)"
expect_eq "$etag" "$expected" "ETag of rclone multipart upload (23 MiB in 5 MiB chunks)"
ok "rclone copyto with --s3-upload-cutoff 5M --s3-chunk-size 5M made a 5-part multipart object (ETag $etag)"

rclone_check "$W/mp" "$R/mp" 1
out="$(rc check --download "$W/mp" "$R/mp" 2>&1)" || { echo "$out" >&2; fail "rclone check --download of the multipart object"; }
rc copyto "$R/mp/multi.bin" "$W/multi.dl"
cmp "$W/mp/multi.bin" "$W/multi.dl" || fail "multipart object differs after download"
ok "rclone check (md5 metadata) and check --download of the multipart object; download byte-identical"

# ---------------------------------------------------------------- mtime-only updates (CopyObject REPLACE)
f="alpha/s2/notes-like.txt"
printf 'content type must survive mtime updates\n' >"$T/$f"
touch -d '@1550000000' "$T/$f"
rc copyto "$T/$f" "$R/tree/$f"
rc lsjson --stat "$R/tree/$f" >"$W/stat-before.json"
mime_before="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["MimeType"])' "$W/stat-before.json")"
[[ "$mime_before" == text/plain* ]] || fail "MimeType of uploaded .txt: expected text/plain..., got [$mime_before]"

rc touch -t 2021-02-03T04:05:06 "$R/tree/$f"
rc lsjson --stat "$R/tree/$f" >"$W/stat-touch.json"
IFS=$'\t' read -r mtime mime size < <("$PYTHON" - "$W/stat-touch.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
print(e["ModTime"][:19], e["MimeType"], e["Size"], sep="\t")
EOF
)
expect_eq "$mtime" "2021-02-03T04:05:06" "ModTime after rclone touch -t 2021-02-03T04:05:06"
expect_eq "$mime" "$mime_before" "MimeType after rclone touch (CopyObject REPLACE must keep Content-Type)"
expect_eq "$size" "$(stat -c %s "$T/$f")" "Size after rclone touch"
rc copyto "$R/tree/$f" "$W/touched.dl"
cmp "$T/$f" "$W/touched.dl" || fail "content changed by rclone touch"
ok "rclone touch -t of an existing object: new mtime in lsjson, Content-Type and bytes kept"

# re-sync where only the local mtime changed: rclone must update the remote
# mtime in place (hash equal -> SetModTime), not re-upload
g="beta/s4/file-3.dat"
touch -d '@1700000003' "$T/$g" "$T/$f"
rc sync -v "$T" "$R/tree" >"$W/sync-mtime.log" 2>&1 || { cat "$W/sync-mtime.log" >&2; fail "rclone sync after mtime-only change"; }
for x in "$g" "$f"; do
    grep -F "$x: Updated modification time in destination" "$W/sync-mtime.log" >/dev/null ||
        { cat "$W/sync-mtime.log" >&2; fail "rclone sync did not update the modification time of $x in place"; }
done
if grep -E ': Copied \((new|replaced existing)\)' "$W/sync-mtime.log" >&2; then
    fail "rclone sync re-uploaded files although only modification times changed"
fi
for x in "$g" "$f"; do
    rc lsjson --stat "$R/tree/$x" >"$W/stat-x.json"
    got="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ModTime"][:19])' "$W/stat-x.json")"
    expect_eq "$got" "2023-11-14T22:13:23" "remote ModTime of $x after mtime-only sync"
done
nfiles="$(find "$T" -type f | wc -l)"
rclone_check "$T" "$R/tree" "$nfiles"
local_times "$T" >"$W/times3.expected"
remote_times "$R/tree" >"$W/times3.actual"
expect_same_file "$W/times3.expected" "$W/times3.actual" "rclone lsjson -R after mtime-only sync"
ok "rclone sync with mtime-only changes: updated in place (no upload), new mtime in lsjson, check clean"

# ---------------------------------------------------------------- purge
rc purge "$R"
rc lsd js: >"$W/lsd-after"
if awk '{print $NF}' "$W/lsd-after" | grep -Fxq "$B"; then
    cat "$W/lsd-after" >&2
    fail "bucket $B still listed after rclone purge"
fi
ok "rclone purge $R removed all objects and the bucket"

echo "rclone.sh: all checks passed"
