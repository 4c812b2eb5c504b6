#!/usr/bin/env bash
# S3 repository throughput against a local one (issue 14: at least 80% of it).
#
# Runs the release binary's `create` (first backup into an empty repository) and `extract` (of that
# archive into an empty directory) on the large-file data set, once into a local repository and
# once into a bucket of a real S3 server on 127.0.0.1, in the same run, alternating which goes
# first. The server: s3s-fs (compiled, on disk in $WORK; `cargo install s3s-fs --version 0.14.0
# --features binary --locked`) if installed, else moto_server (`pip install 'moto[server]'`; Python,
# in memory, a few ms of CPU per request); SERVER=moto|s3s-fs chooses. Prints each run (wall seconds, the
# client's peak RSS, the S3 server's CPU seconds: on 2 cores it competes with the client), then
# medians, MB/s, and S3 ÷ local throughput; and two floors of reading from that server with
# signed curl GETs, 8 at a time: every pack whole, and every pack in 1 MiB ranges (extract's
# access pattern), with extract's throughput against the ranged one.
#
# Usage: benches/s3_loopback.sh              (build first: cargo build --release)
# Env:   ARCHIVER  binary (default target/release/archiver)
#        DATA      data directory (default: the nightly toolchain's lib/, the peers.sh large-file
#                  set, else 256 MiB generated: half random, half repetitive)
#        RUNS      runs (default 5)        WORK  scratch directory (default $TMPDIR/s3bench)
#        SERVER    s3s-fs or moto (default s3s-fs if installed)
set -euo pipefail
ARCHIVER=${ARCHIVER:-$PWD/target/release/archiver}
RUNS=${RUNS:-5}
WORK=${WORK:-${TMPDIR:-/tmp}/s3bench}
DATA=${DATA:-$HOME/.rustup/toolchains/nightly-x86_64-unknown-linux-gnu/lib}
[ -x "$ARCHIVER" ] || { echo "no binary at $ARCHIVER: cargo build --release" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK"
if [ ! -d "$DATA" ]; then
  DATA=$WORK/gen; mkdir -p "$DATA"
  for i in $(seq 0 15); do # (yes dies of SIGPIPE: no pipefail here)
    (set +o pipefail; { head -c 8M /dev/urandom; yes "line $i of repetitive text" | head -c 8M; } >"$DATA/f$i")
  done
fi
bytes=$(find "$DATA" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
files=$(find "$DATA" -type f | wc -l)
find "$DATA" -type f -exec cat {} + >/dev/null # warm the page cache

if [ -z "${SERVER:-}" ]; then if command -v s3s-fs >/dev/null; then SERVER=s3s-fs; else SERVER=moto; fi; fi
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case $SERVER in
  moto)
    command -v moto_server >/dev/null || { echo "moto_server missing: pip install 'moto[server]'" >&2; exit 1; }
    moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$! ;;
  s3s-fs)
    command -v s3s-fs >/dev/null || { echo "s3s-fs missing: cargo install s3s-fs --version 0.14.0 --features binary --locked" >&2; exit 1; }
    mkdir -p "$WORK/s3root"
    s3s-fs --host 127.0.0.1 --port "$PORT" --access-key test --secret-key test "$WORK/s3root" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$! ;;
  *) echo "SERVER must be moto or s3s-fs" >&2; exit 1 ;;
esac
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
ADDR=$AWS_ENDPOINT_URL
# Signed curl requests (s3s-fs wants the payload hash header; this is the empty body's).
export EMPTY=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
SIGN=(--aws-sigv4 aws:amz:us-east-1:s3 --user test:test -H "x-amz-content-sha256: $EMPTY")
# CPU seconds the S3 server has used so far.
server_cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$SERVER_PID/stat"; }

