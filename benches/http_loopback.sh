#!/usr/bin/env bash
# HTTP repository throughput against a local one (issue 5: at least 80% of it).
#
# Runs the release binary's `create` (first backup into an empty repository) and `extract` (of that
# archive into an empty directory) on the large-file data set, once into a local repository and
# once through `archiver serve` on 127.0.0.1 (its store on the same disk), in the same run,
# alternating which goes first. Prints each run (wall seconds, the client's peak RSS), then medians,
# MB/s, and HTTP ÷ local throughput.
#
# Usage: benches/http_loopback.sh            (build first: cargo build --release)
# Env:   ARCHIVER  binary (default target/release/archiver)
#        DATA      data directory (default: the nightly toolchain's lib/, the peers.sh large-file
#                  set, else 256 MiB generated: half random, half repetitive)
#        RUNS      runs (default 5)        WORK  scratch directory (default $TMPDIR/httpbench)
#        TLS=1     serve HTTPS (a self-signed certificate made with openssl; the client trusts it)
set -euo pipefail
ARCHIVER=${ARCHIVER:-$PWD/target/release/archiver}
RUNS=${RUNS:-5}
WORK=${WORK:-${TMPDIR:-/tmp}/httpbench}
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

SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
TLS_ARGS=()
if [ "${TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" \
    -out "$WORK/cert.pem" -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE 2>/dev/null
  TLS_ARGS=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  export ARCHIVER_CACERT=$WORK/cert.pem
fi
"$ARCHIVER" serve --listen 127.0.0.1:0 --store "$WORK/store" --allow-create "${TLS_ARGS[@]}" 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q 'https*://' "$WORK/serve.log" && break; sleep 0.1; done
ADDR=$(grep -o 'https*://[^/]*' "$WORK/serve.log" | head -1)
[ -n "$ADDR" ] || { echo "archiver serve did not start: $(cat "$WORK/serve.log")" >&2; exit 1; }

# Runs a command; appends "wall_s peak_MB" to $WORK/t.
timed() {
  /usr/bin/time -o "$WORK/t1" -f '%e %M' "$@" || { echo "failed: $*" >&2; exit 1; }
  awk '{printf "%s %d ", $1, $2 / 1024}' "$WORK/t1" >>"$WORK/t"
}
# One create + extract; prints "create_s create_MB extract_s extract_MB". $1: local|http, $2: run.
one() {
  local kind=$1 r=$2 repo
  if [ "$kind" = local ]; then repo=$WORK/local$r; else repo=$ADDR/r$r; fi
  export ARCHIVER_REPO=$repo ARCHIVER_KEYFILE=$WORK/$kind$r.key ARCHIVER_CACHEDIR=$WORK/$kind$r.cache
  "$ARCHIVER" keygen >/dev/null 2>&1
  : >"$WORK/t"
  timed "$ARCHIVER" -q create big "$DATA"
  timed "$ARCHIVER" -q extract big -C "$WORK/out"
  if [ "$r" = 1 ]; then diff -r "$DATA" "$WORK/out$DATA" >/dev/null || { echo "$kind: restored tree differs" >&2; exit 1; }; fi
  rm -rf "$WORK/out" "$WORK/$kind$r.cache" "$WORK/local$r" "$WORK/store/r$r"
  cat "$WORK/t"; echo
}

echo "data: $DATA ($files files, $((bytes / 1000000)) MB); $(nproc) cores; server $ADDR; $RUNS runs"
declare -a lc le hc he
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) = 1 ]; then order="local http"; else order="http local"; fi
  for kind in $order; do
    read -r c cm e em < <(one "$kind" "$r") || true
    [ -n "${em:-}" ] || { echo "run $r $kind failed" >&2; exit 1; }
    printf 'run %d %-5s create %6.2f s %4d MB   extract %6.2f s %4d MB\n' "$r" "$kind" "$c" "$cm" "$e" "$em"
    if [ "$kind" = local ]; then lc+=("$c"); le+=("$e"); else hc+=("$c"); he+=("$e"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
report() { # label local... -- http...
  local label=$1 l h; l=$(median "${@:2:$RUNS}"); h=$(median "${@:$((RUNS + 2))}")
  awk -v L="$label" -v l="$l" -v h="$h" -v b="$bytes" 'BEGIN {
    printf "%-8s local %6.2f s %6.1f MB/s   http %6.2f s %6.1f MB/s   http/local throughput %.2f\n",
      L, l, b / 1e6 / l, h, b / 1e6 / h, l / h }'
}
echo "medians of $RUNS runs:"
report create "${lc[@]}" "${hc[@]}"
report extract "${le[@]}" "${he[@]}"
