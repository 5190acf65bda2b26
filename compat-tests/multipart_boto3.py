#!/usr/bin/env python3
"""Multipart upload checks with boto3 against a running JustStorage server.

Manual multipart (create/upload_part/list_parts/complete) with S3's multipart
ETag, the EntityTooSmall / InvalidPart / InvalidPartOrder / NoSuchUpload
errors, and the managed transfer (upload_file / download_file) with a
5 MiB TransferConfig.

Env: ENDPOINT (e.g. http://127.0.0.1:19123), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (default us-east-1), TMPDIR.
Exits non-zero with a clear message on the first mismatch.
"""
import filecmp
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

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


def expect_error(code, what, fn, *args, **kwargs):
    """fn(*args, **kwargs) must raise ClientError with this error code."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        expect_eq(error_code(e), code, f"{what}: error code")
        return e
    raise CheckFailed(f"{what}: succeeded, expected error {code}")


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        sys.exit(f"FAIL: environment variable {name} must be set")
    return v


def md5_hex(b):
    return hashlib.md5(b).hexdigest()


def multipart_etag(parts):
    """The ETag S3 gives an object completed from these part bodies."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def file_multipart_etag(path, part_size):
    parts = []
    with open(path, "rb") as f:
        while True:
            chunk = f.read(part_size)
            if not chunk:
                break
            parts.append(chunk)
    return multipart_etag(parts)


def make_client():
    return boto3.client(
        "s3",
        endpoint_url=env("ENDPOINT"),
        aws_access_key_id=env("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env("AWS_SECRET_ACCESS_KEY"),
        region_name=env("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=16,
        ),
    )


def list_uploads(s3, bucket):
    r = s3.list_multipart_uploads(Bucket=bucket)
    return sorted((u["Key"], u["UploadId"]) for u in r.get("Uploads", []))


def manual_multipart(s3, bucket):
    key = "manual/obj.bin"
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(54321)]
    body = b"".join(parts)

    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-test", Metadata={"origin": "boto3"})
    upload_id = up["UploadId"]
    expect(upload_id, "create_multipart_upload returned no UploadId")
    expect_eq(up.get("Key"), key, "create_multipart_upload Key")
    expect_eq(list_uploads(s3, bucket), [(key, upload_id)], "list_multipart_uploads while in progress")

    # Upload out of order: the object must still be assembled by part number.
    etags = {}
    for n in (3, 1, 4, 2):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=parts[n - 1])
        expect_eq(r["ETag"], f'"{md5_hex(parts[n - 1])}"', f"upload_part {n} ETag")
        etags[n] = r["ETag"]
    ok("create_multipart_upload + 4x upload_part (3x 5 MiB + 54321 B, out of order): part ETags are md5s")

    r = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    listed = [(p["PartNumber"], p["Size"], p["ETag"]) for p in r.get("Parts", [])]
    expected = [(n, len(parts[n - 1]), etags[n]) for n in (1, 2, 3, 4)]
    expect_eq(listed, expected, "list_parts [(PartNumber, Size, ETag)]")
    expect_eq(r.get("IsTruncated"), False, "list_parts IsTruncated")
    expect_eq(r.get("UploadId"), upload_id, "list_parts UploadId")
    ok("list_parts: 4 parts in part-number order with sizes and ETags")

    r = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=2)
    expect_eq([p["PartNumber"] for p in r.get("Parts", [])], [1, 2], "list_parts MaxParts=2 page 1")
    expect_eq(r.get("IsTruncated"), True, "list_parts MaxParts=2 page 1 IsTruncated")
    marker = r.get("NextPartNumberMarker")
    r = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=2, PartNumberMarker=marker)
    expect_eq([p["PartNumber"] for p in r.get("Parts", [])], [3, 4], "list_parts MaxParts=2 page 2")
    expect_eq(r.get("IsTruncated"), False, "list_parts MaxParts=2 page 2 IsTruncated")
    ok("list_parts pagination (MaxParts=2, NextPartNumberMarker)")

    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3, 4)]},
    )
    expected_etag = multipart_etag(parts)
    expect_eq(done["ETag"], expected_etag, "complete_multipart_upload ETag")
    expect_eq(done.get("Key"), key, "complete_multipart_upload Key")
    expect_eq(list_uploads(s3, bucket), [], "list_multipart_uploads after complete")
    ok(f"complete_multipart_upload: ETag {expected_etag} as S3 computes; upload no longer listed")

    got = s3.get_object(Bucket=bucket, Key=key)
    data = got["Body"].read()
    expect_eq(len(data), len(body), "get_object length of multipart object")
    expect(data == body, "get_object bytes of multipart object differ from the concatenated parts")
    expect_eq(got["ETag"], expected_etag, "get_object ETag")
    expect_eq(got["ContentType"], "application/x-test", "get_object ContentType (set at create)")
    expect_eq(got["Metadata"], {"origin": "boto3"}, "get_object Metadata (set at create)")
    head = s3.head_object(Bucket=bucket, Key=key)
    expect_eq(head["ETag"], expected_etag, "head_object ETag")
    expect_eq(head["ContentLength"], len(body), "head_object ContentLength")
    ok("get_object/head_object of the multipart object: bytes, ETag, ContentType, Metadata")

    # A range spanning the boundary of parts 1 and 2.
    rng = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={5 * MiB - 100}-{5 * MiB + 99}")
    expect_eq(rng["Body"].read(), body[5 * MiB - 100 : 5 * MiB + 100], "ranged get across a part boundary")
    ok("ranged get_object across a part boundary")

    r = s3.get_object(Bucket=bucket, Key=key, PartNumber=4)
    expect_eq(r["Body"].read(), parts[3], "get_object PartNumber=4 body")
    expect_eq(r["ContentLength"], len(parts[3]), "get_object PartNumber=4 ContentLength")
    expect_eq(r.get("PartsCount"), 4, "get_object PartNumber=4 PartsCount")
    ok("get_object PartNumber=4 returns the last part")


