#!/usr/bin/env bash
# Generated-client check: can a client that nobody here wrote use the committed OpenAPI documents
# as they are? openapi-typescript turns docs/openapi-v1.json and docs/openapi-v2.json into
# TypeScript types, and `tsc --strict` type-checks a small program per version
# (e2e/typescript/v1.ts, v2.ts) that uses them through openapi-fetch: it logs in, places an order
# with an Idempotency-Key, pays it with If-Match, and reads 409 and 404 problems with their typed
# members. No server is needed: the programs are compiled, never run. Any error fails the script.
# `make client-check` runs it, and so does .ci/run.
#
# Needs: node and npm. The tools, pinned in e2e/typescript/package.json and package-lock.json, are
# installed from npm into e2e/typescript/node_modules (`npm ci`, again whenever the lock changes).
# The generated types go to a temporary directory, kept (and named) when the check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
dir=e2e/typescript
for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "typescript: $tool not found (Node.js 18.17 or later, with npm)" >&2; exit 1; }
done

stamp=$dir/node_modules/.orderly-package-lock.json
if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
    echo "typescript: installing the pinned tools (npm ci in $dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
fi
bin=$dir/node_modules/.bin
echo "typescript: openapi-typescript $("$bin/openapi-typescript" --version | grep -oE '[0-9]+\.[0-9.]+' | head -1), tsc $("$bin/tsc" --version | grep -oE '[0-9.]+$')"

work=$(mktemp -d)
failed=true
trap '$failed && echo "typescript: the generated types are kept in $work" >&2 || rm -rf "$work"' EXIT

# OPENAPI_DOCS names another directory holding openapi-v1.json and openapi-v2.json (a document
# generated but not yet committed, say).
docs=$(cd "${OPENAPI_DOCS:-docs}" && pwd)
status=0
for version in v1 v2; do
    "$bin/openapi-typescript" "$docs/openapi-$version.json" --output "$work/$version.d.ts"
    # The program imports its version's types as `orderly-api-<version>`; the compiler options are
    # the strictest that apply to code a client would write.
    cat >"$work/tsconfig.$version.json" <<EOF
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "noUncheckedIndexedAccess": true,
    "exactOptionalPropertyTypes": true,
    "noImplicitReturns": true,
    "noUnusedLocals": true,
    "noUnusedParameters": true,
    "target": "ES2022",
    "lib": ["ES2022", "DOM"],
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "types": [],
    "paths": { "orderly-api-$version": ["$work/$version.d.ts"] }
  },
  "files": ["$root/$dir/$version.ts"]
}
EOF
    if "$bin/tsc" --strict --noEmit --project "$work/tsconfig.$version.json"; then
        echo "typescript: $version.ts compiles against $docs/openapi-$version.json"
    else
        echo "typescript: FAILED: $version.ts does not compile against $docs/openapi-$version.json" >&2
        status=1
    fi
done
((status == 0)) && failed=false
exit "$status"
