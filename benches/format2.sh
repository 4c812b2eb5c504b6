#!/usr/bin/env bash
# The cost of format 2 sealing (issue 16: blocks sealed to readers with a per-transaction X25519
# key, Padme padding) against the previous format, in one run: ../shared/bench/peers.sh with the
# archiver of the previous format (PREV, a binary built from the commit before format 2, e.g.
# 6178ba5) and this one (NEW), alternating, ROUNDS times; prints the median wall seconds of each
# step for both, their ratio, and the median repository sizes.
# Usage: PREV=/path/to/old/archiver benches/format2.sh [ROUNDS]
set -eu
ROUNDS=${1:-5}
NEW=${NEW:-$PWD/target/release/archiver}
PREV=${PREV:?set PREV to an archiver built before format 2 (git worktree add ../prev 6178ba5; cargo build --release there)}
PEERS=${PEERS:-$(dirname "$0")/../../shared/bench/peers.sh}
OUT=${OUT:-${TMPDIR:-/tmp}/format2-bench}
mkdir -p "$OUT"
rm -f "$OUT"/*.log
for i in $(seq "$ROUNDS"); do
  for v in prev new; do
    bin=$PREV; [ $v = new ] && bin=$NEW
    ARCHIVER=$bin WORK=$OUT/work bash "$PEERS" archiver >> "$OUT/$v.log" 2>&1
  done
done
python3 - "$OUT" <<'EOF'
import re, statistics, sys
out = sys.argv[1]
def read(v):
    steps, sizes = {}, {}
    for line in open(f"{out}/{v}.log"):
        m = re.match(r"archiver (\S+)\s+([\d.]+) s\s+(\d+) MB", line)
        if m:
            steps.setdefault(m[1], []).append(float(m[2]))
        m = re.match(r"archiver repo MB: big-first (\d+), edits \+(-?\d+), new version \+(-?\d+), final (\d+)", line)
        if m:
            for k, x in zip(["big-first", "edits", "new-version", "final"], m.groups()):
                sizes.setdefault(k, []).append(int(x))
        if "FAILED" in line or "differs" in line:
            print(f"{v}: {line.strip()}")
    return steps, sizes
(ps, pz), (ns, nz) = read("prev"), read("new")
print(f"{'step':<18} {'format 1 s':>10} {'format 2 s':>10} {'ratio':>7}   (medians of {len(ps.get('big-first', []))} alternating runs)")
for k in ps:
    a, b = statistics.median(ps[k]), statistics.median(ns[k])
    print(f"{k:<18} {a:>10.2f} {b:>10.2f} {b / a:>7.3f}")
for k in pz:
    a, b = statistics.median(pz[k]), statistics.median(nz[k])
    print(f"repo MB {k:<10} {a:>10} {b:>10} {b / max(a, 1):>7.3f}")
EOF
