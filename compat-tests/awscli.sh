#!/usr/bin/env bash
# Drives the real aws CLI (v1) against a running JustStorage server.
#
# Required env:
#   ENDPOINT                 e.g. http://127.0.0.1:19123
#   AWS_ACCESS_KEY_ID        credentials of a user allowed to do everything
#   AWS_SECRET_ACCESS_KEY
# Optional env:
#   AWS_DEFAULT_REGION       defaults to us-east-1
#
# Nothing in ~/.aws is read or written: AWS_CONFIG_FILE and
# AWS_SHARED_CREDENTIALS_FILE point into a temp dir.
set -Eeuo pipefail

: "${ENDPOINT:?ENDPOINT must be set, e.g. http://127.0.0.1:9000}"
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export LC_ALL=C.UTF-8 LANG=C.UTF-8 PYTHONIOENCODING=utf-8
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true

command -v aws >/dev/null || { echo "FAIL: aws CLI not found (pip install awscli)" >&2; exit 1; }

W="$(mktemp -d "${TMPDIR:-/tmp}/js-awscli.XXXXXX")"
trap 'rm -rf "$W"' EXIT
cd "$W"   # aws s3 cp/sync print paths relative to the working directory
trap 'echo "FAIL: awscli.sh line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

export AWS_CONFIG_FILE="$W/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$W/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
aws configure set default.region "$AWS_DEFAULT_REGION"
aws configure set default.s3.multipart_threshold 64MB
aws configure set default.s3.multipart_chunksize 64MB
aws configure set default.s3.addressing_style path
aws configure set default.retry_mode standard
aws configure set default.max_attempts 2

ok()   { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    if [[ "$1" != "$2" ]]; then
        fail "$3: expected [$2], got [$1]"
    fi
}
# expect_same_file A B WHAT : A and B (paths) must have identical content
expect_same_file() {
    diff -u "$1" "$2" >&2 || fail "$3: listings differ (-expected +actual)"
}

awsx()  { aws --endpoint-url "$ENDPOINT" "$@"; }
s3api() { aws --endpoint-url "$ENDPOINT" s3api "$@"; }
# Normalise the output of s3 transfer commands (cp/sync/rm): progress lines
# are written with '\r' and later statements are space-padded over them.
clean() { tr '\r' '\n' | sed -e 's/[[:space:]]*$//' | { grep -v -e '^Completed ' -e '^$' || true; }; }
s3t()   { aws --endpoint-url "$ENDPOINT" s3 "$@" | clean; }
md5of() { md5sum "$1" | cut -d' ' -f1; }
sizeof() { stat -c %s "$1"; }

# Run a command that must FAIL; its combined output goes to stdout.
# Fails the test if the command succeeds.
must_fail() {
    local out
    if out="$("$@" 2>&1)"; then
        echo "$out" >&2
        fail "expected failure, but command succeeded: $*"
    fi
    printf '%s\n' "$out"
}

# Remote listing (key<TAB>size per line, sorted) of s3://$1/$2 via ListObjectsV2.
remote_listing() {
    local bucket="$1" prefix="$2" out
    out="$(s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix" \
        --query 'Contents[].[Key,Size]' --output text)"
    if [[ "$out" != "None" && -n "$out" ]]; then
        printf '%s\n' "$out" | LC_ALL=C sort
    fi
}
# Local listing (relative path<TAB>size per line, sorted) of directory $1, keys prefixed with $2.
local_listing() {
    local dir="$1" prefix="$2"
    (cd "$dir" && find . -type f -printf '%P\t%s\n') | sed "s|^|$prefix|" | LC_ALL=C sort
}

RUN_ID="$(date +%s)-$$-$RANDOM"
B="compat-cli-${RUN_ID}"
B2="compat-cli2-${RUN_ID}"

