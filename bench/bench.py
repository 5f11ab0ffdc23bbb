#!/usr/bin/env python3
"""`make bench` (issue 11): Orderly against an in-repo baseline, side by side, on the same database.

For each engine (PostgreSQL, SQLite) this script makes a fresh database, runs `orderly migrate up`,
creates an administrator with `orderly admin create`, starts Orderly and seeds --products products
through the API (as the administrator) and a customer account, whose access token the order runs
use. Then it starts Orderly and the baseline (bench/baseline: a minimal actix-web + SeaORM server
doing the same SQL) one after the other on that database, interleaved (round 1: Orderly, baseline;
round 2: baseline, Orderly; ...), and drives each path with wrk from a separate process:

- GET /api/v1/products/{id}, random ids of the seeded products (bench/wrk/get_product.lua)
- GET /api/v1/products?limit=50 (the first page of the default sort)
- POST /api/v1/orders, 3 random products, 1 to 3 of each, with the customer's bearer token
  (bench/wrk/place_order.lua)
- POST /api/v1/auth/token, the customer's password grant (bench/wrk/login.lua), with
  --login-connections connections: Argon2 bounds it to about one login per core per 20-40 ms,
  so more connections would only queue

Each run is preceded by a 1 s warm-up. It reports the medians over --rounds of req/s, p50 and p99,
the ratio Orderly/baseline with the targets of issue 11, each server's peak RSS (VmHWM) and its
start-to-ready time (spawn to the first 200 from /health). Any non-2xx answer or socket timeout
makes that measurement FAILED (loud warning, shown in the table). Unless --no-write, the tables,
the date, the commit and the machine replace the section between `<!-- bench:begin -->` and
`<!-- bench:end -->` in --out.

    python3 bench/bench.py --orderly-bin target/release/orderly \\
        --baseline-bin bench/baseline/target/release/baseline [--seconds 10] [--rounds 3] \\
        [--engines postgres,sqlite] [--connections 64] [--no-write]

Builds nothing (`make bench` builds both release binaries first). Needs python3, wrk, and for
PostgreSQL psql and a server at --pg-url (a database named orderly_bench is created and dropped).
Not a test: it asserts nothing and exits non-zero only when it could not run.
"""

import argparse
import datetime
import http.client
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
import urllib.parse

from benchlib import free_port, proc_status, request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WRK_DIR = os.path.join(HERE, "wrk")
JWT_SECRET = "bench-secret-that-is-long-enough-0123456789"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench admin password 1"
CUSTOMER_EMAIL = "bench-customer@example.com"
CUSTOMER_PASSWORD = "bench customer password 1"
PG_DATABASE = "orderly_bench"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# (key, label, target): the least Orderly/baseline req/s ratio (issues 11 and 22).
PATHS = [
    ("get", "GET /api/v1/products/{id}", 2.0),
    ("list", "GET /api/v1/products?limit=50", 1.2),
    ("order", "POST /api/v1/orders (3 lines)", 1.2),
    ("login", "POST /api/v1/auth/token", None),
    ("health", "GET /health", None),
]
# Issue 22: a cached GET by id costs little more than the same server's `GET /health`...
GET_OVER_HEALTH = 0.8
# ...and Orderly's peak RSS stays within this many MiB of the baseline's.
RSS_MARGIN_MIB = 20
SERVERS = ("orderly", "baseline")


def warn(message):
    print(f"\n!!! WARNING: {message}\n", file=sys.stderr, flush=True)


class Server:
    """A server process on a free port; `ready_ms` is spawn to the first 200 from /health."""

    def __init__(self, name, argv, env, workdir):
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {"PATH": os.environ.get("PATH", ""), **env, "PORT": str(self.port)}
        self.log = os.path.join(workdir, f"{name}.log")
        started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "a"))
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"{name} exited at start; see {self.log}:\n{open(self.log).read()[-2000:]}")
            if time.monotonic() - started > 60:
                self.proc.kill()
                sys.exit(f"{name} did not answer /health within 60 s; see {self.log}")
            time.sleep(0.002)
        self.ready_ms = (time.monotonic() - started) * 1000

    def peak_rss(self):
        return proc_status(self.proc.pid, "VmHWM")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# Databases and data


