#!/usr/bin/env bash
# Multipart uploads and copies driven by the real aws CLI (v1) against a
# running JustStorage server: `aws s3 cp` with several part sizes, the
# multipart ETag S3 computes, server-side multipart copy (UploadPartCopy with
# ranges), partNumber reads, and create/abort/list of multipart uploads.
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
PYTHON="${PYTHON:-python3}"

command -v aws >/dev/null || { echo "FAIL: aws CLI not found (pip install awscli)" >&2; exit 1; }

W="$(mktemp -d "${TMPDIR:-/tmp}/js-mpcli.XXXXXX")"
trap 'rm -rf "$W"' EXIT
cd "$W"
trap 'echo "FAIL: multipart_awscli.sh line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

export AWS_CONFIG_FILE="$W/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$W/aws-credentials"
: >"$AWS_SHARED_CREDENTIALS_FILE"

MiB=$((1024 * 1024))

# use_part_size N : aws CLI uses multipart for files >= N MiB, in parts of N MiB
# (the CLI's "MB" is 1024*1024 bytes).
use_part_size() {
    cat >"$AWS_CONFIG_FILE" <<EOF
[default]
region = $AWS_DEFAULT_REGION
retry_mode = standard
max_attempts = 2
s3 =
    addressing_style = path
    multipart_threshold = $1MB
    multipart_chunksize = $1MB
    max_concurrent_requests = 4
EOF
}

ok()   { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    if [[ "$1" != "$2" ]]; then
        fail "$3: expected [$2], got [$1]"
    fi
}