# ---------------------------------------------------------------- buckets
out="$(awsx s3 mb "s3://$B")"
expect_eq "$out" "make_bucket: $B" "aws s3 mb output"
awsx s3 mb "s3://$B2" >/dev/null
ok "aws s3 mb s3://$B and s3://$B2"

s3api head-bucket --bucket "$B" >/dev/null
ok "s3api head-bucket on new bucket"

awsx s3 ls >"$W/ls-buckets"
awk '{print $3}' "$W/ls-buckets" | grep -Fxq "$B" || { cat "$W/ls-buckets" >&2; fail "aws s3 ls does not list $B"; }
awk '{print $3}' "$W/ls-buckets" | grep -Fxq "$B2" || { cat "$W/ls-buckets" >&2; fail "aws s3 ls does not list $B2"; }
ok "aws s3 ls lists the new buckets"

out="$(awsx s3 ls "s3://$B")"
expect_eq "$out" "" "aws s3 ls on empty bucket"
ok "aws s3 ls on empty bucket is empty"

# ---------------------------------------------------------------- cp up/down
mkdir -p "$W/src" "$W/dl"
printf 'hello, JustStorage\n' >"$W/src/small.txt"
head -c 300000 /dev/urandom >"$W/src/big file+ü.bin"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$W/src/random-5MiB.bin"
: >"$W/src/empty.txt"

out="$(s3t cp "$W/src/small.txt" "s3://$B/small.txt")"
expect_eq "$out" "upload: src/small.txt to s3://$B/small.txt" "aws s3 cp upload output"
ok "aws s3 cp upload small file"

s3t cp "$W/src/big file+ü.bin" "s3://$B/dir one/big file+ü.bin" >/dev/null
ok "aws s3 cp upload file with space/plus/unicode in its name"

s3t cp "$W/src/random-5MiB.bin" "s3://$B/random-5MiB.bin" >/dev/null
ok "aws s3 cp upload 5 MiB random file (single PUT)"

s3t cp "$W/src/empty.txt" "s3://$B/empty.txt" >/dev/null
ok "aws s3 cp upload empty file"

s3t cp "s3://$B/small.txt" "$W/dl/small.txt" >/dev/null
cmp "$W/src/small.txt" "$W/dl/small.txt" || fail "small file differs after round trip"
ok "aws s3 cp download small file, bytes identical"

s3t cp "s3://$B/dir one/big file+ü.bin" "$W/dl/big file+ü.bin" >/dev/null
cmp "$W/src/big file+ü.bin" "$W/dl/big file+ü.bin" || fail "special-name file differs after round trip"
ok "aws s3 cp download special-name file, bytes identical"

s3t cp "s3://$B/random-5MiB.bin" "$W/dl/random-5MiB.bin" >/dev/null
cmp "$W/src/random-5MiB.bin" "$W/dl/random-5MiB.bin" || fail "5 MiB file differs after round trip"
ok "aws s3 cp download 5 MiB file, bytes identical"

s3t cp "s3://$B/empty.txt" "$W/dl/empty.txt" >/dev/null
cmp "$W/src/empty.txt" "$W/dl/empty.txt" || fail "empty file differs after round trip"
ok "aws s3 cp download empty file, bytes identical"

# stdout streaming download
awsx s3 cp "s3://$B/small.txt" - >"$W/dl/small-stdout.txt"
cmp "$W/src/small.txt" "$W/dl/small-stdout.txt" || fail "download to stdout differs"
ok "aws s3 cp download to stdout"

# The exact key (with '+', space and UTF-8) must be stored verbatim.
keys="$(s3api list-objects-v2 --bucket "$B" --query 'Contents[].Key' --output text | tr '\t' '\n' | LC_ALL=C sort)"
expected_keys="$(printf '%s\n' "dir one/big file+ü.bin" "empty.txt" "random-5MiB.bin" "small.txt" | LC_ALL=C sort)"
expect_eq "$keys" "$expected_keys" "keys stored in bucket"
ok "keys with space/plus/unicode stored verbatim"

