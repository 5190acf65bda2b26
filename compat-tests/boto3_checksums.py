#!/usr/bin/env python3
"""boto3 checksum / presigned URL / conditional request checks against a running
JustStorage server.

Covers: flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) stored and
returned with ChecksumMode=ENABLED, wrong/malformed checksums refused (BadDigest:
a value that is no digest cannot match either) without touching the previous object, a forced aws-chunked
upload with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER) over plain
http, presigned GET/PUT (SigV4 and the default config, which may be SigV2 query
auth) fetched with curl, expired presigned URLs, conditional GET/PUT/copy, and
multipart uploads with SHA256 part checksums (COMPOSITE "-N" checksum) and with
boto3's default CRC32 (upload_file + TransferConfig).

Needs boto3 >= 1.36 and botocore[crt] (awscrt, for CRC32C and CRC64NVME).

Env: ENDPOINT (e.g. http://127.0.0.1:19123), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (default us-east-1).
Exits non-zero with a clear message on the first mismatch.
"""
import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zlib

import boto3
import botocore
import botocore.httpchecksum as httpchecksum
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

try:
    from awscrt import checksums as crt_checksums
except ImportError:  # pragma: no cover - environment problem, not a server bug
    sys.exit("FAIL: awscrt is not importable; pip install 'botocore[crt]'")

MiB = 1024 * 1024


class CheckFailed(Exception):
    pass


def ok(msg):
    print(f"ok: {msg}", flush=True)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def error_code(exc):
    return exc.response.get("Error", {}).get("Code")


def http_status(resp_or_exc):
    if isinstance(resp_or_exc, ClientError):
        return resp_or_exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return resp_or_exc["ResponseMetadata"]["HTTPStatusCode"]


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        sys.exit(f"FAIL: environment variable {name} must be set")
    return v


