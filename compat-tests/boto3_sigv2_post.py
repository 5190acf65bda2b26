#!/usr/bin/env python3
"""boto3 SigV2 header auth and browser POST (POST policy) uploads against a
running JustStorage server.

Covers: a client with signature_version='s3' (SigV2 `Authorization: AWS
key:signature`) doing put/get/head/copy/tagging/multipart/delete round trips
(the sub-resources ?tagging, ?uploads, ?uploadId, ?partNumber are part of the
SigV2 string to sign) and bucket-level requests (list v1/v2, head, location,
?uploads, ?delete, create/delete bucket), keys that need percent-encoding, a
wrong secret and a header changed after signing refused; generate_presigned_post
(SigV4 and SigV2 POST policies) with content-length-range, a key prefix,
Content-Type and x-amz-meta-* fields, POSTed as multipart/form-data with
urllib3 (204 by default, 201 + PostResponse XML with success_action_status),
and policy violations (file too large or too small, key outside the prefix,
a field the policy does not cover, a forged signature, an expired policy)
refused with nothing stored; an 8 MiB CRLF text file POSTed intact; the
${filename} key variable; a SigV2 request whose Date is 20 minutes old (S3:
RequestTimeTooSkewed).

Every check group runs even if an earlier one failed; the script exits non-zero
if any failed, listing them all.

Env: ENDPOINT (e.g. http://127.0.0.1:19123), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (default us-east-1).
"""
import base64
import email.utils
import hashlib
import hmac
import os
import re
import sys
import time
import traceback
import urllib.parse
import uuid

import boto3
import botocore
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError

MiB = 1024 * 1024
# Over https (compat-tests/run.sh https) the raw requests trust the test CA, as boto3 does.
HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=10, read=60),
                           ca_certs=os.environ.get("AWS_CA_BUNDLE"))


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


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        sys.exit(f"FAIL: environment variable {name} must be set")
    return v


ENDPOINT = env("ENDPOINT").rstrip("/")
ACCESS_KEY = env("AWS_ACCESS_KEY_ID")
SECRET_KEY = env("AWS_SECRET_ACCESS_KEY")
REGION = env("AWS_DEFAULT_REGION", "us-east-1")