# ---------------------------------------------------------------- head-object
check_head() { # KEY LOCALFILE
    local key="$1" file="$2" len etag
    len="$(s3api head-object --bucket "$B" --key "$key" --query ContentLength --output text)"
    expect_eq "$len" "$(sizeof "$file")" "head-object ContentLength of '$key'"
    etag="$(s3api head-object --bucket "$B" --key "$key" --query ETag --output text)"
    expect_eq "$etag" "\"$(md5of "$file")\"" "head-object ETag of '$key'"
}
check_head "small.txt" "$W/src/small.txt"
check_head "dir one/big file+ü.bin" "$W/src/big file+ü.bin"
check_head "random-5MiB.bin" "$W/src/random-5MiB.bin"
check_head "empty.txt" "$W/src/empty.txt"
ok "s3api head-object ContentLength and ETag (quoted md5) match local files"

out="$(must_fail s3api head-object --bucket "$B" --key "no/such/key")"
grep -Eq '404|Not Found|NoSuchKey' <<<"$out" || { echo "$out" >&2; fail "head-object on missing key: expected 404"; }
ok "s3api head-object on missing key fails with 404"

out="$(must_fail s3api get-object --bucket "$B" --key "no/such/key" "$W/dl/nothing")"
grep -q 'NoSuchKey' <<<"$out" || { echo "$out" >&2; fail "get-object on missing key: expected NoSuchKey"; }
ok "s3api get-object on missing key fails with NoSuchKey"

# ---------------------------------------------------------------- ls bucket / prefix
awsx s3 ls "s3://$B" >"$W/ls-root"
{
    grep -E '^ +PRE ' "$W/ls-root" | sed -E 's/^ +PRE //'
    grep -Ev '^ +PRE ' "$W/ls-root" | sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} +([0-9]+) (.*)$/\2\t\1/'
} | LC_ALL=C sort >"$W/ls-root.actual"
printf '%s\n' "dir one/" \
    "empty.txt	0" \
    "random-5MiB.bin	$(sizeof "$W/src/random-5MiB.bin")" \
    "small.txt	$(sizeof "$W/src/small.txt")" | LC_ALL=C sort >"$W/ls-root.expected"
expect_same_file "$W/ls-root.expected" "$W/ls-root.actual" "aws s3 ls s3://$B"
ok "aws s3 ls bucket shows PRE + objects with sizes"

awsx s3 ls "s3://$B/dir one/" >"$W/ls-prefix"
sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} +([0-9]+) (.*)$/\2\t\1/' "$W/ls-prefix" >"$W/ls-prefix.actual"
printf '%s\t%s\n' "big file+ü.bin" "$(sizeof "$W/src/big file+ü.bin")" >"$W/ls-prefix.expected"
expect_same_file "$W/ls-prefix.expected" "$W/ls-prefix.actual" "aws s3 ls s3://$B/dir one/"
ok "aws s3 ls prefix"

awsx s3 ls "s3://$B/sm" >"$W/ls-partial"
sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} +([0-9]+) (.*)$/\2/' "$W/ls-partial" >"$W/ls-partial.actual"
printf 'small.txt\n' >"$W/ls-partial.expected"
expect_same_file "$W/ls-partial.expected" "$W/ls-partial.actual" "aws s3 ls s3://$B/sm"
ok "aws s3 ls partial prefix"

awsx s3 ls --recursive "s3://$B" >"$W/ls-rec"
sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} +([0-9]+) (.*)$/\2/' "$W/ls-rec" | LC_ALL=C sort >"$W/ls-rec.actual"
printf '%s\n' "$expected_keys" >"$W/ls-rec.expected"
expect_same_file "$W/ls-rec.expected" "$W/ls-rec.actual" "aws s3 ls --recursive"
ok "aws s3 ls --recursive"

