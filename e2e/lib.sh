# Shared by e2e/run.sh and e2e/contract.sh (sourced, not run): build the `orderly` binary, find it
# where cargo put it, and run a throw-away server for one check.
#
# Needs: cargo, curl.

# Every tool the check needs, or a message naming the missing ones and how to get them.
require() {
    local missing=()
    for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
    if ((${#missing[@]})); then
        echo "$0: missing ${missing[*]} (see README.md, \"Optional checks\")" >&2
        exit 1
    fi
}

# cargo's target directory: `target/` unless CARGO_TARGET_DIR or a cargo config moves it.
target_dir() {
    cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/'
}

# Builds the server and prints the path of its binary.
build_orderly() {
    cargo build --quiet --locked -p orderly-server --bin orderly >&2
    local bin
    bin="$(target_dir)/debug/orderly"
    [[ -x $bin ]] || { echo "$0: no binary at $bin after the build" >&2; exit 1; }
    echo "$bin"
}

# Starts `$ORDERLY serve` on 127.0.0.1:$1 with a fresh SQLite database in $2, and waits until it
# answers. Sets SERVER_PID, and exports the server's environment for the CLI commands that follow.
# The caller's EXIT trap stops it.
#
# Rate limits are off: a check sends hundreds of requests from one address in a few seconds, which
# the default quotas rightly refuse (429) and which would only test the limiter.
start_server() {
    local port=$1 work=$2
    export PORT=$port DATABASE_URL="sqlite://$work/orderly.db?mode=rwc" \
        JWT_SECRET=check-secret-0123456789abcdef0123456789 APP_ENV=test \
        RATE_LIMIT_ENABLED=false LOG_FORMAT=json
    "$ORDERLY" serve >"$work/serve.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    echo "$0: the server did not start; its log:" >&2
    cat "$work/serve.log" >&2
    exit 1
}

# Creates an administrator with the CLI (in the server's environment) and prints an access token.
admin_token() {
    local base=$1 email=$2 password=$3
    echo "$password" | "$ORDERLY" admin create --email "$email" --password-stdin >/dev/null
    curl -fs -X POST "$base/api/v1/auth/token" \
        --data-urlencode grant_type=password --data-urlencode "username=$email" \
        --data-urlencode "password=$password" |
        sed -E 's/.*"access_token":"([^"]*)".*/\1/'
}

# Creates a product as `token` and prints its id.
create_product() {
    local base=$1 token=$2 body=$3
    curl -fs -X POST "$base/api/v1/products" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "$body" |
        sed -E 's/.*"id":"([^"]*)".*/\1/'
}
