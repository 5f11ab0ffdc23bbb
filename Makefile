# One-line targets over cargo. `make` (or `make help`) lists them.
# .ci/run runs the same checks with the same commands on a bare Linux box.

CARGO             ?= cargo
ORDERLY           := $(CARGO) run -p orderly-server --bin orderly --
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL    ?= redis://127.0.0.1:6379
# The inner layers whose line coverage must stay at or above 90% (SPEC.md section 10).
COVERAGE_PKGS     := -p orderly-domain -p orderly-application
# Framework crates the inner layers must never pull in (STYLE.md, "Cargo enforces the dependency rule").
# Matches a crate name (or its `-`/`_` family: actix-web, tokio-macros, garde_derive...) at the start of a
# `cargo tree` line, after the tree characters. Keep in step with .ci/run.
FORBIDDEN_DEPS    := ^[^[:alnum:]]*(actix|sea-orm|sea-query|sqlx|tokio|utoipa|garde|config|prometheus|metrics|opentelemetry|tracing-opentelemetry)([-_][[:alnum:]_-]*)? v[0-9]

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

.PHONY: help run demo test test-pg lint fmt fmt-check check deps-check coverage coverage-html \
	coverage-tools migrate-up migrate-down migrate-status migrate-fresh db-create config-check \
	openapi e2e client-check contract supply-chain scaleout k8s-check bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

run: ## Run the server (the `serve` command) with the configuration from the environment / .env
	$(ORDERLY) serve

demo: ## First run: load demo data (the `seed` command: an admin, ~20 products; prints the password once), then serve
	$(ORDERLY) seed
	$(ORDERLY) serve

test: ## Run every test of the workspace (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)
	$(CARGO) test --workspace --all-targets --locked

test-pg: ## Run the tests with TEST_DATABASE_URL and TEST_REDIS_URL pointing at the local PostgreSQL and Redis
	TEST_DATABASE_URL='$(TEST_DATABASE_URL)' TEST_REDIS_URL='$(TEST_REDIS_URL)' $(CARGO) test --workspace --all-targets --locked

lint: ## Clippy on every target, warnings are errors
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

fmt-check: ## Fail if the code is not formatted
	$(CARGO) fmt --all -- --check

check: fmt-check deps-check lint test client-check contract ## Everything CI checks except coverage: fmt-check, deps-check, lint, test, client-check, contract

deps-check: ## Fail if orderly-domain or orderly-application depends on a framework crate
	@for p in orderly-domain orderly-application; do tree=$$($(CARGO) tree --locked -p $$p -e normal); if bad=$$(grep -E '$(FORBIDDEN_DEPS)' <<<"$$tree"); then echo "deps-check: $$p must not depend on:" >&2; echo "$$bad" >&2; exit 1; fi; echo "deps-check: $$p is free of framework crates"; done

coverage-tools: ## Install cargo-llvm-cov and llvm-tools-preview if missing (`coverage` does it for you)
	@command -v cargo-llvm-cov >/dev/null || $(CARGO) install cargo-llvm-cov --locked
	@if command -v rustup >/dev/null && ! rustup component list --installed | grep -q '^llvm-tools'; then rustup component add llvm-tools-preview; fi

coverage: coverage-tools ## Line coverage of domain + application: print the summary, fail under 90%
	$(CARGO) llvm-cov $(COVERAGE_PKGS) --locked --summary-only --fail-under-lines 90

coverage-html: coverage-tools ## Coverage of domain + application as HTML in coverage/html/
	$(CARGO) llvm-cov $(COVERAGE_PKGS) --locked --html --output-dir coverage

migrate-up: ## Apply every pending migration
	$(ORDERLY) migrate up

migrate-down: ## Roll back the last migration
	$(ORDERLY) migrate down

migrate-status: ## Show which migrations are applied
	$(ORDERLY) migrate status

migrate-fresh: ## Drop everything and apply every migration again (destroys data)
	$(ORDERLY) migrate fresh

db-create: ## Create the database DATABASE_URL names (PostgreSQL) or its SQLite file, if missing
	$(ORDERLY) db create

config-check: ## Check the configuration (environment / .env) and print the effective settings, secrets redacted
	$(ORDERLY) config check

openapi: ## Regenerate docs/openapi-v1.json and docs/openapi-v2.json from the code (the committed copies CI compares against)
	$(CARGO) run -q -p orderly-server --bin orderly -- openapi v1 > docs/openapi-v1.json.tmp || { rm -f docs/openapi-v1.json.tmp; exit 1; }; mv docs/openapi-v1.json.tmp docs/openapi-v1.json
	$(CARGO) run -q -p orderly-server --bin orderly -- openapi v2 > docs/openapi-v2.json.tmp || { rm -f docs/openapi-v2.json.tmp; exit 1; }; mv docs/openapi-v2.json.tmp docs/openapi-v2.json

e2e: ## Optional: Swagger UI in headless Chromium: every GET, browsing products, authorize, order, pay (needs chromium, node, npm, curl)
	bash e2e/run.sh

client-check: ## TypeScript types from docs/openapi-v1.json and -v2.json (pinned openapi-typescript) and a client per version under tsc --strict (needs node, npm; .ci/run runs it)
	bash e2e/typescript.sh

contract: ## schemathesis (pinned, in a venv under target/) checks the server against its OpenAPI document (needs python3-venv, curl; .ci/run runs it)
	bash e2e/contract.sh

supply-chain: ## cargo-deny (licenses, bans, sources; offline) and the workflow lint (pinned tools under target/; .ci/run runs it)
	bash .ci/supply-chain.sh

scaleout: ## Three instances behind HAProxy, PgBouncer in transaction mode, shared Redis and NATS: flows, keyed retries across instances, shared limits, cache, events once, no oversell, SIGKILL under load (needs haproxy, pgbouncer, psql, python3; .ci/run runs it)
	bash e2e/scaleout.sh

k8s-check: ## Render the Kubernetes manifests and check them offline: schemas, every setting, the drain (.ci/run runs it)
	bash deploy/kubernetes/check.sh

bench: ## Throughput of Orderly against the in-repo baseline (bench/baseline) on PostgreSQL and SQLite; writes docs/performance.md (needs wrk, psql; BENCH_ARGS='--no-write --engines sqlite ...')
	$(CARGO) build --release --locked -p orderly-server --bin orderly
	$(CARGO) build --release --locked --manifest-path bench/baseline/Cargo.toml
	@command -v wrk >/dev/null || { echo "bench: wrk is needed (Debian/Ubuntu: apt-get install wrk)" >&2; exit 1; }
	@orderly_dir=$$($(CARGO) metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/'); \
	baseline_dir=$$($(CARGO) metadata --manifest-path bench/baseline/Cargo.toml --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/'); \
	set -x; python3 bench/bench.py --orderly-bin "$$orderly_dir/release/orderly" --baseline-bin "$$baseline_dir/release/baseline" $(BENCH_ARGS)

clean: ## Remove build artefacts and coverage output
	$(CARGO) clean
	rm -rf coverage lcov.info
