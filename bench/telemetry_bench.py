#!/usr/bin/env python3
"""The cost of metrics and tracing on GET /api/v1/products/{id}, for docs/performance.md.

Runs the release binary (cargo build --release -p orderly-server) on a fresh SQLite database with
100 products, and drives GET /api/v1/products/{id} with wrk from this separate process, in four
configurations, interleaved over --rounds rounds (medians reported):

- metrics off, no trace export (METRICS_ENABLED=false)
- metrics on (the default), no trace export
- metrics on, traces exported over OTLP/HTTP to a sink in this script that accepts every batch
- metrics off, traces exported

    python3 bench/telemetry_bench.py [--binary target/release/orderly] [--seconds 8] [--rounds 3]

Needs python3 and wrk. Not a test: it asserts nothing.
"""

import argparse
import http.server
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import free_port

ADMIN_PASSWORD = "bench admin password 1"


class Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that accepts and drops every batch."""

    batches = 0

    def do_POST(self):  # noqa: N802 (the standard library's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Sink.batches += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def call(base, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def serve(binary, workdir, env_extra):
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "development",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite://{workdir}/bench.db?mode=rwc",
        "JWT_SECRET": "bench-secret-that-is-long-enough-0123456789",
        "RUST_LOG": "warn",
        "ORDER_EXPIRY_INTERVAL": "0",
        "RATE_LIMIT_ANONYMOUS": "1000000000/1m",
        **env_extra,
    }
    proc = subprocess.Popen([binary, "serve"], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=open(f"{workdir}/server.log", "a"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            return proc, base
        except OSError:
            time.sleep(0.02)
    sys.exit(f"the server did not start; see {workdir}/server.log")


def seed(binary, workdir):
    env = {"PATH": os.environ.get("PATH", ""), "APP_ENV": "development",
           "DATABASE_URL": f"sqlite://{workdir}/bench.db?mode=rwc", "RUST_LOG": "warn"}
    subprocess.run([binary, "admin", "create", "--email", "bench@example.com", "--password-stdin"],
                   input=ADMIN_PASSWORD + "\n", text=True, env=env, cwd=workdir, check=True,
                   capture_output=True)


def create_products(base, count):
    form = f"grant_type=password&username=bench%40example.com&password={ADMIN_PASSWORD.replace(' ', '+')}"
    req = urllib.request.Request(base + "/api/v1/auth/token", data=form.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    token = json.loads(urllib.request.urlopen(req, timeout=30).read())["access_token"]
    return [call(base, "POST", "/api/v1/products", {
        "sku": f"BENCH-{n:04}", "name": f"Bench product {n}",
        "price": {"amount": 100 + n, "currency": "EUR"}, "stock": 1000}, token)["id"]
        for n in range(count)]


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    to_ms = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    lat = {p: float(v) * to_ms[u]
           for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", out, re.M)}
    return rps, lat["50"], lat["99"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/orderly")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    binary = os.path.abspath(args.binary)

    sink_port = free_port()
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", sink_port), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"}
    configs = [
        ("metrics off, no trace export", {"METRICS_ENABLED": "false"}),
        ("metrics on (default), no trace export", {}),
        ("metrics on, traces exported (OTLP/HTTP)", otlp),
        ("metrics off, traces exported (OTLP/HTTP)", {"METRICS_ENABLED": "false", **otlp}),
    ]
    results = {label: [] for label, _ in configs}
    with tempfile.TemporaryDirectory() as workdir:
        seed(binary, workdir)
        proc, base = serve(binary, workdir, {})
        ids = create_products(base, 100)
        proc.terminate()
        proc.wait()
        url_path = f"/api/v1/products/{ids[len(ids) // 2]}"
        for _ in range(args.rounds):
            for label, extra in configs:
                proc, base = serve(binary, workdir, extra)
                wrk(base + url_path, 1)  # warm-up
                results[label].append(wrk(base + url_path, args.seconds))
                proc.terminate()
                proc.wait()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores; binary {args.binary}; SQLite; "
          f"wrk -t2 -c32 -d{args.seconds}s, {args.rounds} interleaved rounds, medians; "
          f"{Sink.batches} OTLP batches received by the sink.\n")
    print("| GET /api/v1/products/{id} | req/s | p50 | p99 |")
    print("|---|---|---|---|")
    for label, _ in configs:
        runs = results[label]
        rps = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        print(f"| {label} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms |")


if __name__ == "__main__":
    main()
