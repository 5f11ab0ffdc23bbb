#!/usr/bin/env bash
# Browser check, as a person would do it (e2e/swagger-ui.mjs): in headless Chromium, for each API
# version in the order Swagger UI offers them (v2, the definition it opens, then v1, picked in the
# top bar's definition selector), Swagger UI registers a user, authorizes with the OAuth2 password
# flow (asking for a username and a password only), browses the catalogue, orders and pays (v2: the
# paid order and its ETag; v1: the history entry); as the administrator made below, makes a webhook
# endpoint, reads it, rotates its secret and lists its deliveries, and opens the Webhooks section
# (the event types and their envelopes); executes every GET operation of that version's
# document and checks that each request went to that operation's own path; and keeps the
# authorization and the chosen definition across a reload.
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
admin_email=admin@e2e.example admin_password='an e2e admin password'
token=$(admin_token "$base" "$admin_email" "$admin_password")
skus=() ids=()
for product in 'E2E-KB|Mechanical keyboard|8999' 'E2E-MOUSE|Wireless mouse|2999' 'E2E-HUB|USB-C hub|4599'; do
    IFS='|' read -r sku name amount <<<"$product"
    ids+=("$(create_product "$base" "$token" \
        "{\"sku\": \"$sku\", \"name\": \"$name\", \"price\": {\"amount\": $amount, \"currency\": \"EUR\"}, \"stock\": 10}")")
    skus+=("$sku")
done

# A review of the first product, for the review paths: the administrator orders it, pays, ships,
# delivers, and reviews it (only a received product can be reviewed).
api() {
    curl -fsS -X POST "$base/api/v2$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$2"
}
order=$(api /orders "{\"items\": [{\"product_id\": \"${ids[0]}\", \"quantity\": 1}]}" |
    sed -E 's/^\{"id":"([^"]*)".*/\1/')
for action in pay ship deliver; do api "/orders/$order/transitions" "{\"action\": \"$action\"}" >/dev/null; done
api "/products/${ids[0]}/reviews" '{"rating": 5, "title": "Solid", "body": "Types well and quietly."}' >/dev/null

screenshots="$(target_dir)/swagger-ui-{version}.png"
BASE=$base PRODUCT_SKUS=$(IFS=,; echo "${skus[*]}") REVIEWED_SKU=${skus[0]} CHROMIUM=$chromium \
    ADMIN_EMAIL=$admin_email ADMIN_PASSWORD=$admin_password SCREENSHOT=$screenshots node e2e/swagger-ui.mjs
echo "e2e: passed (screenshots: ${screenshots//\{version\}/v2}, ${screenshots//\{version\}/v1})"