# ---------------------------------------------------------------- sync
T="$W/tree"
n=0
for d in alpha beta "gamma dir"; do
    for s in one two three; do
        mkdir -p "$T/$d/$s"
        for f in 1 2 3 4 5; do
            head -c $(( (n * 977) % 20000 + 1 )) /dev/urandom >"$T/$d/$s/file-$f.dat"
            n=$((n + 1))
        done
    done
    head -c $(( n * 31 + 5 )) /dev/urandom >"$T/$d/top+level ü.txt"
    n=$((n + 1))
done
printf 'root file\n' >"$T/README"
: >"$T/alpha/empty-file"
mkdir -p "$T/deep/a/b/c/d/e"
printf 'deep\n' >"$T/deep/a/b/c/d/e/leaf.txt"
n=$((n + 3))
nfiles="$(find "$T" -type f | wc -l)"
expect_eq "$nfiles" "$n" "number of files generated for sync"
# Old mtimes: a second sync must then be a no-op regardless of clock granularity.
find "$T" -type f -exec touch -d '2020-01-02 03:04:05' {} +

s3t sync "$T" "s3://$B/tree" >"$W/sync-up.out"
uploads="$(grep -c '^upload: ' "$W/sync-up.out" || true)"
expect_eq "$uploads" "$nfiles" "number of uploads reported by aws s3 sync"
local_listing "$T" "tree/" >"$W/tree.expected"
remote_listing "$B" "tree/" >"$W/tree.actual"
expect_same_file "$W/tree.expected" "$W/tree.actual" "remote listing after sync up"
ok "aws s3 sync up of $nfiles files in nested dirs"

out="$(s3t sync "$T" "s3://$B/tree")"
expect_eq "$out" "" "second aws s3 sync (nothing changed) output"
ok "aws s3 sync again is a no-op (sizes/LastModified consistent)"

awsx s3 ls "s3://$B/tree/" >"$W/ls-tree"
{
    grep -E '^ +PRE ' "$W/ls-tree" | sed -E 's/^ +PRE //'
    grep -Ev '^ +PRE ' "$W/ls-tree" | sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} +([0-9]+) (.*)$/\2/'
} | LC_ALL=C sort >"$W/ls-tree.actual"
printf '%s\n' "alpha/" "beta/" "gamma dir/" "deep/" "README" | LC_ALL=C sort >"$W/ls-tree.expected"
expect_same_file "$W/ls-tree.expected" "$W/ls-tree.actual" "aws s3 ls s3://$B/tree/"
ok "aws s3 ls of synced prefix shows common prefixes"

s3t sync "s3://$B/tree" "$W/tree-down" >/dev/null
diff -r "$T" "$W/tree-down" >&2 || fail "downloaded tree differs from uploaded tree"
ok "aws s3 sync down into fresh dir, diff -r identical"

# modify (size change), delete, add; then sync --delete
head -c 12345 /dev/urandom >"$T/beta/two/file-3.dat"
printf 'changed content, different size\n' >"$T/README"
rm "$T/alpha/one/file-1.dat" "$T/gamma dir/top+level ü.txt"
mkdir -p "$T/new dir"
printf 'brand new\n' >"$T/new dir/new+file.txt"
s3t sync --delete "$T" "s3://$B/tree" >"$W/sync-del.out"
grep -Fxq "delete: s3://$B/tree/alpha/one/file-1.dat" "$W/sync-del.out" || { cat "$W/sync-del.out" >&2; fail "sync --delete did not report deleting alpha/one/file-1.dat"; }
grep -Fxq "delete: s3://$B/tree/gamma dir/top+level ü.txt" "$W/sync-del.out" || { cat "$W/sync-del.out" >&2; fail "sync --delete did not report deleting 'gamma dir/top+level ü.txt'"; }
expect_eq "$(grep -c '^upload: ' "$W/sync-del.out" || true)" "3" "uploads reported by sync --delete"
local_listing "$T" "tree/" >"$W/tree2.expected"
remote_listing "$B" "tree/" >"$W/tree2.actual"
expect_same_file "$W/tree2.expected" "$W/tree2.actual" "remote listing after sync --delete"
s3t cp "s3://$B/tree/beta/two/file-3.dat" "$W/dl/modified.dat" >/dev/null
cmp "$T/beta/two/file-3.dat" "$W/dl/modified.dat" || fail "modified file content not updated remotely"
s3t cp "s3://$B/tree/README" "$W/dl/README" >/dev/null
cmp "$T/README" "$W/dl/README" || fail "modified README content not updated remotely"
ok "aws s3 sync --delete: modified/new uploaded, deleted removed, listing matches"

