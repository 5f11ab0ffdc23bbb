#!/usr/bin/env python3
"""Stalled request bodies (ADR 0028): what N clients that send half a body and stop cost the server,
and whether it keeps serving others meanwhile. Figures for docs/performance.md.

Starts the binary (build it first: cargo build -p orderly-server, or --release) on a fresh SQLite
database in a temporary directory, on localhost, then opens N connections that each send the head of
`POST /api/v1/users` with `Content-Length: BODY` and half of that body, and stop. Meanwhile it
samples the server's resident memory (/proc/<pid>/status VmRSS and VmHWM, the peak) and the latency
of `GET /health` on fresh connections, every 100 ms, until every stalled connection has been
answered or closed, or --hold seconds have passed. Then it closes everything and stops the server.

    python3 bench/stalls.py [--binary target/debug/orderly] [--connections 2000] [--body 60000]
                            [--request-timeout 5] [--hold 30]

Standard library only. Bounded: at most 10,000 connections and 120 s. Not a test: it asserts
nothing and never runs in the test suite.
"""

import argparse
import os
import platform
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, proc_status, request

MAX_CONNECTIONS = 10_000
MAX_HOLD = 120


def start_server(binary, workdir, port, request_timeout):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "development",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite://{workdir}/bench.db?mode=rwc",
        "JWT_SECRET": "bench-secret-that-is-long-enough-0123456789",
        "RUST_LOG": "warn",
        "ORDER_EXPIRY_INTERVAL": "0",
        "RATE_LIMIT_ENABLED": "false",
        "CLIENT_REQUEST_TIMEOUT": str(request_timeout),
    }
    proc = subprocess.Popen(
        [binary, "serve"], env=env, cwd=workdir,
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "server.log"), "a"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(3000):
        try:
            if request(base, "GET", "/health", timeout=1)[0] == 200:
                return proc, base
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"the server exited; see {workdir}/server.log")
        time.sleep(0.01)
    proc.kill()
    sys.exit("the server did not answer /health within 30 s")


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/debug/orderly")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--body", type=int, default=60_000, help="announced body length, bytes")
    parser.add_argument("--request-timeout", type=int, default=5, help="CLIENT_REQUEST_TIMEOUT")
    parser.add_argument("--hold", type=float, default=30, help="give up after this many seconds")
    args = parser.parse_args()
    connections = max(1, min(args.connections, MAX_CONNECTIONS))
    hold = max(1.0, min(args.hold, MAX_HOLD))
    binary = os.path.abspath(args.binary)

    # Room for the stalled sockets, here and in the server (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 2 * connections + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    workdir = tempfile.mkdtemp(prefix="orderly-stalls-")
    proc, base = start_server(binary, workdir, free_port(), args.request_timeout)
    try:
        port = int(base.rsplit(":", 1)[1])
        time.sleep(0.5)
        rss_before = proc_status(proc.pid, "VmRSS")
        half = b'{"email":"stall@example.com","password":"' + b"x" * (args.body // 2)
        half = half[: args.body // 2]
        head = (
            "POST /api/v1/users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {args.body}\r\n\r\n"
        ).encode()

        selector = selectors.DefaultSelector()
        opened_at = time.monotonic()
        failed = 0
        for _ in range(connections):
            sock = socket.socket()
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(head + half)
            except OSError:
                failed += 1
                sock.close()
                continue
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, {"data": b"", "started": opened_at})
        opened = len(selector.get_map())
        open_seconds = time.monotonic() - opened_at

        answered_408 = closed = 0
        closed_after = []
        latencies = []
        peak_rss = rss_before
        next_sample = time.monotonic()
        give_up = opened_at + hold
        while selector.get_map() and time.monotonic() < give_up:
            for key, _ in selector.select(timeout=0.05):
                sock, state = key.fileobj, key.data
                try:
                    chunk = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    state["data"] += chunk
                    continue
                if state["data"].startswith(b"HTTP/1.1 408"):
                    answered_408 += 1
                closed += 1
                closed_after.append(time.monotonic() - opened_at)
                selector.unregister(sock)
                sock.close()
            now = time.monotonic()
            if now >= next_sample:
                next_sample = now + 0.1
                rss = proc_status(proc.pid, "VmRSS")
                if rss is not None:
                    peak_rss = max(peak_rss, rss)
                started = time.monotonic()
                try:
                    status, _ = request(base, "GET", "/health", timeout=10)
                except OSError:
                    status = None
                latencies.append((time.monotonic() - started, status))
        still_open = len(selector.get_map())
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
        time.sleep(0.5)
        rss_after = proc_status(proc.pid, "VmRSS")
        hwm = proc_status(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    served = [seconds for seconds, status in latencies if status == 200]
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"Binary: {binary}; CLIENT_REQUEST_TIMEOUT={args.request_timeout}")
    print(f"Stalled bodies: {opened} opened ({failed} refused) in {open_seconds:.2f} s, each with "
          f"{len(half)} of {args.body} bytes sent")
    print(f"Answered 408 then closed: {answered_408}; closed in all: {closed}; "
          f"still open after {hold:.0f} s: {still_open}")
    if closed_after:
        print(f"Closed after (from the first connection): first {min(closed_after):.2f} s, "
              f"median {percentile(closed_after, 0.5):.2f} s, last {max(closed_after):.2f} s")
    print(f"Server RSS: before {rss_before:.0f} MiB, peak sampled {peak_rss:.0f} MiB, "
          f"peak VmHWM {hwm:.0f} MiB, after {rss_after:.0f} MiB")
    print(f"GET /health meanwhile: {len(served)} of {len(latencies)} answered 200; "
          f"p50 {percentile(served, 0.5) * 1000:.1f} ms, p99 {percentile(served, 0.99) * 1000:.1f} ms, "
          f"max {max(served, default=float('nan')) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
