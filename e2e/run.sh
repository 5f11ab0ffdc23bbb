#!/usr/bin/env bash
# Optional end-to-end check, as a person would do it: in headless Chromium, Swagger UI registers a
# user, logs in with the OAuth2 password flow ("Authorize") and places an order. Not part of
# .ci/run (it needs Chromium and npm): run it with `make e2e` after changing the API or its docs.
#
# Needs: /usr/bin/chromium (Debian: apt-get install chromium), node + npm, curl, python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=${E2E_PORT:-3555}
base="http://127.0.0.1:$port"
work=$(mktemp -d)
cargo build -q -p orderly-server --bin orderly
bin="$PWD/target/debug/orderly"
[[ -d e2e/node_modules/playwright-core ]] || (cd e2e && npm install --no-save --silent playwright-core@1)

export PORT=$port DATABASE_URL="sqlite://$work/orderly.db?mode=rwc" JWT_SECRET=e2e-secret-0123456789abcdef0123456789
"$bin" serve > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "$base/health" >/dev/null && break; sleep 0.2; done

echo 'an e2e admin password' | "$bin" admin create --email admin@e2e.example --password-stdin >/dev/null
token=$(curl -fs -X POST "$base/api/v1/auth/token" \
    -d 'grant_type=password&username=admin@e2e.example&password=an e2e admin password' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
product=$(curl -fs -X POST "$base/api/v1/products" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' \
    -d '{"sku": "E2E-1", "name": "Keyboard", "price": {"amount": 4999, "currency": "EUR"}, "stock": 3}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

BASE=$base PRODUCT_ID=$product SCREENSHOT="$PWD/target/swagger-ui.png" node e2e/swagger-ui.mjs
echo "e2e: passed (screenshot: target/swagger-ui.png)"