rm -rf "$W/tree-down2"
s3t sync "s3://$B/tree" "$W/tree-down2" >/dev/null
diff -r "$T" "$W/tree-down2" >&2 || fail "downloaded tree differs after sync --delete"
ok "aws s3 sync down after --delete, diff -r identical"

# ---------------------------------------------------------------- put-object metadata / content-type
printf 'metadata body\n' >"$W/src/meta.txt"
etag="$(s3api put-object --bucket "$B" --key "meta/obj.txt" --body "$W/src/meta.txt" \
    --metadata 'k=v,owner=alice' --content-type text/plain --query ETag --output text)"
expect_eq "$etag" "\"$(md5of "$W/src/meta.txt")\"" "put-object ETag"
ok "s3api put-object with --metadata and --content-type returns md5 ETag"

s3api head-object --bucket "$B" --key "meta/obj.txt" \
    --query '[ContentType, Metadata.k, Metadata.owner, ContentLength]' --output text >"$W/head-meta"
expect_eq "$(cat "$W/head-meta")" "text/plain	v	alice	$(sizeof "$W/src/meta.txt")" "head-object ContentType/Metadata"
ok "s3api head-object shows Content-Type text/plain and metadata k=v, owner=alice"

s3api get-object --bucket "$B" --key "meta/obj.txt" "$W/dl/meta.txt" \
    --query '[ContentType, Metadata.k]' --output text >"$W/get-meta"
expect_eq "$(cat "$W/get-meta")" "text/plain	v" "get-object ContentType/Metadata"
cmp "$W/src/meta.txt" "$W/dl/meta.txt" || fail "get-object body differs"
ok "s3api get-object returns body, Content-Type and metadata"

# ---------------------------------------------------------------- copy-object
s3api copy-object --bucket "$B2" --key "copied/obj.txt" --copy-source "$B/meta/obj.txt" \
    --query 'CopyObjectResult.ETag' --output text >"$W/copy-etag"
expect_eq "$(cat "$W/copy-etag")" "\"$(md5of "$W/src/meta.txt")\"" "copy-object result ETag"
s3api head-object --bucket "$B2" --key "copied/obj.txt" \
    --query '[ContentType, Metadata.k, ContentLength, ETag]' --output text >"$W/head-copy"
expect_eq "$(cat "$W/head-copy")" "text/plain	v	$(sizeof "$W/src/meta.txt")	\"$(md5of "$W/src/meta.txt")\"" "head-object of copy"
s3api get-object --bucket "$B2" --key "copied/obj.txt" "$W/dl/copied.txt" >/dev/null
cmp "$W/src/meta.txt" "$W/dl/copied.txt" || fail "copied object body differs"
ok "s3api copy-object across buckets keeps body, ETag, content-type and metadata"

s3api copy-object --bucket "$B" --key "meta/replaced.txt" --copy-source "$B/meta/obj.txt" \
    --metadata-directive REPLACE --metadata 'fresh=yes' --content-type application/json >/dev/null
s3api head-object --bucket "$B" --key "meta/replaced.txt" \
    --query '[ContentType, Metadata.fresh, Metadata.k]' --output text >"$W/head-replaced"
expect_eq "$(cat "$W/head-replaced")" "application/json	yes	None" "head-object of REPLACE copy"
ok "s3api copy-object --metadata-directive REPLACE"