s3api() { aws --endpoint-url "$ENDPOINT" s3api "$@"; }
s3cp()  { aws --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$@"; }
sizeof() { stat -c %s "$1"; }

# Run a command that must FAIL; its combined output goes to stdout.
must_fail() {
    local out
    if out="$("$@" 2>&1)"; then
        echo "$out" >&2
        fail "expected failure, but command succeeded: $*"
    fi
    printf '%s\n' "$out"
}

# s3_etag FILE PART_BYTES : the ETag S3 gives FILE uploaded in parts of
# PART_BYTES (the last part holds the rest): quoted
# md5(md5(part1) || md5(part2) || ...) + "-N".
s3_etag() {
    "$PYTHON" - "$1" "$2" <<'EOF'
import hashlib, sys
path, part = sys.argv[1], int(sys.argv[2])
digests = []
with open(path, "rb") as f:
    while True:
        chunk = f.read(part)
        if not chunk:
            break
        digests.append(hashlib.md5(chunk).digest())
print('"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests)))
EOF
}

# check_upload FILE KEY PART_MIB : cp FILE up with PART_MIB parts, check the
# ETag/ContentLength, download it again and compare bytes.
check_upload() {
    local file="$1" key="$2" part_mib="$3" etag expected len
    use_part_size "$part_mib"
    s3cp "$file" "s3://$B/$key"
    expected="$(s3_etag "$file" $((part_mib * MiB)))"
    etag="$(s3api head-object --bucket "$B" --key "$key" --query ETag --output text)"
    expect_eq "$etag" "$expected" "head-object ETag of $key (uploaded in $part_mib MiB parts)"
    len="$(s3api head-object --bucket "$B" --key "$key" --query ContentLength --output text)"
    expect_eq "$len" "$(sizeof "$file")" "head-object ContentLength of $key"
    rm -f "$W/dl.bin"
    s3cp "s3://$B/$key" "$W/dl.bin"
    cmp "$file" "$W/dl.bin" || fail "$key differs after round trip ($part_mib MiB parts)"
    rm -f "$W/dl.bin"
    ok "aws s3 cp of $(sizeof "$file") bytes in $part_mib MiB parts: ETag $etag as S3 computes, download byte-identical"
}

RUN_ID="$(date +%s)-$$-$RANDOM"
B="compat-mpcli-${RUN_ID}"
B2="compat-mpcli2-${RUN_ID}"

use_part_size 8
aws --endpoint-url "$ENDPOINT" s3 mb "s3://$B" >/dev/null
aws --endpoint-url "$ENDPOINT" s3 mb "s3://$B2" >/dev/null
ok "buckets $B and $B2 created"

# ---------------------------------------------------------------- uploads
head -c $((200 * MiB)) /dev/urandom >"$W/big.bin"
# 40 MiB plus an odd tail, so that no part size divides it.
head -c $((40 * MiB + 123457)) /dev/urandom >"$W/mid.bin"

check_upload "$W/big.bin" "big/200MiB.bin" 8
check_upload "$W/mid.bin" "mid/at-5MiB.bin" 5
check_upload "$W/mid.bin" "mid/at-16MiB.bin" 16

# ---------------------------------------------------------------- partNumber reads
# big/200MiB.bin was uploaded in 25 parts of 8 MiB.
s3api head-object --bucket "$B" --key "big/200MiB.bin" --part-number 2 \
    --query '[ContentLength, PartsCount]' --output text >"$W/head-part2"
expect_eq "$(cat "$W/head-part2")" "$((8 * MiB))	25" "head-object --part-number 2 [ContentLength, PartsCount]"
ok "head-object --part-number 2: ContentLength is the 8 MiB part size, PartsCount 25"

s3api get-object --bucket "$B" --key "big/200MiB.bin" --part-number 2 "$W/part2.bin" >/dev/null
dd if="$W/big.bin" of="$W/part2.expected" bs=1M skip=8 count=8 status=none
cmp "$W/part2.expected" "$W/part2.bin" || fail "get-object --part-number 2 body is not bytes [8 MiB, 16 MiB) of the file"
rm -f "$W/part2.bin" "$W/part2.expected"
ok "get-object --part-number 2 returns exactly the second part's bytes"

# mid/at-16MiB.bin: parts 16 MiB, 16 MiB, 8 MiB + 123457 bytes
len="$(s3api head-object --bucket "$B" --key "mid/at-16MiB.bin" --part-number 3 --query ContentLength --output text)"
expect_eq "$len" "$((8 * MiB + 123457))" "head-object --part-number 3 (last, short part) ContentLength"
ok "head-object --part-number 3 of a 3-part object: ContentLength is the short last part"

# ---------------------------------------------------------------- server-side multipart copy
# With 64 MiB parts the CLI copies the 200 MiB object with UploadPartCopy
# and x-amz-copy-source-range in 4 ranges (64, 64, 64, 8 MiB).
use_part_size 64
s3cp "s3://$B/big/200MiB.bin" "s3://$B2/copied/200MiB.bin"
etag="$(s3api head-object --bucket "$B2" --key "copied/200MiB.bin" --query ETag --output text)"
expect_eq "$etag" "$(s3_etag "$W/big.bin" $((64 * MiB)))" "ETag of the multipart copy (64 MiB parts)"
s3cp "s3://$B2/copied/200MiB.bin" "$W/dl-copy.bin"
cmp "$W/big.bin" "$W/dl-copy.bin" || fail "server-side multipart copy of the 200 MiB object differs"
rm -f "$W/dl-copy.bin"
ok "aws s3 cp s3:// -> s3:// of 200 MiB (UploadPartCopy ranges): ETag $etag, download byte-identical"

len="$(s3api head-object --bucket "$B2" --key "copied/200MiB.bin" --part-number 4 --query ContentLength --output text)"
expect_eq "$len" "$((8 * MiB))" "head-object --part-number 4 of the copy ContentLength"
ok "head-object --part-number 4 of the copy: 8 MiB"

# ---------------------------------------------------------------- create / list / abort
use_part_size 8
upload_id="$(s3api create-multipart-upload --bucket "$B" --key "aborted/obj" --query UploadId --output text)"
[[ -n "$upload_id" && "$upload_id" != "None" ]] || fail "create-multipart-upload returned no UploadId"
head -c $((5 * MiB)) /dev/urandom >"$W/p1.bin"
s3api upload-part --bucket "$B" --key "aborted/obj" --upload-id "$upload_id" --part-number 1 \
    --body "$W/p1.bin" >/dev/null
listed="$(s3api list-multipart-uploads --bucket "$B" --query 'Uploads[].[Key, UploadId]' --output text)"
expect_eq "$listed" "aborted/obj	$upload_id" "list-multipart-uploads before abort"
ok "create-multipart-upload + upload-part; list-multipart-uploads shows the upload"

s3api abort-multipart-upload --bucket "$B" --key "aborted/obj" --upload-id "$upload_id"
listed="$(s3api list-multipart-uploads --bucket "$B" --query 'Uploads[].UploadId' --output text)"
expect_eq "$listed" "None" "list-multipart-uploads after abort"
out="$(must_fail s3api list-parts --bucket "$B" --key "aborted/obj" --upload-id "$upload_id")"
grep -q 'NoSuchUpload' <<<"$out" || { echo "$out" >&2; fail "list-parts after abort: expected NoSuchUpload"; }
out="$(must_fail s3api head-object --bucket "$B" --key "aborted/obj")"
grep -Eq '404|Not Found' <<<"$out" || { echo "$out" >&2; fail "head-object of aborted upload's key: expected 404"; }
ok "abort-multipart-upload: gone from list-multipart-uploads, list-parts NoSuchUpload, no object"

# ---------------------------------------------------------------- cleanup
aws --endpoint-url "$ENDPOINT" s3 rb --force "s3://$B" >/dev/null
aws --endpoint-url "$ENDPOINT" s3 rb --force "s3://$B2" >/dev/null
ok "buckets removed"

echo "multipart_awscli.sh: all checks passed"
