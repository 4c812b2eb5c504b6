#!/usr/bin/env bash
# Memory and time at scale (issue 17): a tree of N small files (1 KiB to 16 KiB of pseudo-random
# bytes, 1,000 per directory) is backed up, listed, restored, checked and deleted by archiver, and
# backed up, listed, restored and checked by restic on the same tree; each step runs under
# /usr/bin/time -v and the table gives its wall seconds and peak RSS (MB). With several N (the
# issue's 20000 200000 1000000), the last lines give archiver's peak RSS at the largest N over
# the smallest, per step (the aim: at most 1.3).
# Usage: benches/scale.sh [N ...]     (ARCHIVER=path, RESTIC=path or none, OUT=dir to override)
set -eu
SIZES=${*:-20000 200000}
ARCHIVER=${ARCHIVER:-$PWD/target/release/archiver}
RESTIC=${RESTIC:-$(command -v restic || true)}
[ "$RESTIC" = none ] && RESTIC=
OUT=${OUT:-${TMPDIR:-/tmp}/scale-bench}
mkdir -p "$OUT"
TABLE=$OUT/table.txt
: > "$TABLE"

# measure TOOL STEP N CMD...: runs CMD under /usr/bin/time, appends "TOOL STEP N seconds MB".
measure() {
  local tool=$1 step=$2 n=$3; shift 3
  sync # what an earlier step wrote is on disk: its writeback does not slow this one
  /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" > "$OUT/$tool-$step-$n.out" 2> "$OUT/$tool-$step-$n.err" || {
    echo "$tool $step $n FAILED (see $OUT/$tool-$step-$n.err)"; tail -3 "$OUT/$tool-$step-$n.err"; }
  read -r secs kb < <(tail -1 "$OUT/time.txt")
  printf '%-8s %-8s %8s %9s s %7s MB\n' "$tool" "$step" "$n" "$secs" "$((kb / 1024))" | tee -a "$TABLE"
}

for n in $SIZES; do
  tree=$OUT/tree-$n
  if [ ! -f "$tree.done" ]; then
    rm -rf "$tree"
    python3 - "$tree" "$n" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(n)
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:05d}")
    if i % 1000 == 0:
        os.makedirs(d)
    with open(os.path.join(d, f"f{i:07d}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 16384)))
PY
    touch "$tree.done"
  fi
  w=$OUT/work-$n
  rm -rf "$w"; mkdir -p "$w"
  A="$ARCHIVER --keyfile $w/key --repo $w/repo --cachedir $w/cache"
  $A keygen > /dev/null 2>&1
  measure archiver create "$n" $A create "s$n" "$tree"
  measure archiver ls "$n" $A ls "s$n"
  measure archiver extract "$n" $A extract -C "$w/out" "s$n"
  diff -r "$tree" "$w/out/${tree#/}" > /dev/null || echo "archiver extract $n: the restored tree differs"
  rm -rf "$w/out"
  measure archiver fsck "$n" $A fsck
  measure archiver delete "$n" $A delete "s$n"
  if [ -n "$RESTIC" ]; then
    export RESTIC_REPOSITORY=$w/restic RESTIC_PASSWORD=bench
    "$RESTIC" init > /dev/null 2>&1
    measure restic create "$n" "$RESTIC" backup -q "$tree"
    measure restic ls "$n" "$RESTIC" ls latest
    measure restic extract "$n" "$RESTIC" restore latest --target "$w/rout"
    rm -rf "$w/rout"
    measure restic fsck "$n" "$RESTIC" check
  fi
  rm -rf "$w"
done

python3 - "$TABLE" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if "FAILED" not in l]
mb = {(r[0], r[1], int(r[2])): int(r[5]) for r in rows}
ns = sorted({k[2] for k in mb})
if len(ns) > 1:
    lo, hi = ns[0], ns[-1]
    for step in ["create", "ls", "extract", "fsck", "delete"]:
        if ("archiver", step, lo) in mb and ("archiver", step, hi) in mb:
            a, b = mb[("archiver", step, lo)], mb[("archiver", step, hi)]
            print(f"archiver {step:<8} peak RSS at {hi} / at {lo}: {b} / {a} MB = {b / max(a, 1):.2f}")
PY