def make_client(signature_version, secret=None):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret or SECRET_KEY,
        region_name=REGION,
        config=Config(
            signature_version=signature_version,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def error_code(exc):
    return exc.response.get("Error", {}).get("Code")


def http_status(exc):
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def expect_client_error(fn, status, code, what):
    try:
        fn()
    except ClientError as e:
        codes = code if isinstance(code, tuple) else (code,)
        expect(http_status(e) == status and error_code(e) in codes,
               f"{what}: expected HTTP {status} {' or '.join(codes)}, got HTTP {http_status(e)} {error_code(e)} "
               f"({e.response.get('Error', {}).get('Message')!r})")
        return e
    raise CheckFailed(f"{what}: succeeded, expected HTTP {status} {code}")


def exists(s3, bucket, key):
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        if http_status(e) == 404:
            return False
        raise


def xml_code(body):
    m = re.search(rb"<Code>(.*?)</Code>", body or b"")
    return m.group(1).decode() if m else None


class HeaderCapture:
    """Records the final (signed) request headers of every request of a client."""

    def __init__(self, s3):
        self.s3 = s3
        self.requests = []

    def _hook(self, request, **kwargs):
        self.requests.append({k.lower(): (v.decode("latin-1") if isinstance(v, bytes) else v)
                              for k, v in request.headers.items()})

    def __enter__(self):
        self.s3.meta.events.register("before-send.s3", self._hook)
        return self

    def __exit__(self, *exc):
        self.s3.meta.events.unregister("before-send.s3", self._hook)
        return False


# ------------------------------------------------------------------ SigV2 by hand
def v2_request(method, path, secret=SECRET_KEY, date=None, headers=None, body=b"", tamper=None):
    """Sends a request signed with SigV2 header auth computed here (path-style
    resource, no sub-resources). `tamper(headers)` may change headers after signing."""
    headers = dict(headers or {})
    date = date or email.utils.formatdate(time.time(), usegmt=True)
    lower = {k.lower(): v for k, v in headers.items()}
    amz = sorted((k, v.strip()) for k, v in lower.items() if k.startswith("x-amz-"))
    sts = (f"{method}\n{lower.get('content-md5', '')}\n{lower.get('content-type', '')}\n{date}\n"
           + "".join(f"{k}:{v}\n" for k, v in amz) + path)
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    headers["Date"] = date
    headers["Authorization"] = f"AWS {ACCESS_KEY}:{sig}"
    if tamper:
        tamper(headers)
    return HTTP.request(method, ENDPOINT + path, body=body, headers=headers, redirect=False)


# ------------------------------------------------------------------ POST forms
def post_form(url, fields, data, filename="upload.bin", content_type="application/octet-stream"):
    parts = list(fields.items()) + [("file", (filename, data, content_type))]
    body, ctype = urllib3.encode_multipart_formdata(parts)
    return HTTP.request("POST", url, body=body, headers={"Content-Type": ctype}, redirect=False)


def describe(r):
    return f"HTTP {r.status} {xml_code(r.data)} body={r.data[:400]!r}"


# ================================================================== checks
def check_sigv2_round_trips(v2, s3, bucket):
    with HeaderCapture(v2) as cap:
        body = os.urandom(200 * 1024) + b"sigv2 body"
        put = v2.put_object(Bucket=bucket, Key="v2/plain.bin", Body=body, ContentType="application/x-test",
                            Metadata={"colour": "blue"})
    auth = cap.requests[-1].get("authorization", "")
    expect(auth.startswith(f"AWS {ACCESS_KEY}:"), f"signature_version='s3' did not send SigV2 header auth: {auth!r}")
    expect_eq(put["ETag"], f'"{hashlib.md5(body).hexdigest()}"', "SigV2 put_object ETag")
    got = v2.get_object(Bucket=bucket, Key="v2/plain.bin")
    expect(got["Body"].read() == body, "SigV2 get_object: bytes differ")
    expect_eq(got["ContentType"], "application/x-test", "SigV2 get_object ContentType")
    expect_eq(got["Metadata"], {"colour": "blue"}, "SigV2 get_object Metadata")
    head = v2.head_object(Bucket=bucket, Key="v2/plain.bin")
    expect_eq(head["ContentLength"], len(body), "SigV2 head_object ContentLength")
    ok(f"SigV2 header auth ({auth.split(':')[0]}:…): put_object 200 KiB with metadata, get_object, head_object")

    # Keys that need percent-encoding: the SigV2 resource is the encoded path.
    odd = "v2/dir with space/a+b=c&d;e,f@g$h'(i)!~*é中.txt"
    v2.put_object(Bucket=bucket, Key=odd, Body=b"odd key")
    expect_eq(v2.get_object(Bucket=bucket, Key=odd)["Body"].read(), b"odd key", "SigV2 odd key get")
    ok(f"SigV2 put/get of a key needing percent-encoding ({odd!r})")

    # (listing is checked with SigV4 here; SigV2 bucket-level requests have their own group)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="v2/")
    expect_eq(sorted(o["Key"] for o in listed.get("Contents", [])), sorted(["v2/plain.bin", odd]),
              "keys listed after SigV2 puts")

    v2.copy_object(Bucket=bucket, Key="v2/copy.bin", CopySource={"Bucket": bucket, "Key": "v2/plain.bin"})
    expect(v2.get_object(Bucket=bucket, Key="v2/copy.bin")["Body"].read() == body, "SigV2 copy_object bytes")
    ok("SigV2 copy_object (x-amz-copy-source in the string to sign)")

    v2.put_object_tagging(Bucket=bucket, Key="v2/plain.bin",
                          Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    tags = v2.get_object_tagging(Bucket=bucket, Key="v2/plain.bin")["TagSet"]
    expect_eq(tags, [{"Key": "k", "Value": "v"}], "SigV2 get_object_tagging")
    ok("SigV2 put/get_object_tagging (?tagging sub-resource)")

    parts_data = [os.urandom(5 * MiB), b"tail part"]
    up = v2.create_multipart_upload(Bucket=bucket, Key="v2/mpu.bin")
    parts = []
    for n, data in enumerate(parts_data, start=1):
        r = v2.upload_part(Bucket=bucket, Key="v2/mpu.bin", UploadId=up["UploadId"], PartNumber=n, Body=data)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    lp = v2.list_parts(Bucket=bucket, Key="v2/mpu.bin", UploadId=up["UploadId"])
    expect_eq([p["PartNumber"] for p in lp.get("Parts", [])], [1, 2], "SigV2 list_parts")
    v2.complete_multipart_upload(Bucket=bucket, Key="v2/mpu.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    expect(v2.get_object(Bucket=bucket, Key="v2/mpu.bin")["Body"].read() == b"".join(parts_data),
           "SigV2 multipart object bytes")
    ok("SigV2 multipart upload (?uploads, ?partNumber&uploadId, ?uploadId sub-resources) round-trips")

    for key in ("v2/copy.bin", "v2/mpu.bin", odd):
        v2.delete_object(Bucket=bucket, Key=key)
        expect(not exists(s3, bucket, key), f"SigV2 delete_object {key!r}: still there")
    ok("SigV2 delete_object (plain, multipart and odd keys)")


def check_sigv2_bucket_requests(v2, s3, bucket):
    """Bucket-level requests: botocore signs the SigV2 resource of a path-style
    bucket request as '/bucket/' (request.auth_path) while the URL path is
    '/bucket'; S3 accepts it."""
    s3.put_object(Bucket=bucket, Key="v2b/one", Body=b"1")
    s3.put_object(Bucket=bucket, Key="v2b/two", Body=b"2")
    failures = []

    def attempt(what, fn):
        try:
            fn()
            ok(f"SigV2 {what}")
        except (CheckFailed, ClientError) as e:
            failures.append(f"{what}: {e}")
            print(f"  SigV2 {what} FAILED: {e}", flush=True)

    def list_v2():
        keys = [o["Key"] for o in v2.list_objects_v2(Bucket=bucket, Prefix="v2b/").get("Contents", [])]
        expect_eq(keys, ["v2b/one", "v2b/two"], "list_objects_v2 keys")

    def list_v1():
        r = v2.list_objects(Bucket=bucket, Prefix="v2b/", Delimiter="/")
        expect_eq([o["Key"] for o in r.get("Contents", [])], ["v2b/one", "v2b/two"], "list_objects keys")

    def presigned_list():
        url = v2.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket, "Prefix": "v2b/"},
                                        ExpiresIn=300)
        r = HTTP.request("GET", url, redirect=False)
        expect_eq(r.status, 200, f"presigned SigV2 list_objects_v2: {describe(r)}")
        expect(b"<Key>v2b/one</Key>" in r.data, f"presigned SigV2 list_objects_v2 body: {r.data[:400]!r}")

    def delete_many():
        r = v2.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "v2b/one"}, {"Key": "v2b/two"}]})
        expect_eq(sorted(d["Key"] for d in r.get("Deleted", [])), ["v2b/one", "v2b/two"], "delete_objects Deleted")
        expect(not exists(s3, bucket, "v2b/one"), "delete_objects: v2b/one still there")

    def bucket_life():
        other = f"{bucket}-2"
        v2.create_bucket(Bucket=other)
        v2.head_bucket(Bucket=other)
        v2.delete_bucket(Bucket=other)
        expect_client_error(lambda: s3.head_bucket(Bucket=other), 404, ("404", "NoSuchBucket"),
                            "head_bucket after SigV2 delete_bucket")

    attempt("head_bucket", lambda: v2.head_bucket(Bucket=bucket))
    attempt("list_objects_v2 (prefix)", list_v2)
    attempt("list_objects v1 (prefix + delimiter)", list_v1)
    attempt("presigned list_objects_v2 URL", presigned_list)
    attempt("get_bucket_location (?location)", lambda: v2.get_bucket_location(Bucket=bucket))
    attempt("list_multipart_uploads (?uploads)", lambda: v2.list_multipart_uploads(Bucket=bucket))
    attempt("delete_objects (?delete)", delete_many)
    attempt("create_bucket, head_bucket, delete_bucket", bucket_life)
    if failures:
        raise CheckFailed(f"{len(failures)} of 8 SigV2 bucket-level requests failed; first: {failures[0]}")