def psql(admin_url, sql):
    subprocess.run(["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True,
                   capture_output=True, text=True)


def orderly_env(database_url, pool):
    """Orderly's settings for every run: its defaults, except what would throttle a benchmark
    or add noise (rate limits off, a hashing queue no login run fills, no expiry job, warn logs)."""
    return {
        "APP_ENV": "development",  # the production Argon2 parameters, without production's demands
        "HOST": "127.0.0.1",
        "DATABASE_URL": database_url,
        "DATABASE_MAX_CONNECTIONS": str(pool),
        "JWT_SECRET": JWT_SECRET,
        "ACCESS_TOKEN_TTL": "86400",  # the customer's token outlives the run
        "RUST_LOG": "warn",
        "RATE_LIMIT_ENABLED": "false",
        "PASSWORD_HASH_QUEUE": "1024",
        "ORDER_EXPIRY_INTERVAL": "0",
        "ENABLE_SWAGGER_UI": "false",
    }


def baseline_env(database_url, pool):
    return {
        "HOST": "127.0.0.1",
        "DATABASE_URL": database_url,
        "DATABASE_MAX_CONNECTIONS": str(pool),
        "JWT_SECRET": JWT_SECRET,
        "ACCESS_TOKEN_TTL": "86400",
    }


def run_cli(binary, env, workdir, *argv, stdin=None):
    done = subprocess.run([binary, *argv], input=stdin, text=True, env={"PATH": os.environ.get("PATH", ""), **env},
                          cwd=workdir, capture_output=True)
    if done.returncode != 0:
        sys.exit(f"orderly {' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def token(base, email, password):
    status, body = request(base, "POST", "/api/v1/auth/token",
                           form={"grant_type": "password", "username": email, "password": password})
    if status != 200:
        sys.exit(f"logging in as {email} failed: {status} {body[:300]!r}")
    return json.loads(body)["access_token"]


def create_products(server, admin_token, count, workers=4):
    """POSTs `count` products through the API, on `workers` kept-alive connections."""
    ids = [None] * count

    def create(indices):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"}
        for n in indices:
            body = json.dumps({
                "sku": f"BENCH-{n:05}",
                "name": f"Bench product {n}",
                "description": f"Product {n} of the benchmark catalogue",
                "price": {"amount": 100 + (n * 37) % 9900, "currency": "EUR"},
                "stock": 100_000_000,
            })
            conn.request("POST", "/api/v1/products", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 201:
                sys.exit(f"creating product {n} failed: {resp.status} {data[:300]!r}")
            ids[n] = json.loads(data)["id"]
        conn.close()

    threads = [threading.Thread(target=create, args=(range(i, count, workers),)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(i is None for i in ids):
        sys.exit("seeding products failed (see above)")
    return ids


def prepare(engine, args, orderly, workdir):
    """A fresh, migrated, seeded database: returns its URL, the product ids and the customer's token."""
    if engine == "sqlite":
        url = f"sqlite://{workdir}/bench.db?mode=rwc"
    else:
        admin_url = args.pg_url.rstrip("/") + "/postgres"
        psql(admin_url, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        psql(admin_url, f"CREATE DATABASE {PG_DATABASE}")
        url = args.pg_url.rstrip("/") + "/" + PG_DATABASE
    env = orderly_env(url, args.pool)
    started = time.monotonic()
    run_cli(orderly, env, workdir, "migrate", "up")
    run_cli(orderly, env, workdir, "admin", "create", "--email", ADMIN_EMAIL, "--password-stdin",
            stdin=ADMIN_PASSWORD + "\n")
    server = Server("orderly-seed", [orderly, "serve"], env, workdir)
    try:
        ids = create_products(server, token(server.base, ADMIN_EMAIL, ADMIN_PASSWORD), args.products)
        status, body = request(server.base, "POST", "/api/v1/users", body={
            "email": CUSTOMER_EMAIL, "password": CUSTOMER_PASSWORD, "name": "Bench Customer"})
        if status != 201:
            sys.exit(f"registering the customer failed: {status} {body[:300]!r}")
        customer = token(server.base, CUSTOMER_EMAIL, CUSTOMER_PASSWORD)
    finally:
        server.stop()
    print(f"[{engine}] migrated and seeded {len(ids)} products in {time.monotonic() - started:.1f} s",
          file=sys.stderr, flush=True)
    return url, ids, customer


def drop(engine, args):
    if engine == "postgres":
        psql(args.pg_url.rstrip("/") + "/postgres", f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


# ---------------------------------------------------------------------------------------------
# Load


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def wrk(base, path_key, seconds, args, env):
    if path_key == "get":  # the script picks the id
        target, script, conns = "/api/v1/products", "get_product.lua", args.connections
    elif path_key == "list":
        target, script, conns = "/api/v1/products?limit=50", None, args.connections
    elif path_key == "order":
        target, script, conns = "/api/v1/orders", "place_order.lua", args.connections
    elif path_key == "health":
        target, script, conns = "/health", None, args.connections
    else:
        target, script, conns = "/api/v1/auth/token", "login.lua", args.login_connections
    argv = ["wrk", f"-t{min(args.threads, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency",
            "--timeout", "5s"]
    if script:
        argv += ["-s", os.path.join(WRK_DIR, script)]
    argv.append(base + target)
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if done.returncode != 0 or not rps:
        warn(f"wrk failed on {path_key}: {done.stderr.strip()} {out[-500:]}")
        return None
    lat = {p: float(v) * UNITS_MS[u]
           for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\b", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)),
        "p50": lat.get("50"),
        "p99": lat.get("99"),
        "requests": int(requests.group(1)) if requests else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "timeouts": int(sock.group(4)) if sock else 0,
        "socket_errors": sum(int(g) for g in sock.groups()[:3]) if sock else 0,
    }


def probe(base, path_key, ids, customer):
    """One request like wrk's, to show what a failing path answers."""
    if path_key == "get":
        return request(base, "GET", f"/api/v1/products/{ids[0]}")
    if path_key == "list":
        return request(base, "GET", "/api/v1/products?limit=50")
    if path_key == "health":
        return request(base, "GET", "/health")
    if path_key == "order":
        return request(base, "POST", "/api/v1/orders", headers={"Authorization": f"Bearer {customer}"},
                       body={"items": [{"product_id": i, "quantity": 1} for i in ids[:3]]})
    return request(base, "POST", "/api/v1/auth/token", form={
        "grant_type": "password", "username": CUSTOMER_EMAIL, "password": CUSTOMER_PASSWORD})


def error_answers(base):
    """The server's own count of its 4xx and 5xx answers since it started, by route and status,
    from its `/metrics` (Orderly's `http_requests_total`); empty for a server without them."""
    try:
        status, body = request(base, "GET", "/metrics", timeout=5)
    except OSError:
        return []
    if status != 200:
        return []
    return [line for line in body.decode(errors="replace").splitlines()
            if line.startswith("http_requests_total{") and re.search(r'status="[45]\d\d"', line)]


def run_engine(engine, args, orderly, baseline):
    results = {s: {p: [] for p, _, _ in PATHS if p in args.paths} for s in SERVERS}
    resources = {s: {"rss": [], "ready": []} for s in SERVERS}
    with tempfile.TemporaryDirectory(prefix="orderly-bench-") as workdir:
        url, ids, customer = prepare(engine, args, orderly, workdir)
        ids_file = os.path.join(workdir, "ids.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(ids) + "\n")
        wrk_env = {
            "BENCH_IDS_FILE": ids_file,
            "BENCH_TOKEN": customer,
            "BENCH_LOGIN_BODY": urllib.parse.urlencode({
                "grant_type": "password", "username": CUSTOMER_EMAIL, "password": CUSTOMER_PASSWORD}),
        }
        commands = {
            "orderly": ([orderly, "serve"], orderly_env(url, args.pool)),
            "baseline": ([baseline], baseline_env(url, args.pool)),
        }
        try:
            for round_no in range(args.rounds):
                order = SERVERS if round_no % 2 == 0 else tuple(reversed(SERVERS))
                for name in order:
                    argv, env = commands[name]
                    server = Server(name, argv, env, workdir)
                    resources[name]["ready"].append(server.ready_ms)
                    for path_key in results[name]:
                        wrk(server.base, path_key, 1, args, wrk_env)  # warm-up
                        run = wrk(server.base, path_key, args.seconds, args, wrk_env)
                        if run is None:
                            continue
                        if run["non2xx"] or run["timeouts"]:
                            status, body = probe(server.base, path_key, ids, customer)
                            warn(f"[{engine}] {name} {path_key}: {run['non2xx']} non-2xx answers and "
                                 f"{run['timeouts']} timeouts of {run['requests']} requests: this "
                                 f"measurement FAILED. One request now answers {status}: {body[:300]!r}")
                            counted = error_answers(server.base)
                            if counted:
                                warn(f"[{engine}] {name}'s own count of its error answers so far:\n"
                                     + "\n".join(counted))
                        results[name][path_key].append(run)
                        print(f"[{engine}] round {round_no + 1} {name:8} {path_key:5} "
                              f"{run['rps']:9,.0f} req/s  p50 {fmt_ms(run['p50'])}  p99 {fmt_ms(run['p99'])}"
                              f"  non-2xx {run['non2xx']}", file=sys.stderr, flush=True)
                    resources[name]["rss"].append(server.peak_rss())
                    server.stop()
        finally:
            drop(engine, args)
    return results, resources


# ---------------------------------------------------------------------------------------------
# Report


def fmt_ms(ms):
    if ms is None:
        return "n/a"
    return f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"


def summary(runs):
    """Medians over rounds, and the failures summed."""
    if not runs:
        return None
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50": statistics.median(r["p50"] for r in runs if r["p50"] is not None),
        "p99": statistics.median(r["p99"] for r in runs if r["p99"] is not None),
        "non2xx": sum(r["non2xx"] for r in runs),
        "timeouts": sum(r["timeouts"] for r in runs),
        "rounds": len(runs),
    }


def failed(s):
    return s is None or s["non2xx"] > 0 or s["timeouts"] > 0


def cell(s):
    if s is None:
        return "not measured"
    text = f"{s['rps']:,.0f}"
    if failed(s):
        text += f" **FAILED: {s['non2xx']} non-2xx, {s['timeouts']} timeouts**"
    return text


def engine_table(engine, results):
    lines = [
        f"| {engine}: path | Orderly req/s | p50 | p99 | Baseline req/s | p50 | p99 "
        f"| Orderly/baseline | Target | Throughput target | p99 <= baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for key, label, target in PATHS:
        if key not in results["orderly"]:
            continue
        o, b = summary(results["orderly"][key]), summary(results["baseline"][key])
        if o is None or b is None:
            lines.append(f"| {label} | {cell(o)} | | | {cell(b)} | | | | | not measured | |")
            continue
        ratio = o["rps"] / b["rps"] if b["rps"] else float("nan")
        broken = failed(o) or failed(b)
        met = "n/a (failed run)" if broken else (
            "no target" if target is None else ("met" if ratio >= target else "**not met**"))
        p99_met = "n/a (failed run)" if broken else ("met" if o["p99"] <= b["p99"] else "**not met**")
        lines.append(
            f"| {label} | {cell(o)} | {fmt_ms(o['p50'])} | {fmt_ms(o['p99'])} "
            f"| {cell(b)} | {fmt_ms(b['p50'])} | {fmt_ms(b['p99'])} | {ratio:.2f}x "
            f"| {'>= ' + format(target, '.1f') + 'x' if target else '(none)'} | {met} | {p99_met} |")
    return "\n".join(lines)


def cross_table(all_results):
    """Issue 11: the SQLite default at least as fast as the baseline on PostgreSQL, every path."""
    if "sqlite" not in all_results or "postgres" not in all_results:
        return None
    lines = ["| Path | Orderly on SQLite req/s | Baseline on PostgreSQL req/s | Ratio | SQLite Orderly >= PostgreSQL baseline |",
             "|---|---:|---:|---:|---|"]
    for key, label, _ in PATHS:
        if key == "health":  # a yardstick of each server, not an engine's work
            continue
        runs_o = all_results["sqlite"][0]["orderly"].get(key)
        runs_b = all_results["postgres"][0]["baseline"].get(key)
        o, b = summary(runs_o or []), summary(runs_b or [])
        if o is None or b is None:
            continue
        ratio = o["rps"] / b["rps"] if b["rps"] else float("nan")
        met = "n/a (failed run)" if failed(o) or failed(b) else ("met" if ratio >= 1.0 else "**not met**")
        lines.append(f"| {label} | {cell(o)} | {cell(b)} | {ratio:.2f}x | {met} |")
    return "\n".join(lines)


def layers_table(all_results):
    """Issue 22: what Orderly's layers add to a cached read, against its own `GET /health`."""
    lines = [f"| Engine | Orderly GET by id req/s | Orderly GET /health req/s | Ratio "
             f"| GET by id >= {GET_OVER_HEALTH}x /health |", "|---|---:|---:|---:|---|"]
    for engine, (results, _) in all_results.items():
        get, health = summary(results["orderly"].get("get", [])), summary(results["orderly"].get("health", []))
        if get is None or health is None:
            continue
        ratio = get["rps"] / health["rps"] if health["rps"] else float("nan")
        met = "n/a (failed run)" if failed(get) or failed(health) else (
            "met" if ratio >= GET_OVER_HEALTH else "**not met**")
        lines.append(f"| {engine} | {cell(get)} | {cell(health)} | {ratio:.2f}x | {met} |")
    return "\n".join(lines) if len(lines) > 2 else None


def resource_table(all_results):
    lines = ["| Engine | Server | Peak RSS (VmHWM), median | Start to first /health 200, median "
             f"| RSS within {RSS_MARGIN_MIB} MiB of the baseline |",
             "|---|---|---:|---:|---|"]
    for engine, (_, resources) in all_results.items():
        medians = {name: statistics.median([r for r in resources[name]["rss"] if r is not None] or [float("nan")])
                   for name in SERVERS}
        for name in SERVERS:
            ready = resources[name]["ready"]
            if not ready or medians[name] != medians[name]:
                lines.append(f"| {engine} | {name} | n/a | n/a | |")
                continue
            over = medians["orderly"] - medians["baseline"]
            verdict = "" if name == "baseline" else (
                f"{'met' if over <= RSS_MARGIN_MIB else '**not met**'} ({over:+.1f} MiB)")
            lines.append(f"| {engine} | {'Orderly' if name == 'orderly' else 'baseline'} "
                         f"| {medians[name]:.1f} MiB | {statistics.median(ready):.0f} ms | {verdict} |")
    return "\n".join(lines)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine(load_at_start):
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} cores, "
            f"{mem_kib / 2**20:.1f} GiB; load average {load_at_start} at start, {load_average()} at the end")


def commit_of(repo):
    try:
        sha = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "crates", "migrations",
                                "Cargo.toml", "Cargo.lock"], capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes under crates/ or migrations/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(all_results, args, load_at_start):
    parts = []
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"Measured {date} by `bench/bench.py` on {machine(load_at_start)}. Orderly release build of "
        f"commit {args.commit or commit_of(ROOT)}; the baseline from `bench/baseline`. "
        f"wrk `-t{args.threads} -c{args.connections} -d{args.seconds}s --latency` "
        f"(login: `-c{args.login_connections}`) after a 1 s warm-up, {args.rounds} interleaved "
        f"round(s), medians; {args.products:,} products; both servers with a pool of {args.pool} "
        f"connections and one worker per core.")
    for engine, (results, _) in all_results.items():
        parts.append(engine_table("PostgreSQL" if engine == "postgres" else "SQLite", results))
    for table in (cross_table(all_results), layers_table(all_results)):
        if table:
            parts.append(table)
    parts.append(resource_table(all_results))
    return "\n\n".join(parts)


def write_section(path, text):
    with open(path) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"{path} has no {BEGIN} ... {END} section to replace")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orderly-bin", default=os.path.join(ROOT, "target/release/orderly"))
    parser.add_argument("--baseline-bin", default=os.path.join(HERE, "baseline/target/release/baseline"))
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, medians reported (default 3)")
    parser.add_argument("--engines", default="postgres,sqlite", help="comma-separated: postgres, sqlite")
    parser.add_argument("--paths", default="get,list,order,login,health",
                        help="comma-separated: get, list, order, login, health")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--login-connections", type=int, default=8, help="wrk connections for login (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--products", type=int, default=10_000, help="products seeded (default 10000)")
    parser.add_argument("--pool", type=int, default=10,
                        help="database pool size of both servers (default 10, Orderly's default)")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (no database); orderly_bench is created there and dropped")
    parser.add_argument("--commit", help="the commit the Orderly binary was built from (default: git HEAD here)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs/performance.md"))
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args()
    args.paths = [p for p in args.paths.split(",") if p]
    engines = [e for e in args.engines.split(",") if e]
    for engine in engines:
        if engine not in ("postgres", "sqlite"):
            sys.exit(f"unknown engine {engine!r}: postgres or sqlite")
    for p in args.paths:
        if p not in {key for key, _, _ in PATHS}:
            sys.exit(f"unknown path {p!r}")
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian/Ubuntu: apt-get install wrk)")
    if "postgres" in engines and not shutil.which("psql"):
        sys.exit("psql is needed for the PostgreSQL runs (apt-get install postgresql-client), or pass --engines sqlite")
    orderly, baseline = os.path.abspath(args.orderly_bin), os.path.abspath(args.baseline_bin)
    for binary in (orderly, baseline):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is not an executable: build it first (make bench does)")

    load_at_start = load_average()
    all_results = {}
    for engine in engines:
        all_results[engine] = run_engine(engine, args, orderly, baseline)
    text = report(all_results, args, load_at_start)
    print(text)
    if any(failed(summary(runs)) for results, _ in all_results.values()
           for per_path in results.values() for runs in per_path.values()):
        warn("some measurements FAILED (non-2xx answers or timeouts): see the table")
    if not args.no_write:
        write_section(args.out, text)
        print(f"\nwritten to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
