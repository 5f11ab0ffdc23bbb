#!/usr/bin/env bash
# Release notes for a version tag, from the commit history since the previous release tag:
#   .github/release-notes.sh v1.2.0 > notes.md
# The previous tag is the highest v*.*.* tag (by version) reachable from the tag's parent; for a release
# (v1.2.0) pre-release tags (v1.2.0-rc.1) are passed over, so its notes cover the whole cycle.
# The first release lists the whole history. Needs the full history (checkout fetch-depth: 0).
set -euo pipefail

tag=${1:?usage: release-notes.sh <tag>}
git rev-parse --verify --quiet "refs/tags/$tag" >/dev/null || { echo "no tag $tag" >&2; exit 1; }

previous=""
if git rev-parse --verify --quiet "$tag^{commit}^" >/dev/null; then
    while read -r candidate; do
        [[ $candidate =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-.+)?$ ]] || continue
        # A release is compared with the previous release; a pre-release with any earlier tag.
        if [[ $tag != *-* && $candidate == *-* ]]; then continue; fi
        previous=$candidate
        break
    done < <(git -c versionsort.suffix=- tag --merged "$tag^{commit}^" --sort=-v:refname --list 'v*.*.*')
fi

if [[ -n $previous ]]; then
    range="$previous..$tag"
    echo "## Changes since $previous"
else
    range=$tag
    echo "## Changes"
fi
echo
commits=$(git log --no-merges --reverse --format='- %s (%h)' "$range")
if [[ -n $commits ]]; then echo "$commits"; else echo "No changes."; fi
echo
if [[ -n ${GITHUB_REPOSITORY:-} && -n $previous ]]; then
    echo "**Full diff**: ${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/compare/$previous...$tag"
    echo
fi
echo "Container image, binaries, checksums, signature and attestations: see docs/releasing.md."