def make_client(config=None):
    if config is None:
        config = Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 2, "mode": "standard"},
        )
    kwargs = {
        "endpoint_url": env("ENDPOINT"),
        "aws_access_key_id": env("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": env("AWS_SECRET_ACCESS_KEY"),
        "region_name": env("AWS_DEFAULT_REGION", "us-east-1"),
    }
    if config is not False:
        kwargs["config"] = config
    return boto3.client("s3", **kwargs)


# ------------------------------------------------------------------ local checksums
def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def raw_checksum(algo, data):
    algo = algo.upper()
    if algo == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algo == "CRC32C":
        return crt_checksums.crc32c(data).to_bytes(4, "big")
    if algo == "CRC64NVME":
        return crt_checksums.crc64nvme(data).to_bytes(8, "big")
    if algo == "SHA1":
        return hashlib.sha1(data).digest()
    if algo == "SHA256":
        return hashlib.sha256(data).digest()
    raise ValueError(algo)


def checksum_b64(algo, data):
    return b64(raw_checksum(algo, data))


def expect_client_error(fn, status, code, what):
    """Runs fn(), which must raise ClientError with the given status and code."""
    try:
        fn()
    except ClientError as e:
        codes = code if isinstance(code, tuple) else (code,)
        expect(http_status(e) == status and error_code(e) in codes,
               f"{what}: expected HTTP {status} {' or '.join(codes)}, got HTTP {http_status(e)} {error_code(e)} "
               f"({e.response.get('Error', {}).get('Message')!r})")
        return e
    raise CheckFailed(f"{what}: succeeded, expected HTTP {status} {code}")


def get_bytes(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


# ------------------------------------------------------------------ header capture
class HeaderCapture:
    """Records the final (signed) request headers of one operation."""

    def __init__(self, s3, operation):
        self.s3 = s3
        self.event = f"before-send.s3.{operation}"
        self.requests = []

    def _hook(self, request, **kwargs):
        self.requests.append({k.lower(): v for k, v in request.headers.items()})

    def __enter__(self):
        self.s3.meta.events.register(self.event, self._hook)
        return self

    def __exit__(self, *exc):
        self.s3.meta.events.unregister(self.event, self._hook)
        return False


def hval(headers, name):
    v = headers.get(name.lower())
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    return v


# ------------------------------------------------------------------ forced trailer
_orig_resolve = httpchecksum.resolve_request_checksum_algorithm


@contextlib.contextmanager
def force_trailer_checksums():
    """botocore only sends a trailing checksum (aws-chunked,
    STREAMING-UNSIGNED-PAYLOAD-TRAILER) when the URL is https: in
    resolve_request_checksum_algorithm the location is "trailer" only if
    operation_model.has_streaming_input and the scheme is https. Flip the
    resolved location to "trailer" for streaming operations over http too;
    apply_request_checksum then uses _apply_request_trailer_checksum
    (AwsChunkedWrapper) and the SigV4 signer sends
    STREAMING-UNSIGNED-PAYLOAD-TRAILER."""

    def patched(request, operation_model, params, *args, **kwargs):
        _orig_resolve(request, operation_model, params, *args, **kwargs)
        algo = request["context"].get("checksum", {}).get("request_algorithm")
        if isinstance(algo, dict) and operation_model.has_streaming_input:
            algo["in"] = "trailer"

    httpchecksum.resolve_request_checksum_algorithm = patched
    try:
        yield
    finally:
        httpchecksum.resolve_request_checksum_algorithm = _orig_resolve


@contextlib.contextmanager
def wrong_trailer_checksum(algo):
    """Makes the AwsChunkedWrapper send a wrong value in the trailer."""
    name = algo.lower()
    orig_cls = httpchecksum._CHECKSUM_CLS[name]

    class Wrong(orig_cls):
        def digest(self):
            d = bytearray(super().digest())
            d[0] ^= 0xFF
            return bytes(d)

    httpchecksum._CHECKSUM_CLS[name] = Wrong
    try:
        yield
    finally:
        httpchecksum._CHECKSUM_CLS[name] = orig_cls


# ------------------------------------------------------------------ curl
def curl(url, out_path, extra=()):
    cmd = ["curl", "-sS", "--max-time", "60", "-o", out_path, "-w", "%{http_code}", *extra, url]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise CheckFailed(f"curl failed (rc {r.returncode}): {r.stderr.strip()} ; url={url}")
    with open(out_path, "rb") as f:
        body = f.read()
    return int(r.stdout.strip()), body


def sig_style(url):
    if "X-Amz-Signature=" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url:
        return "SigV4 query auth (X-Amz-Algorithm/X-Amz-Signature)"
    if "AWSAccessKeyId=" in url and "Signature=" in url and "Expires=" in url:
        return "SigV2 query auth (AWSAccessKeyId/Signature/Expires)"
    raise CheckFailed(f"presigned URL has neither SigV4 nor SigV2 query auth: {url}")


# ================================================================== checks
HTTPS = os.environ.get("ENDPOINT", "").startswith("https:")
ALGOS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


def check_algorithms(s3, bucket):
    body = os.urandom(300 * 1024) + b"checksum tail \x00\xff"
    for algo in ALGOS:
        key = f"algo/{algo.lower()}.bin"
        expected = checksum_b64(algo, body)
        member = f"Checksum{algo}"
        with HeaderCapture(s3, "PutObject") as cap:
            put = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm=algo)
        expect_eq(len(cap.requests), 1, f"{algo}: number of PutObject requests")
        if HTTPS:
            # Over https botocore sends the checksum in an aws-chunked trailer, not a header;
            # the response below shows the server read it.
            expect_eq(hval(cap.requests[0], "x-amz-trailer"), f"x-amz-checksum-{algo.lower()}",
                      f"{algo}: x-amz-trailer sent by botocore over https")
        else:
            expect_eq(hval(cap.requests[0], f"x-amz-checksum-{algo.lower()}"), expected,
                      f"{algo}: x-amz-checksum-{algo.lower()} header sent by botocore")
        expect_eq(put.get(member), expected, f"{algo}: put_object response {member}")

        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        expect_eq(head.get(member), expected, f"{algo}: head_object {member}")
        expect_eq(head.get("ChecksumType"), "FULL_OBJECT", f"{algo}: head_object ChecksumType")
        expect_eq(head.get("ContentLength"), len(body), f"{algo}: head_object ContentLength")
        others = [f"Checksum{a}" for a in ALGOS if a != algo and f"Checksum{a}" in head]
        expect_eq(others, [], f"{algo}: head_object returned checksums of other algorithms")

        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        expect_eq(got.get(member), expected, f"{algo}: get_object {member}")
        expect(isinstance(got["Body"], httpchecksum.StreamingChecksumBody),
               f"{algo}: botocore did not wrap the body for checksum validation "
               f"(got {type(got['Body']).__name__}); response headers: {got['ResponseMetadata']['HTTPHeaders']}")
        data = got["Body"].read()  # raises FlexibleChecksumError on mismatch
        expect(data == body, f"{algo}: get_object body differs from what was put")
        ok(f"{algo}: put_object(ChecksumAlgorithm) -> head/get ChecksumMode=ENABLED give "
           f"{member}={expected} (local), ChecksumType=FULL_OBJECT, body validated by botocore")


def check_wrong_checksums(s3, bucket):
    key = "wrong/obj.bin"
    original = b"the original object " * 500
    s3.put_object(Bucket=bucket, Key=key, Body=original)
    orig_etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    new_body = b"a replacement body that must never be stored " * 300

    cases = [
        ("CRC32", checksum_b64("CRC32", new_body + b"x")),
        ("SHA256", checksum_b64("SHA256", new_body + b"x")),
    ]
    for algo, wrong in cases:
        expect(wrong != checksum_b64(algo, new_body), "test bug: wrong checksum equals right one")
        with HeaderCapture(s3, "PutObject") as cap:
            expect_client_error(
                lambda: s3.put_object(Bucket=bucket, Key=key, Body=new_body, **{f"Checksum{algo}": wrong}),
                400, "BadDigest", f"put_object with wrong Checksum{algo}",
            )
        expect(cap.requests, "no PutObject request was sent")
        expect_eq(hval(cap.requests[-1], f"x-amz-checksum-{algo.lower()}"), wrong,
                  f"wrong Checksum{algo}: header actually sent")
        expect_eq(get_bytes(s3, bucket, key), original, f"object after refused put (wrong {algo})")
        expect_eq(s3.head_object(Bucket=bucket, Key=key)["ETag"], orig_etag, f"ETag after refused put (wrong {algo})")
        ok(f"put_object with wrong Checksum{algo} -> 400 BadDigest, previous object unchanged")

    # wrong value on a key that does not exist yet: nothing may be created
    expect_client_error(
        lambda: s3.put_object(Bucket=bucket, Key="wrong/new-key", Body=new_body,
                              ChecksumCRC32=checksum_b64("CRC32", b"other")),
        400, "BadDigest", "put_object with wrong ChecksumCRC32 on a new key",
    )
    expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="wrong/new-key"), 404, "404",
                        "head_object of a key whose put was refused")
    ok("put_object with wrong ChecksumCRC32 on a new key -> BadDigest, key not created")

    e = expect_client_error(
        lambda: s3.put_object(Bucket=bucket, Key=key, Body=new_body, ChecksumCRC32C="not base64!"),
        400, "BadDigest", "put_object with malformed ChecksumCRC32C",
    )
    expect_eq(get_bytes(s3, bucket, key), original, "object after malformed-checksum put")
    ok(f"put_object with ChecksumCRC32C='not base64!' -> 400 BadDigest "
       f"({e.response['Error'].get('Message')!r}), previous object unchanged")


