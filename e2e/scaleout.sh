#!/usr/bin/env bash
# Scale-out check (issue 22): three instances of `orderly serve` behind HAProxy
# (deploy/haproxy/scaleout.cfg, as shipped), sharing one fresh PostgreSQL database through PgBouncer
# in transaction mode (a run-time copy of deploy/pgbouncer/pgbouncer.ini), one Redis and one NATS
# JetStream. e2e/scaleout.py drives the flows through the balancer (register, log in, products,
# order, pay, cancel and refund) and checks what must hold across instances: Idempotency-Key
# retries landing on different instances act once, a rate limit holds across instances, a product
# change is seen at once by every instance's cache, every event reaches the NATS stream exactly
# once and a webhook receiver once (a second copy only for a delivery the killed instance sent but
# did not record: at least once, as documented), concurrent orders never oversell, and an instance
# killed with SIGKILL under load costs no GET and no keyed request (the balancer retries them; a
# key the dead instance had claimed answers 409 IDEMPOTENCY_KEY_IN_USE until its 60 s lease ends,
# and the client's retry then succeeds), and serves again once restarted. It prints each check, a
# summary and the time taken (about 75 s, most of it waiting for those leases); any failure fails
# the script.
# `make scaleout` runs it, and so does .ci/run.
#
# Needs: cargo (to find, and only when missing build, the debug binary), curl, psql, python3
# (standard library only), haproxy and pgbouncer (installed with apt-get when missing and running
# as root), a PostgreSQL at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# whose user may create databases (the check makes one and drops it), a Redis at TEST_REDIS_URL
# (default redis://127.0.0.1:6379) and a NATS server with JetStream at TEST_NATS_URL (default
# nats://127.0.0.1:4222). Everything it starts, and its database, NATS stream and Redis keys, are
# its own (named after its process id) and gone when it ends.
#
# SCALEOUT_POOL_MODE=session runs PgBouncer in session mode (DATABASE_POOLER=none), for comparison;
# SCALEOUT_DATABASE_POOLER=none with transaction mode shows what the setting prevents (it fails).
# SCALEOUT_KEEP=1 keeps the work directory (logs, configurations) for a look afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source e2e/lib.sh
require cargo curl psql python3
started=$SECONDS
instances=3
pool_mode=${SCALEOUT_POOL_MODE:-transaction}
case $pool_mode in
    transaction) pooler=transaction pool_size=5 ;;
    session) pooler=none pool_size=40 ;;
    *) echo "scaleout: SCALEOUT_POOL_MODE must be transaction or session (got $pool_mode)" >&2; exit 1 ;;
esac
pooler=${SCALEOUT_DATABASE_POOLER:-$pooler}
say() { printf 'scaleout: %s\n' "$*"; }

# --- Tools: haproxy and pgbouncer from apt-get when missing (as .ci/run installs nats-server).
missing=()
for tool in haproxy pgbouncer; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]} (apt-get install -y ${missing[*]})"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
            || { echo "scaleout: apt-get could not install ${missing[*]}" >&2; exit 1; }
        # Installing may have started the packages' own services (on their default ports): this
        # check starts its own and leaves those alone.
    else
        echo "scaleout: missing ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

# --- The binary: the debug build, as CI's test step left it; built only when missing.
ORDERLY="$(target_dir)/debug/orderly"
if [[ ! -x $ORDERLY ]]; then
    say "building $ORDERLY (cargo build -p orderly-server --bin orderly --locked)"
    cargo build --quiet --locked -p orderly-server --bin orderly >&2
fi
[[ -x $ORDERLY ]] || { echo "scaleout: no binary at $ORDERLY" >&2; exit 1; }

