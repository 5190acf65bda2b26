#!/usr/bin/env python3
"""Certificate reload under load, with boto3 and the aws CLI over https.

compat: https-only (compat-tests/run.sh runs it in its https pass)

boto3 threads PUT and GET without pause (one of them with a new client, so a new
TLS handshake, for every request) and `aws s3 cp` uploads a multipart file while
the server's certificate is replaced by a new one (lib/tls.sh issue, SIGHUP).
No request may fail, new handshakes must be shown the new certificate, and every
object must read back intact.

Env: ENDPOINT (https://127.0.0.1:PORT), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_CA_BUNDLE, JS_SERVER_PID, JS_TLS_DIR, JS_TLS_SH.
"""

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import boto3
from botocore.config import Config

ENDPOINT = os.environ["ENDPOINT"]
CA = os.environ["AWS_CA_BUNDLE"]
PID = int(os.environ["JS_SERVER_PID"])
TLS_DIR = os.environ["JS_TLS_DIR"]
TLS_SH = os.environ["JS_TLS_SH"]
HOST = urllib.parse.urlparse(ENDPOINT).hostname
PORT = urllib.parse.urlparse(ENDPOINT).port
DEADLINE = time.monotonic() + 300


def client():
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      connect_timeout=10, read_timeout=60),
    )


def presented():
    """The DER certificate a new, verified handshake is shown."""
    ctx = ssl.create_default_context(cafile=CA)
    with socket.create_connection((HOST, PORT), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=HOST) as tls:
            return tls.getpeercert(binary_form=True)


def file_der():
    with open(os.path.join(TLS_DIR, "tls.crt")) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def reload(name):
    subprocess.run(["bash", TLS_SH, "issue", TLS_DIR, name], check=True, timeout=60)
    want = file_der()
    os.kill(PID, signal.SIGHUP)
    for _ in range(100):
        if presented() == want:
            return
        time.sleep(0.05)
    raise SystemExit(f"FAIL: certificate {name} not presented within 5 s of SIGHUP")


class Load:
    def __init__(self, bucket):
        self.bucket = bucket
        self.stop = threading.Event()
        self.done = 0
        self.errors = []
        self.lock = threading.Lock()

    def worker(self, w):
        s3 = client()
        i = 0
        while not self.stop.is_set() and time.monotonic() < DEADLINE:
            c = client() if w == 0 else s3
            key = f"w{w}/{i}"
            body = os.urandom(48 * 1024)
            try:
                c.put_object(Bucket=self.bucket, Key=key, Body=body)
                got = c.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                if got != body:
                    raise RuntimeError(f"{key}: read back {len(got)} bytes that differ")
            except Exception as e:  # every failure is reported below
                with self.lock:
                    self.errors.append(f"{key}: {e!r}")
                return
            with self.lock:
                self.done += 1
            i += 1

    def wait_for(self, n):
        for _ in range(1200):
            with self.lock:
                if self.done >= n or self.errors:
                    return
            time.sleep(0.05)
        raise SystemExit(f"FAIL: clients made no progress ({self.done} < {n})")


def main():
    s3 = client()
    bucket = f"tls-reload-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    first = presented()
    if first != file_der():
        raise SystemExit("FAIL: the server does not present its certificate file")

    load = Load(bucket)
    threads = [threading.Thread(target=load.worker, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    load.wait_for(20)

    # A 40 MiB multipart upload with the aws CLI, running across the next reload.
    big = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tls-reload-big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(40 << 20))
    with open(big, "rb") as f:
        big_md5 = hashlib.md5(f.read()).hexdigest()
    with open(os.path.join(TLS_DIR, "aws-config"), "w") as f:
        f.write("[default]\nregion = us-east-1\ns3 =\n  multipart_threshold = 8MB\n"
                "  multipart_chunksize = 8MB\n  addressing_style = path\n")
    cli = subprocess.Popen(
        ["aws", "s3", "cp", big, f"s3://{bucket}/big.bin", "--endpoint-url", ENDPOINT,
         "--only-show-errors"],
        env={**os.environ, "AWS_CONFIG_FILE": os.path.join(TLS_DIR, "aws-config")},
    )

    reload("second")
    load.wait_for(load.done + 20)
    reload("third")
    load.wait_for(load.done + 20)

    rc = cli.wait(timeout=240)
    load.stop.set()
    for t in threads:
        t.join(timeout=120)
    if load.errors:
        raise SystemExit("FAIL: requests failed across the reloads:\n  " + "\n  ".join(load.errors))
    if rc != 0:
        raise SystemExit(f"FAIL: aws s3 cp across a reload exited {rc}")
    got = hashlib.md5(s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()).hexdigest()
    if got != big_md5:
        raise SystemExit("FAIL: the file uploaded across the reload reads back different")
    os.remove(big)
    print(f"ok: {load.done} boto3 PUT+GET pairs and a 40 MiB aws-cli upload across two "
          f"certificate reloads, no request failed")


if __name__ == "__main__":
    sys.exit(main())