# Runs a command; appends "wall_s peak_MB" to $WORK/t.
timed() {
  /usr/bin/time -o "$WORK/t1" -f '%e %M' "$@" || { echo "failed: $*" >&2; exit 1; }
  awk '{printf "%s %d ", $1, $2 / 1024}' "$WORK/t1" >>"$WORK/t"
}
# One create + extract; prints "create_s create_MB extract_s extract_MB server_cpu_s". $1: local|s3, $2: run.
one() {
  local kind=$1 r=$2 repo cpu0
  if [ "$kind" = local ]; then repo=$WORK/local$r; else
    curl -sf -X PUT "${SIGN[@]}" "$ADDR/bench$r" >/dev/null ||
      { echo "cannot create bucket bench$r" >&2; exit 1; }
    repo=s3://bench$r/repo
  fi
  export ARCHIVER_REPO=$repo ARCHIVER_KEYFILE=$WORK/$kind$r.key ARCHIVER_CACHEDIR=$WORK/$kind$r.cache
  "$ARCHIVER" keygen >/dev/null 2>&1
  : >"$WORK/t"
  cpu0=$(server_cpu)
  timed "$ARCHIVER" -q create big "$DATA"
  timed "$ARCHIVER" -q extract big -C "$WORK/out"
  if [ "$r" = 1 ]; then diff -r "$DATA" "$WORK/out$DATA" >/dev/null || { echo "$kind: restored tree differs" >&2; exit 1; }; fi
  rm -rf "$WORK/out" "$WORK/$kind$r.cache" "$WORK/local$r"
  local cpu1 floor=0 ranged=0; cpu1=$(server_cpu)
  if [ "$kind" = s3 ]; then
    # The floor: the server alone sending every pack whole, 8 requests at a time (as extract).
    curl -s "${SIGN[@]}" "$ADDR/bench$r?list-type=2&prefix=repo%2Fpacks%2F" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' >"$WORK/keys"
    local t0; t0=$(date +%s.%N)
    xargs -P8 -I{} curl -sf -o /dev/null "${SIGN[@]}" "$ADDR/bench$r/{}" <"$WORK/keys"
    floor=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
    # The ranged floor: every pack read in 1 MiB ranges, 8 at a time (extract's ranged reads are
    # about that size or smaller: one window of blocks of one pack each).
    curl -s "${SIGN[@]}" "$ADDR/bench$r?list-type=2&prefix=repo%2Fpacks%2F" |
      python3 -c 'import re, sys
for k, n in re.findall(r"<Key>([^<]*)</Key>.*?<Size>(\d+)</Size>", sys.stdin.read()):
    for o in range(0, int(n), 1 << 20): print(k, o, min(o + (1 << 20), int(n)) - 1)' >"$WORK/ranges"
    t0=$(date +%s.%N)
    BASE=$ADDR/bench$r xargs -P8 -L1 sh -c 'curl -sf -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 \
      --user test:test -H "x-amz-content-sha256: $EMPTY" -r "$1-$2" "$BASE/$0"' <"$WORK/ranges"
    ranged=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
    "$ARCHIVER" -q delete big >/dev/null 2>&1 || true # frees the server's memory
    rm -rf "$WORK/s3root/bench$r" # (s3s-fs: and its disk)
  fi
  cat "$WORK/t"; awk -v a="$cpu0" -v b="$cpu1" -v f="$floor" -v g="$ranged" 'BEGIN {printf "%.1f %s %s\n", b - a, f, g}'
}

echo "data: $DATA ($files files, $((bytes / 1000000)) MB); $(nproc) cores; S3 server $ADDR ($SERVER); $RUNS runs"
declare -a lc le hc he fl_all rf_all
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) = 1 ]; then order="local s3"; else order="s3 local"; fi
  for kind in $order; do
    read -r c cm e em cpu fl rf < <(one "$kind" "$r") || true
    [ -n "${em:-}" ] || { echo "run $r $kind failed" >&2; exit 1; }
    printf 'run %d %-5s create %6.2f s %4d MB   extract %6.2f s %4d MB   S3 server CPU %5.1f s   read floors: whole %5.2f s, 1 MiB ranges %5.2f s\n' "$r" "$kind" "$c" "$cm" "$e" "$em" "$cpu" "$fl" "$rf"
    if [ "$kind" = local ]; then lc+=("$c"); le+=("$e"); else hc+=("$c"); he+=("$e"); fl_all+=("$fl"); rf_all+=("$rf"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
report() { # label local... -- s3...
  local label=$1 l h; l=$(median "${@:2:$RUNS}"); h=$(median "${@:$((RUNS + 2))}")
  awk -v L="$label" -v l="$l" -v h="$h" -v b="$bytes" 'BEGIN {
    printf "%-8s local %6.2f s %6.1f MB/s   s3 %6.2f s %6.1f MB/s   s3/local throughput %.2f\n",
      L, l, b / 1e6 / l, h, b / 1e6 / h, l / h }'
}
echo "medians of $RUNS runs:"
report create "${lc[@]}" "${hc[@]}"
report extract "${le[@]}" "${he[@]}"
f=$(median "${fl_all[@]}"); g=$(median "${rf_all[@]}"); e=$(median "${he[@]}")
awk -v f="$f" -v g="$g" -v e="$e" 'BEGIN {
  printf "server read floors (8 requests at a time): every pack whole %.2f s, in 1 MiB ranges %.2f s; s3 extract / ranged floor throughput %.2f\n", f, g, g / e }'