def check_sigv2_refusals(bucket):
    bad = make_client("s3", secret="not-the-secret-key")
    expect_client_error(lambda: bad.put_object(Bucket=bucket, Key="v2/evil", Body=b"evil"),
                        403, "SignatureDoesNotMatch", "SigV2 put_object with a wrong secret")
    expect_client_error(lambda: bad.get_object(Bucket=bucket, Key="v2/plain.bin"),
                        403, "SignatureDoesNotMatch", "SigV2 get_object with a wrong secret")
    v2 = make_client("s3")
    expect(not exists(v2, bucket, "v2/evil"), "object created by a wrongly signed SigV2 put")
    ok("SigV2 with a wrong secret -> 403 SignatureDoesNotMatch, nothing stored")

    # The hand-made signer against the server: valid, then an x-amz-meta header changed in flight.
    r = v2_request("PUT", f"/{bucket}/v2/hand.bin", headers={"Content-Type": "text/plain",
                                                             "x-amz-meta-who": "hand"}, body=b"by hand")
    expect_eq(r.status, 200, f"hand-signed SigV2 PUT: {describe(r)}")
    r = v2_request("GET", f"/{bucket}/v2/hand.bin")
    expect_eq((r.status, r.data, r.headers.get("x-amz-meta-who")), (200, b"by hand", "hand"), "hand-signed SigV2 GET")

    def swap(h):
        h["x-amz-meta-who"] = "mallory"
    r = v2_request("PUT", f"/{bucket}/v2/hand.bin", headers={"Content-Type": "text/plain",
                                                             "x-amz-meta-who": "hand"}, body=b"evil", tamper=swap)
    expect_eq((r.status, xml_code(r.data)), (403, "SignatureDoesNotMatch"),
              f"SigV2 PUT with x-amz-meta changed after signing: {describe(r)}")
    expect_eq(v2.get_object(Bucket=bucket, Key="v2/hand.bin")["Body"].read(), b"by hand",
              "object after a tampered SigV2 PUT")
    ok("hand-signed SigV2 PUT/GET 200; an x-amz-meta header changed after signing -> 403 SignatureDoesNotMatch")


