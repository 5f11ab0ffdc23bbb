#!/usr/bin/env bash
# Supply-chain checks over the dependency graph with cargo-deny (deny.toml): licenses (an
# allow-list), bans (wildcards, banned crates, duplicates as warnings) and sources (crates.io
# only), then the workflow lint (.ci/workflows.sh). Runnable on a bare Linux box with cargo.
#
# cargo-deny is built once, at a pinned version, into ${CARGO_TARGET_DIR:-target}/ci-tools (or
# CI_TOOLS_DIR) and reused while its version matches; one of that version already on PATH is
# used as it is. Here the checks run with --offline, from Cargo.lock and cargo's registry cache:
# the advisories check needs the RustSec database from GitHub, so it runs in GitHub Actions (job
# supply-chain of .github/workflows/ci.yml), which sets SUPPLY_CHAIN_ADVISORIES=1 to add it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_DENY_VERSION=0.20.2

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

tools=${CI_TOOLS_DIR:-${CARGO_TARGET_DIR:-target}/ci-tools}
deny="$tools/bin/cargo-deny"
pinned() { [[ -x $1 ]] && [[ $("$1" --version 2>/dev/null) == "cargo-deny $CARGO_DENY_VERSION" ]]; }

if pinned "$(command -v cargo-deny || true)"; then
    # Installed by the caller at the pinned version (GitHub Actions: taiki-e/install-action).
    deny=$(command -v cargo-deny)
    echo "cargo-deny $CARGO_DENY_VERSION: using $deny"
elif pinned "$deny"; then
    echo "cargo-deny $CARGO_DENY_VERSION: reusing $deny"
else
    echo "cargo-deny $CARGO_DENY_VERSION: building into $tools (once; a few minutes)"
    # A build directory of its own: the workspace's target directory may be in use by another
    # cargo, and the compiled dependencies are of no use once the binary is installed.
    build_dir=$(mktemp -d)
    trap 'rm -rf "$build_dir"' EXIT
    started=$SECONDS
    cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" \
        --root "$tools" --target-dir "$build_dir"
    rm -rf "$build_dir"
    echo "cargo-deny $CARGO_DENY_VERSION built in $((SECONDS - started)) s"
fi

checks=(licenses bans sources)
fetch=(--offline)
if [[ ${SUPPLY_CHAIN_ADVISORIES:-} == 1 ]]; then
    checks+=(advisories)
    fetch=()
fi

# cargo-deny reads the whole graph through `cargo metadata`, which needs every package of every
# platform in cargo's cache (windows-sys, android_system_properties, ...), while a build fetches
# only this platform's: on a new machine --offline failed until they were fetched.
cargo fetch --locked --quiet

started=$SECONDS
# Findings without their inclusion graphs (a few lines each); on a failure the check runs again
# with them, to show how each offending crate came in.
if ! "$deny" --locked "${fetch[@]}" --color never check --hide-inclusion-graph --show-stats "${checks[@]}"; then
    "$deny" --locked --offline --color never check "${checks[@]}" || true
    echo "cargo-deny: FAILED (deny.toml; ADR 0037)" >&2
    exit 1
fi
echo "cargo-deny ${CARGO_DENY_VERSION} (${checks[*]}): ok in $((SECONDS - started)) s"

bash .ci/workflows.sh