def check_trailer_upload(s3, bucket, tmpdir):
    key = "trailer/streamed.bin"
    body = os.urandom(2 * MiB + 12345)  # > 1 MiB: several aws-chunked chunks
    path = os.path.join(tmpdir, "trailer-body.bin")
    with open(path, "wb") as f:
        f.write(body)

    with force_trailer_checksums(), HeaderCapture(s3, "PutObject") as cap:
        with open(path, "rb") as f:
            put = s3.put_object(Bucket=bucket, Key=key, Body=f, ChecksumAlgorithm="CRC32")
    expect_eq(len(cap.requests), 1, "trailer upload: number of PutObject requests")
    h = cap.requests[0]
    sha = hval(h, "x-amz-content-sha256")
    enc = hval(h, "content-encoding") or ""
    te = hval(h, "transfer-encoding") or ""
    trailer = hval(h, "x-amz-trailer")
    decoded = hval(h, "x-amz-decoded-content-length")
    print(f"  trailer upload path: x-amz-content-sha256={sha}, content-encoding={enc}, "
          f"transfer-encoding={te}, x-amz-trailer={trailer}, x-amz-decoded-content-length={decoded}, "
          f"x-amz-checksum-crc32 header present={'x-amz-checksum-crc32' in h}", flush=True)
    expect_eq(sha, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "trailer upload: x-amz-content-sha256")
    expect("aws-chunked" in enc, f"trailer upload: content-encoding {enc!r} lacks aws-chunked")
    expect_eq(trailer, "x-amz-checksum-crc32", "trailer upload: x-amz-trailer")
    expect("x-amz-checksum-crc32" not in h, "trailer upload: checksum was sent as a header, not a trailer")
    expected = checksum_b64("CRC32", body)
    expect_eq(put.get("ChecksumCRC32"), expected, "trailer upload: put_object response ChecksumCRC32")

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    expect_eq(head["ContentLength"], len(body), "trailer upload: stored ContentLength (chunk framing stored?)")
    expect_eq(head.get("ChecksumCRC32"), expected, "trailer upload: head ChecksumCRC32")
    expect_eq(head.get("ChecksumType"), "FULL_OBJECT", "trailer upload: head ChecksumType")
    expect_eq(head["ETag"], f'"{hashlib.md5(body).hexdigest()}"', "trailer upload: ETag (MD5 of decoded body)")
    data = get_bytes(s3, bucket, key)
    expect_eq(len(data), len(body), "trailer upload: stored length")
    expect(data == body, "trailer upload: stored bytes differ from the body (chunk framing stored?)")
    ok(f"forced aws-chunked trailer upload over http (STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
       f"content-encoding={enc}, transfer-encoding={te or 'none'}) of a file object: stored bytes == body, "
       f"head ChecksumCRC32 == local")

    # a wrong trailing checksum must be refused and leave the object alone
    other = os.urandom(1 * MiB + 7)
    path2 = os.path.join(tmpdir, "trailer-body-2.bin")
    with open(path2, "wb") as f:
        f.write(other)
    with force_trailer_checksums(), wrong_trailer_checksum("CRC32"), HeaderCapture(s3, "PutObject") as cap:
        with open(path2, "rb") as f:
            expect_client_error(
                lambda: s3.put_object(Bucket=bucket, Key=key, Body=f, ChecksumAlgorithm="CRC32"),
                400, "BadDigest", "trailer upload with a wrong trailing x-amz-checksum-crc32",
            )
    expect(cap.requests and hval(cap.requests[-1], "x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
           "wrong-trailer upload did not use the trailer path")
    expect(get_bytes(s3, bucket, key) == body, "object changed after a refused wrong-trailer upload")
    ok("aws-chunked upload with a wrong trailing CRC32 -> 400 BadDigest, previous object unchanged")


def check_presigned(s3, bucket, tmpdir):
    key = "presign/obj.bin"
    body = os.urandom(64 * 1024) + b"presigned"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    out = os.path.join(tmpdir, "curl-out")

    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    expect(sig_style(url).startswith("SigV4"), f"s3v4 client produced a non-SigV4 presigned URL: {url}")
    status, data = curl(url, out)
    expect_eq(status, 200, f"presigned GET (s3v4) status; body={data[:300]!r}")
    expect(data == body, "presigned GET (s3v4): bytes differ")
    ok("presigned GET (signature_version=s3v4, ExpiresIn=300) fetched with curl: 200 and the bytes")

    default = make_client(config=False)
    url = default.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    style = sig_style(url)
    status, data = curl(url, out)
    expect_eq(status, 200, f"presigned GET (default config, {style}) status; body={data[:300]!r}")
    expect(data == body, f"presigned GET (default config, {style}): bytes differ")
    ok(f"presigned GET with the default boto3 config ({style}) fetched with curl: 200 and the bytes")

    # Explicit SigV2 query auth, so it is covered whatever the default is.
    v2 = make_client(config=Config(s3={"addressing_style": "path"}, signature_version="s3"))
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    expect(sig_style(url).startswith("SigV2"), f"signature_version=s3 did not give SigV2 query auth: {url}")
    status, data = curl(url, out)
    expect_eq(status, 200, f"presigned GET (SigV2 query auth) status; body={data[:300]!r}")
    expect(data == body, "presigned GET (SigV2 query auth): bytes differ")
    ok("presigned GET with signature_version='s3' (SigV2 AWSAccessKeyId/Signature/Expires): 200 and the bytes")

    # a tampered SigV4 signature must be refused
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    i = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    bad = url[:i] + ("0" if url[i] != "0" else "1") + url[i + 1:]
    status, data = curl(bad, out)
    expect_eq(status, 403, f"presigned GET with a tampered signature: status; body={data[:300]!r}")
    expect(b"SignatureDoesNotMatch" in data, f"tampered presigned GET: body lacks SignatureDoesNotMatch: {data[:300]!r}")
    ok("presigned GET with a tampered signature -> 403 SignatureDoesNotMatch")

    # presigned PUT with curl --upload-file
    put_key = "presign/uploaded.bin"
    put_body = os.urandom(200 * 1024) + b"via curl"
    src = os.path.join(tmpdir, "presign-put.bin")
    with open(src, "wb") as f:
        f.write(put_body)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": put_key}, ExpiresIn=300)
    status, data = curl(url, out, extra=["--upload-file", src])
    expect_eq(status, 200, f"presigned PUT (curl --upload-file) status; body={data[:300]!r}")
    expect(get_bytes(s3, bucket, put_key) == put_body, "presigned PUT: stored bytes differ")
    ok("presigned PUT (s3v4) with curl --upload-file: 200, object stored")

    # expired
    for label, client in (("s3v4", s3), ("SigV2", v2)):
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1)
        time.sleep(2.2)
        status, data = curl(url, out)
        expect_eq(status, 403, f"expired presigned GET ({label}) status; body={data[:300]!r}")
        expect(b"Request has expired" in data, f"expired presigned GET ({label}): body lacks 'Request has expired': {data[:400]!r}")
        ok(f"expired presigned GET ({label}, ExpiresIn=1, 2 s later) -> 403 'Request has expired'")


