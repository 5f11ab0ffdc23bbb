#!/usr/bin/env bash
# Browser check, as a person would do it: in headless Chromium, Swagger UI registers a user,
# authorizes with the OAuth2 password flow (asking for a username and a password only), browses
# the catalogue, orders and pays; executes every GET operation and checks that each request went
# to that operation's own path; and keeps the authorization across a reload (e2e/swagger-ui.mjs).
# Not part of .ci/run (it needs Chromium): run it with `make e2e` after changing the API or its docs.
#
# Needs: cargo, curl, node + npm (playwright-core is installed from npm into e2e/node_modules; it
# drives the system's Chromium and downloads no browser), Chromium at /usr/bin/chromium (Debian:
# apt-get install chromium) or at $CHROMIUM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source e2e/lib.sh
require cargo curl node npm
chromium=${CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || { echo "e2e: no Chromium at $chromium (apt-get install chromium, or set CHROMIUM)" >&2; exit 1; }

port=${E2E_PORT:-3555}
base="http://127.0.0.1:$port"
ORDERLY=$(build_orderly)
[[ -d e2e/node_modules/playwright-core ]] || (cd e2e && npm install --no-save --silent playwright-core@1)

work=$(mktemp -d)
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
start_server "$port" "$work"

# The catalogue the newcomer browses, made by an administrator.
token=$(admin_token "$base" admin@e2e.example 'an e2e admin password')
skus=()
for product in 'E2E-KB|Mechanical keyboard|8999' 'E2E-MOUSE|Wireless mouse|2999' 'E2E-HUB|USB-C hub|4599'; do
    IFS='|' read -r sku name amount <<<"$product"
    create_product "$base" "$token" \
        "{\"sku\": \"$sku\", \"name\": \"$name\", \"price\": {\"amount\": $amount, \"currency\": \"EUR\"}, \"stock\": 10}" >/dev/null
    skus+=("$sku")
done

screenshot="$(target_dir)/swagger-ui.png"
BASE=$base PRODUCT_SKUS=$(IFS=,; echo "${skus[*]}") CHROMIUM=$chromium SCREENSHOT=$screenshot \
    node e2e/swagger-ui.mjs
echo "e2e: passed (screenshot: $screenshot)"