def entity_too_small(s3, bucket):
    key = "errors/too-small"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    p1 = os.urandom(1 * MiB)
    p2 = os.urandom(1024)
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=p2)["ETag"]
    expect_error(
        "EntityTooSmall",
        "complete_multipart_upload with a 1 MiB first part",
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    expect_error("NoSuchKey", "get_object after failed complete", s3.get_object, Bucket=bucket, Key=key)
    ok("complete_multipart_upload with first part < 5 MiB fails with EntityTooSmall; no object")

    # The upload survives the failed complete; a single small part is fine
    # (the last part may be of any size).
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]}
    )
    expect_eq(done["ETag"], multipart_etag([p1]), "complete with the single 1 MiB part: ETag")
    expect(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == p1, "single-part multipart object bytes differ")
    ok("after EntityTooSmall the upload is still open; completing with only part 1 works (ETag -1)")


def invalid_part(s3, bucket):
    key = "errors/invalid-part"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    p1 = os.urandom(5 * MiB)
    p2 = os.urandom(4096)
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=p2)["ETag"]
    wrong = f'"{md5_hex(b"not the part")}"'
    expect_error(
        "InvalidPart",
        "complete_multipart_upload with a wrong ETag for part 2",
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": wrong}]},
    )
    ok("complete_multipart_upload with a wrong part ETag fails with InvalidPart")

    expect_error(
        "InvalidPart",
        "complete_multipart_upload naming a part that was never uploaded",
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}]},
    )
    ok("complete_multipart_upload naming a missing part number fails with InvalidPart")

    expect_error(
        "InvalidPartOrder",
        "complete_multipart_upload with parts in descending order",
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]},
    )
    ok("complete_multipart_upload with parts out of order fails with InvalidPartOrder")

    expect_error("NoSuchKey", "get_object after failed completes", s3.get_object, Bucket=bucket, Key=key)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    expect_eq(done["ETag"], multipart_etag([p1, p2]), "complete after the failed attempts: ETag")
    expect(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == p1 + p2, "object bytes differ after retry")
    ok("after the failed completes, the correct part list completes the upload")


def no_such_upload(s3, bucket):
    key = "errors/aborted"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=os.urandom(5 * MiB))["ETag"]
    expect_eq(list_uploads(s3, bucket), [(key, upload_id)], "list_multipart_uploads before abort")
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    expect_eq(list_uploads(s3, bucket), [], "list_multipart_uploads after abort")
    expect_error(
        "NoSuchUpload",
        "upload_part after abort",
        s3.upload_part,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=2,
        Body=b"late",
    )
    expect_error("NoSuchUpload", "list_parts after abort", s3.list_parts, Bucket=bucket, Key=key, UploadId=upload_id)
    expect_error(
        "NoSuchUpload",
        "complete_multipart_upload after abort",
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]},
    )
    expect_error("NoSuchKey", "get_object of aborted upload's key", s3.get_object, Bucket=bucket, Key=key)
    ok("after abort_multipart_upload: upload_part/list_parts/complete fail with NoSuchUpload, no object")

    expect_error(
        "NoSuchUpload",
        "list_parts with a made-up upload id",
        s3.list_parts,
        Bucket=bucket,
        Key=key,
        UploadId="this-upload-id-does-not-exist",
    )
    ok("list_parts with an unknown upload id fails with NoSuchUpload")


def managed_transfer(s3, bucket, tmp):
    src = os.path.join(tmp, "upload-30MiB.bin")
    dst = os.path.join(tmp, "download-30MiB.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(30 * MiB))
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    key = "transfer/30MiB.bin"
    s3.upload_file(src, bucket, key, Config=cfg)
    head = s3.head_object(Bucket=bucket, Key=key)
    expected = file_multipart_etag(src, 5 * MiB)
    expect_eq(head["ETag"], expected, "ETag after upload_file in 5 MiB parts")
    expect_eq(head["ContentLength"], 30 * MiB, "ContentLength after upload_file")
    ok(f"upload_file 30 MiB with TransferConfig(5 MiB, 5 MiB, 4 threads): ETag {expected}")

    s3.download_file(bucket, key, dst, Config=cfg)
    expect(filecmp.cmp(src, dst, shallow=False), "download_file result differs from the uploaded file")
    ok("download_file (ranged, 4 threads) round trip is byte-identical")


def empty_bucket(s3, bucket):
    for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objs:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objs, "Quiet": True})


def main():
    s3 = make_client()
    bucket = f"compat-mpboto3-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp(prefix="js-mpboto3.")
    try:
        s3.create_bucket(Bucket=bucket)
        ok(f"create_bucket {bucket}")
        manual_multipart(s3, bucket)
        entity_too_small(s3, bucket)
        invalid_part(s3, bucket)
        no_such_upload(s3, bucket)
        managed_transfer(s3, bucket, tmp)

        empty_bucket(s3, bucket)
        s3.delete_bucket(Bucket=bucket)
        ok("bucket emptied and deleted")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("multipart_boto3.py: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    except ClientError as e:
        print(f"FAIL: unexpected S3 error: {e}", file=sys.stderr)
        sys.exit(1)