def check_sigv2_stale_date(bucket):
    """S3 refuses a SigV2 request whose Date is more than 15 minutes off the
    server's clock (RequestTimeTooSkewed); otherwise a captured request can be
    replayed for as long as the key lives."""
    old = email.utils.formatdate(time.time() - 20 * 60, usegmt=True)
    r = v2_request("PUT", f"/{bucket}/v2/replayed.bin", date=old, headers={"Content-Type": "text/plain"},
                   body=b"replayed")
    stored = exists(make_client("s3v4"), bucket, "v2/replayed.bin")
    expect_eq((r.status, xml_code(r.data), stored), (403, "RequestTimeTooSkewed", False),
              f"SigV2 PUT with Date 20 minutes old ({old}): {describe(r)}; stored={stored}")
    ok("SigV2 PUT with a 20-minute-old Date -> 403 RequestTimeTooSkewed")


def check_post_v4(s3, bucket):
    key = "form/v4.bin"
    data = os.urandom(100 * 1024) + b"posted"
    post = s3.generate_presigned_post(
        Bucket=bucket, Key=key,
        Fields={"Content-Type": "image/png", "x-amz-meta-origin": "browser"},
        Conditions=[["content-length-range", 1, MiB], ["starts-with", "$key", "form/"],
                    {"Content-Type": "image/png"}, {"x-amz-meta-origin": "browser"}],
        ExpiresIn=300)
    fields = post["fields"]
    expect_eq(fields.get("x-amz-algorithm"), "AWS4-HMAC-SHA256", "generate_presigned_post (s3v4) algorithm field")
    r = post_form(post["url"], fields, data)
    expect_eq(r.status, 204, f"POST form (SigV4 policy): {describe(r)}")
    # S3 also sends ETag (and Location) headers with the 204; not required here, checked if sent.
    if r.headers.get("ETag") is not None:
        expect_eq(r.headers.get("ETag"), f'"{hashlib.md5(data).hexdigest()}"', "POST form response ETag")
    else:
        print("  note: the 204 POST response carries no ETag header (S3 sends one)", flush=True)
    got = s3.get_object(Bucket=bucket, Key=key)
    expect(got["Body"].read() == data, "POSTed object bytes differ")
    expect_eq(got["ContentType"], "image/png", "POSTed object ContentType")
    expect_eq(got["Metadata"], {"origin": "browser"}, "POSTed object Metadata")
    ok(f"generate_presigned_post (SigV4, content-length-range 1..1 MiB, key prefix, Content-Type, "
       f"x-amz-meta-origin) POSTed with urllib3 -> 204, object + metadata round-trip")

    key = "form/v4-201.bin"
    post = s3.generate_presigned_post(
        Bucket=bucket, Key=key, Fields={"success_action_status": "201"},
        Conditions=[["content-length-range", 1, MiB], {"success_action_status": "201"}], ExpiresIn=300)
    r = post_form(post["url"], post["fields"], b"created")
    expect_eq(r.status, 201, f"POST form with success_action_status=201: {describe(r)}")
    expect(b"<PostResponse>" in r.data and f"<Key>{key}</Key>".encode() in r.data
           and f"<Bucket>{bucket}</Bucket>".encode() in r.data,
           f"201 PostResponse XML: {r.data[:400]!r}")
    expect_eq(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), b"created", "201 POST object bytes")
    ok("POST form with success_action_status=201 -> 201 + PostResponse XML (Bucket, Key), object stored")


