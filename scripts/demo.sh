#!/usr/bin/env bash
# The main job on a fresh machine: build archiver, back a real directory up into a new local
# repository, restore it, and prove the restore is byte-identical. Usage: scripts/demo.sh [DIR]
# (default DIR: this project's src/ and docs/). Everything is written under a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo build --release (the first build takes several minutes)"
cargo build --release
bin=$PWD/target/release/archiver
work=$(mktemp -d "${TMPDIR:-/tmp}/archiver-demo.XXXXXX")
export ARCHIVER_REPO=$work/repo ARCHIVER_KEYFILE=$work/archiver.key ARCHIVER_CACHEDIR=$work/cache
src=("${@:-$PWD/src}")
[ $# -eq 0 ] && src+=("$PWD/docs")
echo "== repository, key and cache under $work"
"$bin" keygen
echo "== archiver create --print-stats demo-1 ${src[*]}"
"$bin" create --print-stats demo-1 "${src[@]}"
echo "== a second, unchanged backup stores almost nothing new"
"$bin" create --print-stats demo-2 "${src[@]}"
echo "== archiver list -v"
"$bin" list -v
echo "== archiver extract demo-1 -C $work/restore"
"$bin" extract demo-1 -C "$work/restore"
for s in "${src[@]}"; do
  rel=$(realpath -s "$s" | sed 's|^/||')
  diff -r "$s" "$work/restore/$rel"
done
echo "== restored tree is byte-identical to the source"