def check_conditional(s3, bucket):
    key = "cond/obj.txt"
    body = b"conditional body"
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
    wrong = '"00000000000000000000000000000000"'

    r = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)
    expect_eq((http_status(r), r["Body"].read()), (200, body), "get_object IfMatch=<etag>")
    expect_client_error(lambda: s3.get_object(Bucket=bucket, Key=key, IfMatch=wrong),
                        412, "PreconditionFailed", "get_object IfMatch=<wrong>")
    ok("get_object IfMatch: right ETag -> 200, wrong ETag -> 412 PreconditionFailed")

    expect_client_error(lambda: s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag),
                        304, "304", "get_object IfNoneMatch=<etag>")
    r = s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=wrong)
    expect_eq((http_status(r), r["Body"].read()), (200, body), "get_object IfNoneMatch=<other etag>")
    ok("get_object IfNoneMatch: same ETag -> 304, other ETag -> 200")

    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"overwrite!", IfNoneMatch="*"),
                        412, "PreconditionFailed", "put_object IfNoneMatch='*' on an existing key")
    expect_eq(get_bytes(s3, bucket, key), body, "object after refused IfNoneMatch put")
    r = s3.put_object(Bucket=bucket, Key="cond/fresh.txt", Body=b"fresh", IfNoneMatch="*")
    expect_eq(http_status(r), 200, "put_object IfNoneMatch='*' on a new key")
    expect_eq(get_bytes(s3, bucket, "cond/fresh.txt"), b"fresh", "object created with IfNoneMatch='*'")
    ok("put_object IfNoneMatch='*': existing key -> 412 (object unchanged), new key -> created")

    src = {"Bucket": bucket, "Key": key}
    expect_client_error(
        lambda: s3.copy_object(Bucket=bucket, Key="cond/copy.txt", CopySource=src, CopySourceIfMatch=wrong),
        412, "PreconditionFailed", "copy_object CopySourceIfMatch=<wrong>",
    )
    expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="cond/copy.txt"), 404, "404",
                        "copy destination after refused conditional copy")
    s3.copy_object(Bucket=bucket, Key="cond/copy.txt", CopySource=src, CopySourceIfMatch=etag)
    expect_eq(get_bytes(s3, bucket, "cond/copy.txt"), body, "copy_object CopySourceIfMatch=<etag> result")
    ok("copy_object CopySourceIfMatch: wrong ETag -> 412 (nothing created), right ETag -> copied")


