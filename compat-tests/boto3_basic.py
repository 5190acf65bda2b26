#!/usr/bin/env python3
"""Basic boto3 compatibility checks against a running JustStorage server.

Env: ENDPOINT (e.g. http://127.0.0.1:19123), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (default us-east-1).
Exits non-zero with a clear message on the first mismatch.
"""
import hashlib
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

N_MANY = 1200


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


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        sys.exit(f"FAIL: environment variable {name} must be set")
    return v


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


def main():
    s3 = make_client()
    bucket = f"compat-boto3-{int(time.time())}-{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------ bucket
    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    expect(bucket in names, f"list_buckets does not contain {bucket}: {names}")
    ok(f"create_bucket {bucket} (head_bucket + list_buckets see it)")

    # ------------------------------------------------------------ put/get round trip
    body = os.urandom(256 * 1024) + b"\x00\xff tail \r\n"
    md5 = hashlib.md5(body).hexdigest()
    put = s3.put_object(Bucket=bucket, Key="roundtrip/blob.bin", Body=body)
    expect_eq(put["ETag"], f'"{md5}"', "put_object ETag")
    got = s3.get_object(Bucket=bucket, Key="roundtrip/blob.bin")
    data = got["Body"].read()
    expect_eq(len(data), len(body), "get_object body length")
    expect(data == body, "get_object body bytes differ from what was put")
    expect_eq(got["ContentLength"], len(body), "get_object ContentLength")
    expect_eq(got["ETag"], f'"{md5}"', "get_object ETag")
    ok("put_object/get_object round trip (bytes, ETag, ContentLength)")

    rng = s3.get_object(Bucket=bucket, Key="roundtrip/blob.bin", Range="bytes=100-199")
    expect_eq(rng["Body"].read(), body[100:200], "ranged get_object body")
    expect_eq(rng["ResponseMetadata"]["HTTPStatusCode"], 206, "ranged get_object status")
    ok("ranged get_object (bytes=100-199) returns 206 and the right slice")

    # ------------------------------------------------------------ metadata
    meta = {"color": "blue", "owner": "alice", "note": "hello world"}
    s3.put_object(
        Bucket=bucket,
        Key="meta/obj.txt",
        Body=b"metadata body",
        Metadata=meta,
        ContentType="text/plain; charset=utf-8",
    )
    head = s3.head_object(Bucket=bucket, Key="meta/obj.txt")
    expect_eq(head["Metadata"], meta, "head_object Metadata")
    expect_eq(head["ContentType"], "text/plain; charset=utf-8", "head_object ContentType")
    expect_eq(head["ContentLength"], len(b"metadata body"), "head_object ContentLength")
    expect_eq(head["ETag"], f'"{hashlib.md5(b"metadata body").hexdigest()}"', "head_object ETag")
    expect("LastModified" in head, "head_object has no LastModified")
    ok("head_object metadata/content-type round trip")

    attrs = s3.get_object_attributes(Bucket=bucket, Key="meta/obj.txt", ObjectAttributes=["ETag", "ObjectSize"])
    expect_eq(attrs.get("ETag"), hashlib.md5(b"metadata body").hexdigest(), "get_object_attributes ETag (unquoted)")
    expect_eq(attrs.get("ObjectSize"), len(b"metadata body"), "get_object_attributes ObjectSize")
    ok("get_object_attributes (ETag, ObjectSize): the ETag unquoted, as S3 sends it")

    try:
        s3.head_object(Bucket=bucket, Key="meta/missing")
        raise CheckFailed("head_object on missing key succeeded")
    except ClientError as e:
        expect_eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 404, "head_object missing key status")
    try:
        s3.get_object(Bucket=bucket, Key="meta/missing")
        raise CheckFailed("get_object on missing key succeeded")
    except ClientError as e:
        expect_eq(error_code(e), "NoSuchKey", "get_object missing key error code")
    ok("missing key: head_object 404, get_object NoSuchKey")

    # ------------------------------------------------------------ prefix / delimiter
    tree_keys = [
        "docs/a.txt",
        "docs/b/c.txt",
        "docs/b/d.txt",
        "docs/e/f/g.txt",
        "docs/h.txt",
        "docsx/not-in-prefix.txt",
        "other/x.txt",
    ]
    for k in tree_keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    r = s3.list_objects_v2(Bucket=bucket, Prefix="docs/", Delimiter="/")
    expect_eq([o["Key"] for o in r.get("Contents", [])], ["docs/a.txt", "docs/h.txt"], "v2 Prefix+Delimiter Contents")
    expect_eq([p["Prefix"] for p in r.get("CommonPrefixes", [])], ["docs/b/", "docs/e/"], "v2 Prefix+Delimiter CommonPrefixes")
    expect_eq(r.get("KeyCount"), 4, "v2 Prefix+Delimiter KeyCount (contents + common prefixes)")
    expect_eq(r.get("IsTruncated"), False, "v2 Prefix+Delimiter IsTruncated")
    expect_eq(r.get("Prefix"), "docs/", "v2 echoed Prefix")
    expect_eq(r.get("Delimiter"), "/", "v2 echoed Delimiter")

    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    expect_eq(
        [p["Prefix"] for p in r.get("CommonPrefixes", [])],
        ["docs/", "docsx/", "meta/", "other/", "roundtrip/"],
        "v2 root Delimiter CommonPrefixes",
    )
    expect_eq(r.get("Contents", []), [], "v2 root Delimiter Contents")

    r = s3.list_objects(Bucket=bucket, Prefix="docs/b/", Delimiter="/")
    expect_eq([o["Key"] for o in r.get("Contents", [])], ["docs/b/c.txt", "docs/b/d.txt"], "v1 Prefix+Delimiter Contents")
    expect_eq(r.get("CommonPrefixes", []), [], "v1 Prefix+Delimiter CommonPrefixes")
    ok("list_objects_v2/list_objects with Prefix/Delimiter give Contents + CommonPrefixes")

    # ------------------------------------------------------------ 1,200 keys
    many = [f"many/key-{i:05d}" for i in range(N_MANY)]

    def put_small(k):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put_small, many))
    ok(f"put {N_MANY} small objects")

    # v2 paginator, default page size (server max 1000) -> 1000 + 200
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/"))
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    expect_eq(len(keys), N_MANY, "v2 paginator (default page size) key count")
    expect(keys == many, "v2 paginator (default page size): keys not in exact lexicographic order / wrong set")
    expect_eq([len(p.get("Contents", [])) for p in pages], [1000, 200], "v2 paginator page sizes")
    expect_eq([p["IsTruncated"] for p in pages], [True, False], "v2 paginator IsTruncated flags")
    expect_eq([p["KeyCount"] for p in pages], [1000, 200], "v2 paginator KeyCount per page")
    ok(f"list_objects_v2 paginator (default page size): {N_MANY} keys in 2 pages, exact order")

    # v2 paginator, PageSize 250 -> 5 pages (incl. StartAfter on a second run)
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 250}
        )
    )
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    expect_eq([len(p.get("Contents", [])) for p in pages], [250] * 4 + [200], "v2 paginator PageSize=250 page sizes")
    expect(keys == many, "v2 paginator PageSize=250: keys not in exact order / wrong set")
    ok(f"list_objects_v2 paginator PageSize=250: {len(pages)} pages, exact order")

    r = s3.list_objects_v2(Bucket=bucket, Prefix="many/", StartAfter=many[1099], MaxKeys=1000)
    expect_eq([o["Key"] for o in r.get("Contents", [])], many[1100:], "v2 StartAfter")
    ok("list_objects_v2 StartAfter")

    # v1 with explicit Marker loop
    keys, marker, calls = [], "", 0
    while True:
        kwargs = {"Bucket": bucket, "Prefix": "many/", "MaxKeys": 500}
        if marker:
            kwargs["Marker"] = marker
        r = s3.list_objects(**kwargs)
        calls += 1
        expect(calls <= 10, "v1 Marker loop does not terminate")
        page = [o["Key"] for o in r.get("Contents", [])]
        expect(len(page) <= 500, f"v1 page larger than MaxKeys: {len(page)}")
        keys.extend(page)
        if not r.get("IsTruncated"):
            break
        expect(page, "v1 IsTruncated=true but empty page")
        # NextMarker is only guaranteed with a delimiter; fall back to last key
        marker = r.get("NextMarker") or page[-1]
    expect_eq(len(keys), N_MANY, "v1 Marker loop key count")
    expect(keys == many, "v1 Marker loop: keys not in exact order / wrong set")
    expect_eq(calls, 3, "v1 Marker loop number of requests (MaxKeys=500)")
    ok(f"list_objects (v1) with Marker: {N_MANY} keys in {calls} pages, exact order")

    # v1 paginator as well
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="many/"))
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    expect(keys == many, "v1 paginator: keys not in exact order / wrong set")
    ok("list_objects (v1) paginator, exact order")

    # ------------------------------------------------------------ delete_objects
    all_keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])]
    expected_total = N_MANY + len(tree_keys) + 2
    expect_eq(len(all_keys), expected_total, "total object count before delete")
    deleted = 0
    for i in range(0, len(all_keys), 1000):
        chunk = all_keys[i : i + 1000]
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk]})
        expect_eq(r.get("Errors", []), [], "delete_objects Errors")
        expect_eq(sorted(d["Key"] for d in r.get("Deleted", [])), sorted(chunk), "delete_objects Deleted keys")
        deleted += len(r.get("Deleted", []))
    expect_eq(deleted, expected_total, "number of deleted objects")
    r = s3.list_objects_v2(Bucket=bucket)
    expect_eq(r.get("KeyCount"), 0, "KeyCount after delete_objects")
    expect_eq(r.get("Contents", []), [], "Contents after delete_objects")
    ok(f"delete_objects removed all {deleted} objects")

    # quiet mode + deleting a missing key is not an error
    s3.put_object(Bucket=bucket, Key="quiet/one", Body=b"1")
    r = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "quiet/one"}, {"Key": "quiet/never-existed"}], "Quiet": True}
    )
    expect_eq(r.get("Errors", []), [], "quiet delete_objects Errors")
    expect_eq(r.get("Deleted", []), [], "quiet delete_objects Deleted (must be omitted)")
    expect_eq(s3.list_objects_v2(Bucket=bucket).get("KeyCount"), 0, "KeyCount after quiet delete_objects")
    ok("delete_objects Quiet=true, missing key is not an error")

    # ------------------------------------------------------------ delete_bucket
    s3.delete_bucket(Bucket=bucket)
    try:
        s3.head_bucket(Bucket=bucket)
        raise CheckFailed("head_bucket succeeded after delete_bucket")
    except ClientError as e:
        expect_eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 404, "head_bucket status after delete")
    try:
        s3.list_objects_v2(Bucket=bucket)
        raise CheckFailed("list_objects_v2 succeeded after delete_bucket")
    except ClientError as e:
        expect_eq(error_code(e), "NoSuchBucket", "list_objects_v2 error code after delete")
    ok("delete_bucket; bucket is gone (404 / NoSuchBucket)")

    print("boto3_basic.py: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    except ClientError as e:
        print(f"FAIL: unexpected S3 error: {e}", file=sys.stderr)
        sys.exit(1)
