#!/usr/bin/env bash
# S3 repository throughput against a local one (issue 14: at least 80% of it).
#
# Runs the release binary's `create` (first backup into an empty repository) and `extract` (of that
# archive into an empty directory) on the large-file data set, once into a local repository and
# once into a bucket of a real S3 server on 127.0.0.1 (moto_server, `pip install 'moto[server]'`;
# in memory), in the same run, alternating which goes first. Prints each run (wall seconds, the
# client's peak RSS, the S3 server's CPU seconds: on 2 cores it competes with the client), then
# medians, MB/s, and S3 ÷ local throughput; and the floor of reading from that server: every pack
# fetched whole with curl, 8 at a time, and extract's throughput against it.
#
# Usage: benches/s3_loopback.sh              (build first: cargo build --release)
# Env:   ARCHIVER  binary (default target/release/archiver)
#        DATA      data directory (default: the nightly toolchain's lib/, the peers.sh large-file
#                  set, else 256 MiB generated: half random, half repetitive)
#        RUNS      runs (default 5)        WORK  scratch directory (default $TMPDIR/s3bench)
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

command -v moto_server >/dev/null || { echo "moto_server missing: pip install 'moto[server]'" >&2; exit 1; }
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
ADDR=$AWS_ENDPOINT_URL
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
    curl -sf -X PUT "$ADDR/bench$r" >/dev/null || { echo "cannot create bucket bench$r" >&2; exit 1; }
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
  local cpu1 floor=0; cpu1=$(server_cpu)
  if [ "$kind" = s3 ]; then
    # The floor: the server alone sending every pack whole, 8 requests at a time (as extract).
    curl -s "$ADDR/bench$r?list-type=2&prefix=repo/packs/" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' >"$WORK/keys"
    local t0; t0=$(date +%s.%N)
    xargs -P8 -I{} curl -sf -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 --user test:test "$ADDR/bench$r/{}" <"$WORK/keys"
    floor=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
    "$ARCHIVER" -q delete big >/dev/null 2>&1 || true # frees the server's memory
  fi
  cat "$WORK/t"; awk -v a="$cpu0" -v b="$cpu1" -v f="$floor" 'BEGIN {printf "%.1f %s\n", b - a, f}'
}

echo "data: $DATA ($files files, $((bytes / 1000000)) MB); $(nproc) cores; S3 server $ADDR (moto); $RUNS runs"
declare -a lc le hc he fl_all
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) = 1 ]; then order="local s3"; else order="s3 local"; fi
  for kind in $order; do
    read -r c cm e em cpu fl < <(one "$kind" "$r") || true
    [ -n "${em:-}" ] || { echo "run $r $kind failed" >&2; exit 1; }
    printf 'run %d %-5s create %6.2f s %4d MB   extract %6.2f s %4d MB   S3 server CPU %5.1f s   server read floor %5.2f s\n' "$r" "$kind" "$c" "$cm" "$e" "$em" "$cpu" "$fl"
    if [ "$kind" = local ]; then lc+=("$c"); le+=("$e"); else hc+=("$c"); he+=("$e"); fl_all+=("$fl"); fi
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
f=$(median "${fl_all[@]}"); e=$(median "${he[@]}")
awk -v f="$f" -v e="$e" -v b="$bytes" 'BEGIN {
  printf "server read floor %.2f s (%.1f MB/s: every pack whole, 8 at a time); s3 extract / floor throughput %.2f\n", f, b / 1e6 / f, f / e }'
