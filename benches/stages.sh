#!/usr/bin/env bash
# Where a command's CPU time goes, per pipeline stage, and which stages are serial: samples the
# whole process with `perf record` (every thread), classifies each sample by its innermost frame
# (read, walk/stat, chunk, hash, compress, seal, pack, cache, decompress, write, ...), and prints
# CPU seconds per GB of input for each stage, split between the walking thread (the serial part
# of `create`) and all other threads. With the wall time on 1 and 2 cores (`taskset`), this gives
# the serial fraction and a prediction for more cores (Amdahl: wall(n) = serial + parallel / n,
# bounded below by the walking thread's CPU time).
#
#   cargo build --release && benches/stages.sh                  # create of the large-file set
#   DATA=~/.rustup/toolchains/nightly-x86_64-unknown-linux-gnu/share/doc benches/stages.sh
#   MODE=extract benches/stages.sh                              # restore instead of create
#
# Needs perf (linux-perf). Env: ARCHIVER, DATA, WORK, MODE (create | extract), FREQ (999 Hz).
set -eu
TC=${TC:-$HOME/.rustup/toolchains}
DATA=${DATA:-$TC/nightly-x86_64-unknown-linux-gnu/lib}
WORK=${WORK:-${TMPDIR:-/tmp}/stagebench}
MODE=${MODE:-create}
FREQ=${FREQ:-999}
ARCHIVER=${ARCHIVER:-$PWD/target/release/archiver}
export ARCHIVER_KEYFILE=$WORK/key ARCHIVER_REPO=$WORK/repo ARCHIVER_CACHEDIR=$WORK/cache
rm -rf "$WORK" && mkdir -p "$WORK"
"$ARCHIVER" keygen >/dev/null 2>&1
find "$DATA" -type f -exec cat {} + >/dev/null # warm the page cache
export DATA WORK ARCHIVER
MB=$(du -sm "$DATA" | cut -f1)

wall() { # cpus command...: wall seconds of the command pinned to those cpus
  local cpus=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  taskset -c "$cpus" "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

fresh() { rm -rf "$ARCHIVER_REPO" "$ARCHIVER_CACHEDIR" "$ARCHIVER_KEYFILE" "$WORK/out"; "$ARCHIVER" keygen >/dev/null 2>&1; }
case $MODE in
create)
  run() { "$ARCHIVER" create "a$RANDOM$RANDOM" "$DATA"; }
  prep() { fresh; } ;;
extract)
  fresh
  "$ARCHIVER" create a "$DATA" >/dev/null 2>&1
  run() { rm -rf "$WORK/out"; mkdir -p "$WORK/out"; "$ARCHIVER" extract a -C "$WORK/out"; }
  prep() { :; } ;;
esac

declare -a one two
for i in 1 2 3; do
  prep; one+=("$(wall 0 bash -c "$(declare -f run); run")")
  prep; two+=("$(wall 0,1 bash -c "$(declare -f run); run")")
done
prep
perf record -q -F "$FREQ" -o "$WORK/perf.data" -- bash -c "$(declare -f run); run" >/dev/null 2>&1