def check_post_violations(s3, bucket):
    def policy(key="form/limited.bin", lo=10, hi=1024, expires=300, fields=None, conditions=()):
        return s3.generate_presigned_post(
            Bucket=bucket, Key=key, Fields=fields,
            Conditions=[["content-length-range", lo, hi], ["starts-with", "$key", "form/"], *conditions],
            ExpiresIn=expires)

    def refused(r, status, codes, what, key, also=()):
        """`also`: other (status, code) answers accepted, reported as a divergence from S3."""
        codes = codes if isinstance(codes, tuple) else (codes,)
        got = (r.status, xml_code(r.data))
        if got in also:
            print(f"  note: {what}: HTTP {got[0]} {got[1]} (S3 answers {status} {' or '.join(codes)})", flush=True)
        else:
            expect(r.status == status and got[1] in codes,
                   f"{what}: expected HTTP {status} {' or '.join(codes)}, got {describe(r)}")
        expect(not exists(s3, bucket, key), f"{what}: object {key} was stored")

    # S3 answers a failed policy condition with 403 AccessDenied ("Invalid according to Policy");
    # s3s answers 400 InvalidPolicyDocument: a client error all the same.
    condition_failed = ((400, "InvalidPolicyDocument"),)

    p = policy()
    r = post_form(p["url"], p["fields"], os.urandom(2048))
    refused(r, 400, "EntityTooLarge", "POST of 2 KiB under content-length-range 10..1024", "form/limited.bin")
    ok("POST with a file over content-length-range max -> 400 EntityTooLarge, nothing stored")

    r = post_form(p["url"], p["fields"], b"tiny")
    refused(r, 400, "EntityTooSmall", "POST of 4 bytes under content-length-range 10..1024", "form/limited.bin")
    ok("POST with a file under content-length-range min -> 400 EntityTooSmall, nothing stored")

    f = dict(p["fields"], key="elsewhere/limited.bin")
    r = post_form(p["url"], f, b"x" * 100)
    refused(r, 403, "AccessDenied", "POST with key outside the starts-with $key prefix", "elsewhere/limited.bin",
            also=condition_failed)
    ok("POST with the key changed to outside the policy's prefix -> refused, nothing stored")

    f = dict(p["fields"], **{"x-amz-meta-extra": "sneaky"})
    r = post_form(p["url"], f, b"x" * 100)
    refused(r, 403, "AccessDenied", "POST with a field the policy does not cover", "form/limited.bin",
            also=condition_failed)
    ok("POST with a form field not covered by the policy -> refused, nothing stored")

    f = dict(p["fields"])
    sig = f["x-amz-signature"]
    f["x-amz-signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    r = post_form(p["url"], f, b"x" * 100)
    refused(r, 403, "SignatureDoesNotMatch", "POST with a forged x-amz-signature", "form/limited.bin")
    # A policy rewritten by the client (bigger limit), signature unchanged.
    f = dict(p["fields"])
    doc = base64.b64decode(f["policy"]).replace(b"1024]", b"99999999]")
    expect(doc != base64.b64decode(f["policy"]), "test bug: policy not rewritten")
    f["policy"] = base64.b64encode(doc).decode()
    r = post_form(p["url"], f, os.urandom(4096))
    refused(r, 403, "SignatureDoesNotMatch", "POST with a rewritten policy (raised max)", "form/limited.bin")
    ok("POST with a forged signature, or a policy rewritten after signing -> 403 SignatureDoesNotMatch")

    p = policy(expires=1)
    time.sleep(2.5)
    r = post_form(p["url"], p["fields"], b"x" * 100)
    refused(r, 403, "AccessDenied", "POST with an expired policy", "form/limited.bin")
    ok("POST with an expired policy -> 403 AccessDenied, nothing stored")

    # After all that, the same policy shape still works.
    p = policy()
    r = post_form(p["url"], p["fields"], b"y" * 100)
    expect_eq(r.status, 204, f"valid POST after the refusals: {describe(r)}")
    expect_eq(s3.get_object(Bucket=bucket, Key="form/limited.bin")["Body"].read(), b"y" * 100, "valid POST bytes")
    ok("a valid POST with the same policy shape -> 204 and the object")


def check_post_v2(v2, s3, bucket):
    key = "form/v2.bin"
    data = os.urandom(50 * 1024)
    post = v2.generate_presigned_post(Bucket=bucket, Key=key,
                                      Conditions=[["content-length-range", 1, MiB]], ExpiresIn=300)
    fields = post["fields"]
    expect("signature" in fields and "AWSAccessKeyId" in fields,
           f"signature_version='s3' generate_presigned_post is not a SigV2 form: {sorted(fields)}")
    r = post_form(post["url"], fields, data)
    expect_eq(r.status, 204, f"POST form (SigV2 policy): {describe(r)}")
    expect(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, "SigV2 POSTed bytes differ")
    ok("generate_presigned_post with signature_version='s3' (AWSAccessKeyId/signature form) -> 204, object round-trips")

    r = post_form(post["url"], fields, os.urandom(MiB + 1))
    expect(r.status == 400 and xml_code(r.data) == "EntityTooLarge", f"SigV2 POST over the limit: {describe(r)}")
    expect(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, "SigV2 POST over the limit replaced the object")
    ok("SigV2 POST over content-length-range -> 400 EntityTooLarge, previous object unchanged")


def check_post_crlf_text(s3, bucket):
    """A browser upload of an 8 MiB text file with CRLF line endings (a CSV
    saved on Windows) is stored intact."""
    rows = []
    size = 0
    n = 0
    while size < 8 * MiB:
        row = f"{n},row {n},{n * 7919 % 1000}\r\n".encode()
        rows.append(row)
        size += len(row)
        n += 1
    data = b"".join(rows)
    post = s3.generate_presigned_post(Bucket=bucket, Key="form/data.csv",
                                      Conditions=[["content-length-range", 1, 64 * MiB]], ExpiresIn=300)
    r = post_form(post["url"], post["fields"], data, filename="data.csv", content_type="text/csv")
    expect_eq(r.status, 204, f"POST of an {len(data)}-byte CRLF text file: {describe(r)}")
    expect(s3.get_object(Bucket=bucket, Key="form/data.csv")["Body"].read() == data, "POSTed CSV bytes differ")
    ok(f"POST of an {len(data)}-byte CRLF text file (text/csv) -> 204, bytes round-trip")


def check_post_filename_variable(s3, bucket):
    """S3 replaces ${filename} in the key field with the uploaded file's name
    (boto3 documents Key='uploads/${filename}' for generate_presigned_post)."""
    post = s3.generate_presigned_post(Bucket=bucket, Key="named/${filename}",
                                      Conditions=[["content-length-range", 1, MiB]], ExpiresIn=300)
    r = post_form(post["url"], post["fields"], b"named file", filename="photo.jpg")
    expect_eq(r.status, 204, f"POST with key named/${{filename}}: {describe(r)}")
    literal = exists(s3, bucket, "named/${filename}")
    expect(exists(s3, bucket, "named/photo.jpg"),
           f"POST with key 'named/${{filename}}' and file photo.jpg did not create named/photo.jpg "
           f"(object stored under the literal key 'named/${{filename}}': {literal})")
    ok("POST with key 'named/${filename}' stored named/photo.jpg")


def main():
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}, urllib3 {urllib3.__version__}", flush=True)
    v2 = make_client("s3")
    s3 = make_client("s3v4")
    bucket = f"compat-v2post-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    ok(f"create_bucket {bucket} (SigV4)")

    groups = [
        ("SigV2 object round trips", lambda: check_sigv2_round_trips(v2, s3, bucket)),
        ("SigV2 bucket-level requests", lambda: check_sigv2_bucket_requests(v2, s3, bucket)),
        ("SigV2 refusals", lambda: check_sigv2_refusals(bucket)),
        ("POST policy SigV4", lambda: check_post_v4(s3, bucket)),
        ("POST policy violations", lambda: check_post_violations(s3, bucket)),
        ("POST policy SigV2", lambda: check_post_v2(v2, s3, bucket)),
        ("POST CRLF text file", lambda: check_post_crlf_text(s3, bucket)),
        ("POST ${filename}", lambda: check_post_filename_variable(s3, bucket)),
        ("SigV2 stale Date", lambda: check_sigv2_stale_date(bucket)),
    ]
    failures = []
    for name, fn in groups:
        try:
            fn()
        except CheckFailed as e:
            print(f"FAIL [{name}]: {e}", file=sys.stderr, flush=True)
            failures.append(name)
        except ClientError as e:
            print(f"FAIL [{name}]: unexpected S3 error: {e}", file=sys.stderr, flush=True)
            failures.append(name)
        except Exception:  # a crash in one group must not hide the others
            print(f"FAIL [{name}]: {traceback.format_exc()}", file=sys.stderr, flush=True)
            failures.append(name)

    # clean up (SigV4: SigV2 bucket-level requests are under test above)
    try:
        keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in p.get("Contents", [])]
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
        for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        s3.delete_bucket(Bucket=bucket)
        try:
            s3.delete_bucket(Bucket=f"{bucket}-2")  # left over if SigV2 delete_bucket failed
        except ClientError:
            pass
        ok("cleanup: bucket deleted")
    except ClientError as e:
        print(f"FAIL [cleanup]: {e}", file=sys.stderr)
        failures.append("cleanup")

    if failures:
        print(f"boto3_sigv2_post.py: FAILED groups: {', '.join(failures)}", file=sys.stderr)
        sys.exit(1)
    print("boto3_sigv2_post.py: all checks passed")


if __name__ == "__main__":
    main()
