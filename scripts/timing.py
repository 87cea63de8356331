#!/usr/bin/env python3
"""Can a client tell who has an account from how long a failed login takes, or
a forgot-password request?

Sends failed password logins of three kinds, interleaved in random order on one
keep-alive connection: an unknown email, a known email with a wrong password, and a
passwordless (OwnID) account. Every answer must be the same 401 and body; the script
prints the median and 90th percentile of each kind and the ratios of the medians.

With --forgot it sends POST /auth/password/forgot instead (the server with mail on,
written as files): an unknown address, a known one (a fresh account each time, so
each gets a mail), a passwordless one, and a known one over its mail limit. Every
answer must be the same 202 and body, and the largest / smallest median at most
--max-ratio (1.1), or the script exits 1.

Without --url it builds (if needed) and starts target/release/gatehouse on a free port
with a fresh data directory, the default argon2 parameters and the rate limits off.
With --url it uses a running server, whose rate limits must be off
(GATEHOUSE_RATE_LIMIT__ENABLED=false): the logins would be locked out otherwise.

Standard library only.
"""

import argparse
import base64
import http.client
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("unknown email", "wrong password", "passwordless")
REFUSED = {"message": "Invalid credentials"}


def listening_port(path):
    """The port of the server's own "listening ... address=127.0.0.1:PORT" line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            found = re.search(r"listening.*address=127\.0\.0\.1:(\d+)", line)
            if found:
                return int(found.group(1))
    return None


def start_server(binary, mail=False):
    data = tempfile.mkdtemp(prefix="gatehouse-timing-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env["GATEHOUSE_JWT_SECRET"] = secrets.token_hex(32)
    env["GATEHOUSE_RATE_LIMIT__ENABLED"] = "false"
    # The passwordless accounts are registered with OwnID data: OwnID must be on.
    env["GATEHOUSE_OWNID__SHARED_SECRETS"] = base64.b64encode(secrets.token_bytes(32)).decode()
    # Warnings only, but the line that says where it listens.
    env["GATEHOUSE_LOG"] = "warn,gatehouse::cli=info"
    if mail:
        env["GATEHOUSE_MAIL__ENABLED"] = "true"
        env["GATEHOUSE_HTTP__PUBLIC_URL"] = "https://gatehouse.example"
    log = open(os.path.join(data, "server.log"), "wb")
    # Port 0, then the port the server itself says it bound: a server already running
    # on some port (a `gatehouse serve` on 8080) is never the one measured.
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    port = None
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"the server exited: see {log.name}")
        port = port or listening_port(log.name)
        try:
            if port:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return proc, f"http://127.0.0.1:{port}", data
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not become healthy")


class Client:
    def __init__(self, url):
        parsed = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=60)

    def post(self, path, body):
        """Returns status, parsed body and the seconds from sending to the last byte."""
        payload = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        start = time.perf_counter()
        self.conn.request("POST", path, payload, headers)
        res = self.conn.getresponse()
        data = res.read()
        elapsed = time.perf_counter() - start
        return res.status, json.loads(data) if data else None, elapsed


def address():
    # The same length for every kind, so the request bodies are the same size.
    return f"timing-{secrets.token_hex(6)}@example.com"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (rate limits off) instead of starting one")
    parser.add_argument("--count", type=int, default=300, help="logins of each kind (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed logins of each kind first (default 20)")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gatehouse"))
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    parser.add_argument("--seed", type=int, help="seed of the random order")
    parser.add_argument("--forgot", action="store_true", help="time POST /auth/password/forgot instead")
    parser.add_argument("--max-ratio", type=float, default=1.1, help="--forgot: the largest median ratio allowed")
    args = parser.parse_args()

    proc = data = None
    url = args.url
    if url is None:
        if not args.no_build:
            subprocess.run(["cargo", "build", "--release", "--bin", "gatehouse"], cwd=ROOT, check=True)
        proc, url, data = start_server(args.binary, mail=args.forgot)
    try:
        client = Client(url)
        if args.forgot:
            return forgot(client, url, args)
        known, passwordless = address(), address()
        status, body, _ = client.post("/auth/register", {"email": known, "password": "the-right-password"})
        assert status == 200, (status, body)
        status, body, _ = client.post("/auth/register", {"email": passwordless, "ownIdData": "opaque-device-data"})
        assert status == 200, (status, body)
        attempts = {
            "unknown email": lambda: {"email": address(), "password": "wrong-password"},
            "wrong password": lambda: {"email": known, "password": "wrong-password"},
            "passwordless": lambda: {"email": passwordless, "password": "wrong-password"},
        }
        rng = random.Random(args.seed)
        order = [k for k in KINDS for _ in range(args.count)]
        rng.shuffle(order)
        warmup = [k for k in KINDS for _ in range(args.warmup)]
        rng.shuffle(warmup)
        times = {k: [] for k in KINDS}
        for i, kind in enumerate(warmup + order):
            status, body, elapsed = client.post("/auth/login", attempts[kind]())
            if (status, body) != (401, REFUSED):
                sys.exit(f"{kind}: expected 401 {REFUSED}, got {status} {body}")
            if i >= len(warmup):
                times[kind].append(elapsed * 1000)

        print(f"{args.count} failed logins of each kind, interleaved, against {url}")
        print(f"{'kind':<16} {'median ms':>10} {'p90 ms':>10}")
        medians = {}
        for kind in KINDS:
            ms = sorted(times[kind])
            medians[kind] = statistics.median(ms)
            p90 = statistics.quantiles(ms, n=10)[8]
            print(f"{kind:<16} {medians[kind]:>10.2f} {p90:>10.2f}")
        base = medians["unknown email"]
        for kind in KINDS[1:]:
            print(f"median ratio {kind} / unknown email: {medians[kind] / base:.3f}")
        spread = max(medians.values()) / min(medians.values())
        print(f"largest / smallest median: {spread:.3f}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(data, ignore_errors=True)


FORGOT_KINDS = ("unknown", "known", "passwordless", "over limit")
ACCEPTED = {"message": "If an account with a password exists for this address, a link to reset it is on its way."}


def forgot(client, url, args):
    fresh = []
    for _ in range(args.count + args.warmup):
        email = address()
        status, body, _ = client.post("/auth/register", {"email": email, "password": "the-right-password"})
        assert status == 200, (status, body)
        fresh.append(email)
    passwordless, limited = address(), address()
    status, body, _ = client.post("/auth/register", {"email": passwordless, "ownIdData": "opaque-device-data"})
    assert status == 200, (status, body)
    status, body, _ = client.post("/auth/register", {"email": limited, "password": "the-right-password"})
    assert status == 200, (status, body)
    status, body, _ = client.post("/auth/password/forgot", {"email": limited})
    assert (status, body) == (202, ACCEPTED), (status, body)
    requests = {
        "unknown": lambda: {"email": address()},
        "known": lambda: {"email": fresh.pop()},
        "passwordless": lambda: {"email": passwordless},
        "over limit": lambda: {"email": limited},
    }
    rng = random.Random(args.seed)
    order = [k for k in FORGOT_KINDS for _ in range(args.count)]
    rng.shuffle(order)
    warmup = [k for k in FORGOT_KINDS for _ in range(args.warmup)]
    rng.shuffle(warmup)
    times = {k: [] for k in FORGOT_KINDS}
    for i, kind in enumerate(warmup + order):
        status, body, elapsed = client.post("/auth/password/forgot", requests[kind]())
        if (status, body) != (202, ACCEPTED):
            sys.exit(f"{kind}: expected 202 {ACCEPTED}, got {status} {body}")
        if i >= len(warmup):
            times[kind].append(elapsed * 1000)
    print(f"{args.count} forgot-password requests of each kind, interleaved, against {url}")
    print(f"{'kind':<16} {'median ms':>10} {'p90 ms':>10}")
    medians = {}
    for kind in FORGOT_KINDS:
        ms = sorted(times[kind])
        medians[kind] = statistics.median(ms)
        p90 = statistics.quantiles(ms, n=10)[8]
        print(f"{kind:<16} {medians[kind]:>10.2f} {p90:>10.2f}")
    spread = max(medians.values()) / min(medians.values())
    print(f"largest / smallest median: {spread:.3f} (at most {args.max_ratio})")
    if spread > args.max_ratio:
        sys.exit(1)


if __name__ == "__main__":
    main()
