#!/usr/bin/env bash
# Contract check: schemathesis generates requests from each served OpenAPI document (one per API
# version: CONTRACT_VERSIONS, default "v1 v2"), valid and invalid, and checks every answer
# against it. It runs as an administrator so that every route is
# reachable, with every check but `use_after_free` (DELETE on a product archives it: it stays
# readable with `archived: true`, as SPEC.md section 2 requires). Any failure fails the script.
# `make contract` runs it, and so does .ci/run.
#
# Needs: cargo, curl, python3 with the venv module (Debian: python3-venv). schemathesis, pinned in
# e2e/requirements-contract.txt, is installed from PyPI into a virtual environment under cargo's
# target directory, never into the system's Python.
#
# Bounded: CONTRACT_EXAMPLES cases per operation and phase (default 50), and CONTRACT_TIMEOUT
# seconds per version (default 600) after which the run is stopped and fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source e2e/lib.sh
require cargo curl python3

port=${CONTRACT_PORT:-3556}
base="http://127.0.0.1:$port"
target=$(target_dir)
venv="$target/contract-venv"
requirements=e2e/requirements-contract.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    echo "contract: installing $(grep -v '^#' "$requirements" | xargs) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "contract: python3 cannot make a virtual environment (Debian: apt-get install python3-venv)" >&2; exit 1; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

ORDERLY=$(build_orderly)
work=$(mktemp -d)
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
start_server "$port" "$work"
token=$(admin_token "$base" admin@contract.example 'a contract admin password')

# The products orders refer to (see e2e/contract_hooks.py): one per possible line, in one
# currency, with stock enough for any run.
products=()
for i in $(seq 50); do
    products+=("$(create_product "$base" "$token" \
        "{\"sku\": \"CONTRACT-$i\", \"name\": \"Contract product $i\", \"price\": {\"amount\": 100, \"currency\": \"EUR\"}, \"stock\": 1000000000}")")
done
CONTRACT_PRODUCT_IDS=$(IFS=,; echo "${products[*]}")
export CONTRACT_PRODUCT_IDS
# The currencies the server knows, from its own document (see e2e/contract_hooks.py).
CONTRACT_CURRENCIES=$(curl -fsS "$base/api-docs/v1/openapi.json" | python3 -c \
    'import json, sys; print(",".join(json.load(sys.stdin)["components"]["schemas"]["MoneyDto"]["properties"]["currency"]["enum"]))')
export CONTRACT_CURRENCIES
# The amounts v2 accepts in EUR, the currency of the script's products (see e2e/contract_hooks.py).
CONTRACT_EUR_AMOUNT=$(curl -fsS "$base/api-docs/v2/openapi.json" | python3 -c \
    'import json, sys
for money in json.load(sys.stdin)["components"]["schemas"]["Money"]["oneOf"]:
    if "EUR" in money["properties"]["currency"]["enum"]: print(money["properties"]["amount"]["pattern"])')
export CONTRACT_EUR_AMOUNT

# One worker: with two, hypothesis parses lambda sources with `ast` in two threads at once, and
# CPython 3.11 can fail that with "AST constructor recursion depth mismatch" (seen once here, on
# POST /api/v1/orders/{id}/transitions): a tool error, not a contract failure, that fails the run.
# schemathesis and hypothesis keep their state (examples that failed, to try first next time) in
# the working directory: one under target/, not the repository.
state="$target/contract-state"
mkdir -p "$state"
status=0
for version in ${CONTRACT_VERSIONS:-v1 v2}; do
    started=$SECONDS
    (cd "$state" && SCHEMATHESIS_HOOKS=contract_hooks PYTHONPATH="$OLDPWD/e2e" \
        timeout "${CONTRACT_TIMEOUT:-600}" "$venv/bin/st" --config-file "$OLDPWD/e2e/schemathesis.toml" \
        run "$base/api-docs/$version/openapi.json" \
        -H "Authorization: Bearer $token" \
        --checks all --exclude-checks use_after_free \
        --max-examples "${CONTRACT_EXAMPLES:-50}" --workers 1 \
        --report junit --report-dir "$target/contract-report/$version" \
        ${CONTRACT_SEED:+--seed "$CONTRACT_SEED"}) || run_status=$?
    echo "contract: $version: schemathesis took $((SECONDS - started)) s"
    if ((${run_status:-0} == 124)); then
        echo "contract: $version: FAILED: stopped after ${CONTRACT_TIMEOUT:-600} s" >&2
    elif ((${run_status:-0} != 0)); then
        echo "contract: $version: FAILED" >&2
    fi
    if ((${run_status:-0} != 0)); then status=$run_status; fi
    unset run_status
done
if ((status != 0)); then
    echo "contract: FAILED (the server's log: kept in $target/contract-serve.log)" >&2
    cp "$work/serve.log" "$target/contract-serve.log"
fi
exit "$status"