def check_multipart(s3, bucket, tmpdir):
    key = "mpu/sha256.bin"
    parts_data = [os.urandom(5 * MiB), os.urandom(1 * MiB + 333)]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    upload_id = up["UploadId"]
    expect_eq(up.get("ChecksumAlgorithm"), "SHA256", "create_multipart_upload response ChecksumAlgorithm")
    parts = []
    for n, data in enumerate(parts_data, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data,
                           ChecksumAlgorithm="SHA256")
        expect_eq(r.get("ChecksumSHA256"), checksum_b64("SHA256", data), f"upload_part {n} response ChecksumSHA256")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    composite = b64(hashlib.sha256(b"".join(raw_checksum("SHA256", d) for d in parts_data)).digest()) + "-2"
    expect_eq(done.get("ChecksumSHA256"), composite, "complete_multipart_upload response ChecksumSHA256")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    expect_eq(head.get("ChecksumSHA256"), composite, "multipart head ChecksumSHA256")
    expect_eq(head.get("ChecksumType"), "COMPOSITE", "multipart head ChecksumType")
    expect_eq(head["ContentLength"], sum(len(d) for d in parts_data), "multipart head ContentLength")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    expect(got["Body"].read() == b"".join(parts_data), "multipart SHA256 object bytes differ")
    ok(f"multipart with SHA256 part checksums: composite ChecksumSHA256={composite} "
       f"(sha256 of concatenated part digests), ChecksumType=COMPOSITE, bytes round-trip")

    # a wrong part checksum in CompleteMultipartUpload is refused
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu/bad.bin", ChecksumAlgorithm="SHA256")
    r = s3.upload_part(Bucket=bucket, Key="mpu/bad.bin", UploadId=up["UploadId"], PartNumber=1,
                       Body=b"only part", ChecksumAlgorithm="SHA256")
    try:
        e = expect_client_error(
            lambda: s3.complete_multipart_upload(
                Bucket=bucket, Key="mpu/bad.bin", UploadId=up["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"],
                                            "ChecksumSHA256": checksum_b64("SHA256", b"something else")}]}),
            400, error_code_for_bad_part_checksum, "complete_multipart_upload with a wrong part ChecksumSHA256",
        )
    finally:
        with contextlib.suppress(ClientError):
            s3.abort_multipart_upload(Bucket=bucket, Key="mpu/bad.bin", UploadId=up["UploadId"])
    ok(f"complete_multipart_upload with a wrong part ChecksumSHA256 -> 400 {error_code(e)}")

    # upload_file: boto3's default CRC32 on every part
    path = os.path.join(tmpdir, "mpu-12MiB.bin")
    big = os.urandom(12 * MiB)
    with open(path, "wb") as f:
        f.write(big)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB,
                         max_concurrency=3, preferred_transfer_client="classic")
    with HeaderCapture(s3, "CreateMultipartUpload") as cc, HeaderCapture(s3, "UploadPart") as pc:
        s3.upload_file(path, bucket, "mpu/upload_file.bin", Config=cfg)
    expect_eq(len(cc.requests), 1, "upload_file: CreateMultipartUpload requests")
    expect_eq(hval(cc.requests[0], "x-amz-checksum-algorithm"), "CRC32", "upload_file: create x-amz-checksum-algorithm")
    chunks = [big[i:i + 5 * MiB] for i in range(0, len(big), 5 * MiB)]
    if HTTPS:
        # Trailers over https: the parts' checksums are checked below, through the object's.
        expect_eq([hval(h, "x-amz-trailer") for h in pc.requests], ["x-amz-checksum-crc32"] * len(chunks),
                  "upload_file: per-part x-amz-trailer sent over https")
    else:
        sent = sorted(hval(h, "x-amz-checksum-crc32") for h in pc.requests)
        expect_eq(sent, sorted(checksum_b64("CRC32", c) for c in chunks),
                  "upload_file: per-part x-amz-checksum-crc32 sent")
    head = s3.head_object(Bucket=bucket, Key="mpu/upload_file.bin", ChecksumMode="ENABLED")
    expect_eq(head["ContentLength"], len(big), "upload_file: ContentLength")
    expect(head["ETag"].endswith('-3"'), f"upload_file: ETag {head['ETag']} is not a 3-part multipart ETag")
    ctype = head.get("ChecksumType")
    if ctype == "FULL_OBJECT":
        want = checksum_b64("CRC32", big)
    else:
        want = b64(zlib.crc32(b"".join(raw_checksum("CRC32", c) for c in chunks)).to_bytes(4, "big")) + "-3"
    expect_eq(ctype, "COMPOSITE", "upload_file: ChecksumType (CreateMultipartUpload without x-amz-checksum-type)")
    expect_eq(head.get("ChecksumCRC32"), want, "upload_file: head ChecksumCRC32")
    dl = os.path.join(tmpdir, "mpu-12MiB.out")
    s3.download_file(bucket, "mpu/upload_file.bin", dl, Config=cfg)
    with open(dl, "rb") as f:
        expect(f.read() == big, "upload_file/download_file: bytes differ")
    ok(f"upload_file 12 MiB with TransferConfig(5 MiB threshold/chunks): 3 parts with CRC32 headers, "
       f"ChecksumCRC32={want} ({ctype}), download_file round-trips")