# --- Where things are. One name for everything this run owns.
run_id="scaleout_$$"
admin_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
nats_url=${TEST_NATS_URL:-nats://127.0.0.1:4222}
# postgres[ql]://[user[:password]@]host[:port][/db][?query]: the parts PgBouncer needs.
rest=${admin_url#*://}
userinfo=""; [[ $rest == *@* ]] && { userinfo=${rest%%@*}; rest=${rest#*@}; }
hostport=${rest%%[/?]*}
query=""; [[ $rest == *\?* ]] && query="?${rest#*\?}"
pg_user=${userinfo%%:*}; pg_user=${pg_user:-postgres}
pg_password=""; [[ $userinfo == *:* ]] && pg_password=${userinfo#*:}
pg_host=${hostport%:*}; pg_port=${hostport##*:}
[[ $hostport == *:* ]] || { pg_host=$hostport; pg_port=5432; }
pg_host=${pg_host:-127.0.0.1}
database=$run_id
direct_url="postgres://${userinfo:+$userinfo@}$hostport/$database$query"

work=$(mktemp -d)
# PgBouncer runs as an unprivileged user when this runs as root: it must read its configuration.
chmod 755 "$work"
read -ra ports <<<"$(python3 e2e/scaleout.py free-ports $((2 + instances)) | xargs)"
pgbouncer_port=${ports[0]} lb_port=${ports[1]} app_ports=("${ports[@]:2}")
stream="SCALEOUT_$$"
subject_prefix="scaleout$$"

# Stops what the pid files name (SIGTERM, then SIGKILL after $1 tenths of a second), in the order
# given: the balancer, then the instances (they drain), then the pool they use.
stop() {
    local tenths=$1 pids=() pid
    shift
    for pidfile in "$@"; do
        [[ -f $pidfile ]] && pid=$(cat "$pidfile") && kill "$pid" 2>/dev/null && pids+=("$pid")
    done
    for _ in $(seq "$tenths"); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
}
cleanup() {
    local status=$?
    set +e
    stop 20 "$work/haproxy.pid"
    stop 80 "$work"/app*.pid
    stop 20 "$work/pgbouncer.pid"
    NATS_URL=$nats_url python3 e2e/scaleout.py delete-stream "$stream" >/dev/null 2>&1
    python3 e2e/scaleout.py delete-redis-keys "$redis_url" "$run_id:" >/dev/null 2>&1
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 \
        || echo "scaleout: could not drop the database $database" >&2
    if [[ -n ${SCALEOUT_KEEP:-} ]]; then
        echo "scaleout: kept $work"
    else
        rm -rf "$work"
    fi
    echo "scaleout: took $((SECONDS - started)) s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The database: fresh, migrated through the direct URL (migrations take a session-level lock:
# never through a transaction pooler).
psql -q "$admin_url" -c "CREATE DATABASE $database" >/dev/null
say "database $database on $pg_host:$pg_port; migrating through the direct URL"
(cd "$work" && DATABASE_URL=$direct_url APP_ENV=test "$ORDERLY" migrate up >"$work/migrate.log" 2>&1) \
    || { cat "$work/migrate.log" >&2; exit 1; }

# --- PgBouncer: the shipped configuration with this run's port, paths, database and trust
# authentication (the local PostgreSQL trusts its clients; PgBouncer logs in as the same user).
pgbouncer_ini="$work/pgbouncer.ini"
db_line="$database = host=$pg_host port=$pg_port dbname=$database${pg_password:+ password=$pg_password}"
awk -v db_line="$db_line" -v port="$pgbouncer_port" -v mode="$pool_mode" -v size="$pool_size" \
    -v work="$work" -v admin="$pg_user" '
    BEGIN {
        set["listen_port"] = port; set["pool_mode"] = mode; set["auth_type"] = "trust"
        set["auth_file"] = work "/userlist.txt"; set["admin_users"] = admin; set["stats_users"] = admin
        set["logfile"] = work "/pgbouncer.log"
        # Small on purpose in transaction mode: three instances of ten connections each share
        # five PostgreSQL ones. (Session mode ties one to each client connection.)
        set["default_pool_size"] = size; set["reserve_pool_size"] = 0
    }
    /^\[databases\]/ { print; print db_line; section = "databases"; next }
    /^\[/ { section = $0 }
    section == "databases" && /^[a-z]/ { next }
    {
        key = $1
        if (key in set && $2 == "=") { print key " = " set[key]; done[key] = 1; next }
        print
    }
    END { for (key in set) if (!(key in done)) print key " = " set[key] }
' deploy/pgbouncer/pgbouncer.ini >"$pgbouncer_ini"
printf '"%s" ""\n' "$pg_user" >"$work/userlist.txt"
: >"$work/pgbouncer.log"
run_as=()
if [[ $(id -u) == 0 ]]; then
    # PgBouncer refuses to run as root.
    chown nobody "$work/pgbouncer.log"
    run_as=(-u nobody)
fi
pgbouncer "${run_as[@]}" "$pgbouncer_ini" >>"$work/pgbouncer.log" 2>&1 &
echo $! >"$work/pgbouncer.pid"
pooled_url="postgres://${userinfo:+$userinfo@}127.0.0.1:$pgbouncer_port/$database"
for _ in $(seq 50); do
    psql -q "$pooled_url" -c 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
done
psql -q "$pooled_url" -c 'SELECT 1' >/dev/null 2>&1 \
    || { echo "scaleout: PgBouncer did not start; its log:" >&2; cat "$work/pgbouncer.log" >&2; exit 1; }
say "PgBouncer 127.0.0.1:$pgbouncer_port, pool_mode=$pool_mode"

# --- The instances' environment: one place, used at start and by the restart of the kill check.
admin_email=admin@scaleout.example admin_password='a scale-out admin password'
cat >"$work/instance.env" <<EOF
export APP_ENV=test                     # cheap password hashing: the debug build's Argon2 is slow
export HOST=127.0.0.1
export LOG_FORMAT=json
export RUST_LOG=info,sqlx=warn,sea_orm=warn
export JWT_SECRET=scaleout-secret-0123456789abcdef0123456789
export DATABASE_URL='$pooled_url'
export DATABASE_POOLER=$pooler
export DATABASE_MIGRATION_URL='$direct_url'
export DATABASE_MAX_CONNECTIONS=10
export AUTO_MIGRATE=false
export REDIS_URL='$redis_url'
export REDIS_KEY_PREFIX=$run_id
export NATS_URL='$nats_url'
export NATS_STREAM=$stream
export NATS_SUBJECT_PREFIX=$subject_prefix
export OUTBOX_POLL_INTERVAL=100
export TRUSTED_PROXIES=127.0.0.1
export RATE_LIMIT_ENABLED=true
export RATE_LIMIT_ANONYMOUS=100000/1m
export RATE_LIMIT_AUTHENTICATED=100000/1m
export RATE_LIMIT_AUTH_PER_IP=100000/1m
export RATE_LIMIT_ORDERS=100000/1m
# The limit the check shows holding across instances (per e-mail address).
export RATE_LIMIT_AUTH_PER_ACCOUNT=5/1m
# Long: without an invalidation through Redis, another instance would serve a stale product for
# minutes, so a fresh read everywhere right after a change proves the invalidation.
export PRODUCT_CACHE_TTL=300
export WEBHOOK_ALLOW_PRIVATE_NETWORKS=true
export WEBHOOK_TIMEOUT=5
export ORDER_EXPIRY_INTERVAL=2
export SHUTDOWN_TIMEOUT=5
EOF
for ((i = 1; i <= instances; i++)); do echo "export PORT_$i=${app_ports[i - 1]}" >>"$work/instance.env"; done
# Starts instance N in the background (from the work directory: no .env or orderly.toml of the
# repository applies), appending to its log and writing its pid file.
cat >"$work/start-instance.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
source '$work/instance.env'
port_var=PORT_\$1
cd '$work'
PORT=\${!port_var} '$ORDERLY' serve >>'$work/app'\$1'.log' 2>&1 &
echo \$! >'$work/app'\$1'.pid'
EOF

(cd "$work" && source "$work/instance.env" && DATABASE_URL=$direct_url \
    "$ORDERLY" admin create --email "$admin_email" --password-stdin <<<"$admin_password" >"$work/admin.log" 2>&1) \
    || { cat "$work/admin.log" >&2; exit 1; }

for ((i = 1; i <= instances; i++)); do bash "$work/start-instance.sh" "$i"; done
for ((i = 1; i <= instances; i++)); do
    port=${app_ports[i - 1]}
    for _ in $(seq 150); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready") == 200 ]] && break
        kill -0 "$(cat "$work/app$i.pid")" 2>/dev/null || break
        sleep 0.2
    done
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready") == 200 ]] \
        || { echo "scaleout: instance $i is not ready; its log:" >&2; tail -n 30 "$work/app$i.log" >&2; exit 1; }
done
say "$instances instances ready on ports ${app_ports[*]} (DATABASE_POOLER=$pooler)"

# --- HAProxy: the shipped file as it is, addresses from the environment; a second file adds the
# run's stats socket, through which the check watches servers go down and up. Fewer connections
# than the shipped default: 20000 needs 40000 file descriptors, more than a CI box may allow.
printf 'global\n    stats socket %s mode 600 level admin\n' "$work/haproxy.sock" >"$work/haproxy-run.cfg"
export ORDERLY_LISTEN=127.0.0.1:$lb_port ORDERLY_MAXCONN=1000
for ((i = 1; i <= instances; i++)); do export "ORDERLY_APP$i=127.0.0.1:${app_ports[i - 1]}"; done
haproxy -c -q -f deploy/haproxy/scaleout.cfg -f "$work/haproxy-run.cfg"
haproxy -f deploy/haproxy/scaleout.cfg -f "$work/haproxy-run.cfg" >"$work/haproxy.log" 2>&1 &
echo $! >"$work/haproxy.pid"
for _ in $(seq 50); do
    [[ -S $work/haproxy.sock ]] && curl -fs -o /dev/null "http://127.0.0.1:$lb_port/health" && break
    sleep 0.1
done
curl -fs -o /dev/null "http://127.0.0.1:$lb_port/health" \
    || { echo "scaleout: HAProxy does not answer; its log:" >&2; cat "$work/haproxy.log" >&2; exit 1; }
say "HAProxy on 127.0.0.1:$lb_port"

# --- The flows and checks.
SCALEOUT_LB="http://127.0.0.1:$lb_port" \
SCALEOUT_APPS=$(IFS=,; echo "${app_ports[*]}") \
SCALEOUT_WORK=$work \
SCALEOUT_DIRECT_URL=$direct_url \
SCALEOUT_PGBOUNCER_ADMIN_URL="postgres://${userinfo:+$userinfo@}127.0.0.1:$pgbouncer_port/pgbouncer" \
SCALEOUT_POOL_MODE=$pool_mode \
SCALEOUT_ADMIN_EMAIL=$admin_email SCALEOUT_ADMIN_PASSWORD=$admin_password \
NATS_URL=$nats_url SCALEOUT_STREAM=$stream \
    python3 e2e/scaleout.py run
