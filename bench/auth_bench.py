#!/usr/bin/env python3
"""Abuse-resistance figures for docs/performance.md: peak memory under a login flood, and the
cost of checking access tokens against the account (ADR 0013) on GET /api/v1/users/me.

Runs the release binary (build it first: cargo build --release -p orderly-server) on a fresh
SQLite database in a temporary directory, with the production Argon2 parameters (APP_ENV=development),
and drives it from this separate process (the flood) and from wrk (the throughput runs).

    python3 bench/auth_bench.py [--binary target/release/orderly] [--accounts 200] [--seconds 10]

Prints a Markdown report. Needs python3 and wrk (Debian: apt-get install wrk). Not a test: it
asserts nothing and never runs in the test suite.
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import free_port, proc_status, request

PASSWORD = "flood password 12345"


class Server:
    def __init__(self, binary, workdir, extra_env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "APP_ENV": "development",
            "PORT": str(self.port),
            "DATABASE_URL": f"sqlite://{workdir}/bench.db?mode=rwc",
            "JWT_SECRET": "bench-secret-that-is-long-enough-0123456789",
            "TRUSTED_PROXIES": "127.0.0.1",
            "RUST_LOG": "warn",
            "ORDER_EXPIRY_INTERVAL": "0",
        }
        env.update(extra_env)
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "serve"], env=env, cwd=workdir,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "server.log"), "a"),
        )
        while True:
            try:
                status, _ = request(self.base, "GET", "/health", timeout=1)
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"the server exited; see {workdir}/server.log")
            time.sleep(0.01)
        self.ready_ms = (time.monotonic() - started) * 1000

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def register_accounts(base, count):
    """Registers `count` accounts, each from its own client address (the auth-ip limit is per address)."""
    emails = [f"flood-{n}@example.com" for n in range(count)]

    def register(chunk):
        for n in chunk:
            status, body = request(
                base, "POST", "/api/v1/users",
                body={"email": emails[n], "password": PASSWORD, "name": f"Flood {n}"},
                headers={"X-Forwarded-For": f"10.1.{n // 250}.{n % 250 + 1}"},
            )
            if status != 201:
                sys.exit(f"registration {n} failed: {status} {body[:200]!r}")

    threads = [threading.Thread(target=register, args=(range(i, count, 2),)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return emails


def login_flood(server, emails):
    """Every account logs in at the same moment, each from its own address."""
    barrier = threading.Barrier(len(emails))
    results = [None] * len(emails)

    def login(n):
        barrier.wait()
        started = time.monotonic()
        status, _ = request(
            server.base, "POST", "/api/v1/auth/token",
            form={"grant_type": "password", "username": emails[n], "password": PASSWORD},
            headers={"X-Forwarded-For": f"10.2.{n // 250}.{n % 250 + 1}"},
        )
        results[n] = (status, time.monotonic() - started)

    rss_before = int(proc_status(server.proc.pid, "VmRSS"))
    threads = [threading.Thread(target=login, args=(n,)) for n in range(len(emails))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    counts = {}
    for status, _ in results:
        counts[status] = counts.get(status, 0) + 1
    slowest = max(seconds for _, seconds in results)
    return {
        "rss_before": rss_before,
        "peak": int(proc_status(server.proc.pid, "VmHWM")),
        "rss_after": int(proc_status(server.proc.pid, "VmRSS")),
        "counts": counts,
        "slowest_s": slowest,
    }


def wrk(url, token, seconds):
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat.get("50"), lat.get("99"), int(non2xx.group(1)) if non2xx else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/orderly")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    binary = os.path.abspath(args.binary)
    cores = os.cpu_count()
    print(f"# Abuse-resistance figures\n\nMachine: {platform.machine()}, {cores} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB; "
          f"binary {args.binary}; SQLite; APP_ENV=development (production Argon2 parameters).\n")

    with tempfile.TemporaryDirectory() as workdir:
        # 1. The login flood, with the default hashing bound (one slot per core, 16 waiting).
        server = Server(binary, workdir, {})
        emails = register_accounts(server.base, args.accounts)
        flood = login_flood(server, emails)
        server.stop()
        counts = ", ".join(f"{n} x {status}" for status, n in sorted(flood["counts"].items()))
        print(f"## Login flood: {args.accounts} parallel logins, distinct accounts and addresses\n")
        print("| RSS before | Peak RSS (VmHWM) | RSS after | Answers | Slowest answer |")
        print("|---|---|---|---|---|")
        print(f"| {flood['rss_before']} MiB | {flood['peak']} MiB | {flood['rss_after']} MiB "
              f"| {counts} | {flood['slowest_s']:.2f} s |\n")

        # 2. The token check on GET /users/me: cached (the default), uncached, and without limits.
        print(f"## GET /api/v1/users/me, one user, wrk -t2 -c32 -d{args.seconds}s\n")
        print("| Configuration | req/s | p50 | p99 | non-2xx |")
        print("|---|---|---|---|---|")
        runs = [
            ("AUTH_CACHE_TTL=5 (default), rate limits on", {"AUTH_CACHE_TTL": "5"}),
            ("AUTH_CACHE_TTL=0 (account read on every request), rate limits on", {"AUTH_CACHE_TTL": "0"}),
            ("AUTH_CACHE_TTL=5, RATE_LIMIT_ENABLED=false", {"AUTH_CACHE_TTL": "5", "RATE_LIMIT_ENABLED": "false"}),
        ]
        for label, extra in runs:
            # A quota no run reaches, so that the limiter's cost is measured, not its refusals.
            env = {"RATE_LIMIT_AUTHENTICATED": "1000000000/1m", **extra}
            server = Server(binary, workdir, env)
            status, body = request(
                server.base, "POST", "/api/v1/auth/token",
                form={"grant_type": "password", "username": emails[0], "password": PASSWORD},
            )
            token = json.loads(body)["access_token"]
            rps, p50, p99, non2xx = wrk(server.base + "/api/v1/users/me", token, args.seconds)
            server.stop()
            print(f"| {label} | {rps:,.0f} | {p50} | {p99} | {non2xx} |")
        print(f"\nStart to first `/health` 200 (last run): {server.ready_ms:.0f} ms.")


if __name__ == "__main__":
    main()