perf script -i "$WORK/perf.data" -F comm,pid,tid,ip,sym,dso -G >"$WORK/samples" 2>/dev/null
python3 - "$MB" "$FREQ" "$MODE" "${one[*]}" "${two[*]}" "$WORK/samples" <<'EOF'
import collections, statistics, sys
mb, freq, mode = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
one = [float(x) for x in sys.argv[4].split()]
two = [float(x) for x in sys.argv[5].split()]
RULES = [  # (stage, substrings of the innermost symbol); first match wins
    ("compress", ["ZSTD_compress", "ZSTD_encode", "HUF_", "FSE_", "HIST_", "ZSTD_build", "ZSTD_seqToCodes", "ZSTD_ldm", "ZSTD_fill", "ZSTD_reset", "ZSTD_rescale", "ZSTD_insert", "ZSTD_count"]),
    ("decompress", ["ZSTD_decompress", "ZSTD_decode", "HUF_decompress", "ZSTD_buildFSETable", "ZSTD_exec", "HUF_decode"]),
    ("seal/open", ["chacha20", "poly1305", "xchacha", "aead"]),
    ("hash", ["blake3", "_blake3"]),
    ("chunk", ["fastcdc", "cut_gear", "Chunker"]),
    ("cache (sqlite)", ["sqlite3", "pcache1", "rusqlite", "walFind", "balance_", "cellSize", "getPage", "btree"]),
    ("memcpy", ["memmove", "memcpy", "memset", "memcmp"]),
    ("alloc", ["malloc", "_int_free", "cfree", "realloc", "unlink_chunk", "calloc"]),
]
KERNEL = [  # kernel samples, by what the symbol says
    ("read (kernel copy)", ["copy_to_iter", "filemap_", "copy_page_to_iter", "folio_mark_accessed", "xas_"]),
    ("write (kernel)", ["copy_folio_from_iter", "ext4_da_write", "iomap", "generic_perform_write", "ext4_block_write", "__block_commit", "mark_buffer", "folio_batch", "clear_page", "zero_user"]),
    ("walk/stat (kernel)", ["d_lookup", "link_path_walk", "path_", "lookup_fast", "walk_component", "inode_permission", "generic_permission", "security_inode", "step_into", "ext4_getattr", "strncpy_from_user", "getname", "vfs_statx", "filldir", "ext4_readdir", "listxattr", "__legitimize", "complete_walk", "terminate_walk"]),
]
by = collections.Counter()
threads = collections.Counter()
main_tid = None
lines = [l.split() for l in open(sys.argv[6], errors="replace")]
# comm pid/tid ip sym... (dso). Every thread of the process whose main thread is `archiver`
# (extract's restorer and fetch threads have names of their own); not the shell around it.
pids = {p[1].split("/")[0] for p in lines if len(p) >= 4 and p[0] == "archiver"}
for p in lines:
    if len(p) < 4 or "/" not in p[1] or p[1].split("/")[0] not in pids:
        continue
    tid, dso = p[1].split("/")[1], p[-1]
    sym = " ".join(p[3:-1])
    threads[tid] += 1
    stage = None
    if "kernel" in dso:
        stage = next((s for s, keys in KERNEL if any(k in sym for k in keys)), "other kernel")
    else:
        stage = next((s for s, keys in RULES if any(k in sym for k in keys)), "other")
    by[(tid, stage)] += 1
# The walking thread is the process's main thread: its tid is the pid, the smallest.
archiver_tids = sorted(threads, key=int)
main_tid = archiver_tids[0] if archiver_tids else None
total = sum(threads.values())
gb = mb / 1000
print(f"{mode} of {mb:.0f} MB; wall on 1 core: {' '.join(f'{x:.2f}' for x in one)} s (median {statistics.median(one):.2f}); "
      f"on 2 cores: {' '.join(f'{x:.2f}' for x in two)} s (median {statistics.median(two):.2f}); "
      f"speedup {statistics.median(one) / statistics.median(two):.2f}x")
print(f"{'stage':22} {'walking thread':>15} {'other threads':>14}   (CPU s per GB)")
stages = sorted({s for _, s in by}, key=lambda s: -sum(v for (t, st), v in by.items() if st == s))
cpu_main = cpu_other = 0.0
for s in stages:
    m = by[(main_tid, s)] / freq / gb
    o = sum(v for (t, st), v in by.items() if st == s and t != main_tid) / freq / gb
    cpu_main += m
    cpu_other += o
    print(f"{s:22} {m:15.3f} {o:14.3f}")
print(f"{'total':22} {cpu_main:15.3f} {cpu_other:14.3f}")
serial = cpu_main * gb
parallel = cpu_other * gb
print(f"CPU seconds: walking thread {serial:.2f}, other threads {parallel:.2f}, all {serial + parallel:.2f}")
for n in (2, 4, 8, 16):
    bound = max(serial, (serial + parallel) / n)
    print(f"predicted wall on {n:2} cores: >= {bound:.2f} s ({mb / bound:.0f} MB/s): "
          f"{'the walking thread is the limit' if serial >= (serial + parallel) / n else 'CPU-bound across cores'}")
EOF