def check_list_parts_checksums(s3, bucket):
    """ListParts of an upload created with a checksum algorithm reports the
    algorithm, the checksum type and every part's checksum (as AWS does;
    clients use it to resume an upload and still complete it with checksums)."""
    key = "mpu/list-parts.bin"
    parts_data = [os.urandom(5 * MiB), b"last part"]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    try:
        for n, data in enumerate(parts_data, start=1):
            s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=data,
                           ChecksumAlgorithm="SHA256")
        lp = s3.list_parts(Bucket=bucket, Key=key, UploadId=up["UploadId"])
        expect_eq([p.get("PartNumber") for p in lp.get("Parts", [])], [1, 2], "list_parts PartNumbers")
        expect_eq(lp.get("ChecksumAlgorithm"), "SHA256", "list_parts ChecksumAlgorithm")
        expect_eq(lp.get("ChecksumType"), "COMPOSITE", "list_parts ChecksumType")
        expect_eq([p.get("ChecksumSHA256") for p in lp.get("Parts", [])],
                  [checksum_b64("SHA256", d) for d in parts_data], "list_parts ChecksumSHA256 per part")
    finally:
        with contextlib.suppress(ClientError):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"])
    ok("list_parts of a SHA256 upload: ChecksumAlgorithm=SHA256, ChecksumType=COMPOSITE, per-part ChecksumSHA256")


# A part checksum given to CompleteMultipartUpload that does not match the one
# recorded for the part: AWS documents InvalidPart; BadDigest is accepted too.
error_code_for_bad_part_checksum = ("InvalidPart", "BadDigest")


def main():
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}", flush=True)
    s3 = make_client()
    bucket = f"compat-cksum-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    ok(f"create_bucket {bucket}")
    with tempfile.TemporaryDirectory(prefix="boto3-checksums-") as tmpdir:
        check_algorithms(s3, bucket)
        check_wrong_checksums(s3, bucket)
        check_trailer_upload(s3, bucket, tmpdir)
        check_presigned(s3, bucket, tmpdir)
        check_conditional(s3, bucket)
        check_multipart(s3, bucket, tmpdir)
        check_list_parts_checksums(s3, bucket)

    # clean up
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])]
    if keys:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    s3.delete_bucket(Bucket=bucket)
    ok("cleanup: bucket deleted")
    print("boto3_checksums.py: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    except ClientError as e:
        print(f"FAIL: unexpected S3 error: {e}", file=sys.stderr)
        sys.exit(1)