s3api copy-object --bucket "$B" --key "copy of/big file+ü.bin" --copy-source "$B/dir one/big file+ü.bin" >/dev/null
s3t cp "s3://$B/copy of/big file+ü.bin" "$W/dl/copy-special.bin" >/dev/null
cmp "$W/src/big file+ü.bin" "$W/dl/copy-special.bin" || fail "copy of special-name object differs"
ok "s3api copy-object with space/plus/unicode in source and destination keys"

s3t cp "s3://$B/small.txt" "s3://$B2/via-cp/small.txt" >/dev/null
s3t cp "s3://$B2/via-cp/small.txt" "$W/dl/small-via-cp.txt" >/dev/null
cmp "$W/src/small.txt" "$W/dl/small-via-cp.txt" || fail "aws s3 cp s3->s3 copy differs"
ok "aws s3 cp s3:// -> s3:// (server-side copy)"

# ---------------------------------------------------------------- error cases
out="$(must_fail awsx s3 ls "s3://does-not-exist")"
grep -q 'NoSuchBucket' <<<"$out" || { echo "$out" >&2; fail "aws s3 ls s3://does-not-exist: expected NoSuchBucket"; }
ok "aws s3 ls s3://does-not-exist fails with NoSuchBucket"

out="$(must_fail awsx s3 rb "s3://$B")"
grep -q 'BucketNotEmpty' <<<"$out" || { echo "$out" >&2; fail "aws s3 rb on non-empty bucket: expected BucketNotEmpty"; }
s3api head-bucket --bucket "$B" >/dev/null || fail "bucket vanished after failed rb"
ok "aws s3 rb on non-empty bucket fails with BucketNotEmpty (bucket kept)"

# Wrong secret must be rejected.
out="$(AWS_SECRET_ACCESS_KEY="wrong-${AWS_SECRET_ACCESS_KEY}" must_fail awsx s3 ls "s3://$B")"
grep -Eq 'SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId' <<<"$out" || { echo "$out" >&2; fail "wrong secret: expected SignatureDoesNotMatch"; }
ok "request signed with a wrong secret is rejected"

# ---------------------------------------------------------------- rm / rb
s3t rm "s3://$B/small.txt" >/dev/null
out="$(s3api list-objects-v2 --bucket "$B" --prefix small.txt --query 'Contents[].Key' --output text)"
expect_eq "$out" "None" "listing after aws s3 rm of single object"
ok "aws s3 rm single object"

s3t rm --recursive "s3://$B/" >"$W/rm-rec.out"
remote_listing "$B" "" >"$W/after-rm"
[[ ! -s "$W/after-rm" ]] || { cat "$W/after-rm" >&2; fail "bucket not empty after aws s3 rm --recursive"; }
[[ "$(grep -c '^delete: ' "$W/rm-rec.out" || true)" -gt 0 ]] || fail "aws s3 rm --recursive reported no deletions"
ok "aws s3 rm --recursive empties the bucket"

s3t rm --recursive "s3://$B2/" >/dev/null
out="$(awsx s3 rb "s3://$B")"
expect_eq "$out" "remove_bucket: $B" "aws s3 rb output"
awsx s3 rb "s3://$B2" >/dev/null
ok "aws s3 rb on empty buckets"

awsx s3 ls >"$W/ls-buckets-after"
if awk '{print $3}' "$W/ls-buckets-after" | grep -Fxq -e "$B" -e "$B2"; then
    cat "$W/ls-buckets-after" >&2
    fail "removed buckets still listed by aws s3 ls"
fi
out="$(must_fail awsx s3 ls "s3://$B")"
grep -q 'NoSuchBucket' <<<"$out" || { echo "$out" >&2; fail "ls of removed bucket: expected NoSuchBucket"; }
ok "removed buckets are gone"

echo "awscli.sh: all checks passed"
