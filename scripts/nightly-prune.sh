#!/usr/bin/env bash
# nightly-prune.sh: the sample prune job, partner of nightly-backup.sh. It runs on a TRUSTED host
# (an admin's machine, a locked-down server: never the host that makes the backups) with the FULL
# key file, which it needs: prune reads archives and deletes them (read and delete keys).
#
#   0 6 * * *  ARCHIVER_REPO=... ARCHIVER_KEYFILE=/secure/archiver.key /usr/local/bin/nightly-prune.sh
#
# It runs, logging archiver's JSON lines to $LOG_DIR/prune-YYYY-MM-DD.jsonl (one `job_result`
# line of its own last) and alerting on any failure:
#   1. archiver --json generations   the kept manifest generations; if an archive that one of them
#                                    lists is missing from the current one, it alerts and stops
#   2. archiver --json fsck          (RUN_FSCK=1) a damaged repository is not pruned
#   3. archiver --json prune --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 3 \
#          --match "$BACKUP_PREFIX-*"
#
# Why from a trusted host, and why step 1 comes first:
# - A commit signed with the delete key (any `create`, `delete` or `prune` run with the full key
#   file, and an `fsck` that repairs) drops the manifest generations that the write-only key's
#   commits keep for `archiver rollback`. Those generations are the defence against a stolen
#   write key: a thief who commits a manifest without some archives deletes nothing, and
#   `archiver rollback GEN` makes them current again. After a full-key commit that history is
#   gone, and `prune`/`delete` then reclaim whatever no current archive uses, so the loss becomes
#   permanent. Hence step 1: an archive that a kept generation lists but the current one lacks was
#   removed by a write-key commit since the last full-key one (a thief's, or a `rollback` someone
#   ran). The script then stops with an alert and exit 1 before any full-key command: look at
#   `archiver generations`, run `archiver rollback GEN` if the archives should be back, and run
#   the script again (PRUNE_ACCEPT_MISSING=1 if the removal was intended).
# - The full key can delete every backup. It must not live on the machine most likely to be
#   broken into or stolen: the one running the nightly backups, which holds only a write-only key
#   (archiver keymgmt -w). Keep the full key here, and a copy offline.
#
# Exit code: archiver's, from the first step that failed (0: all done); 1 also when step 1 stops.
# With a write-only key, `generations` works but `fsck` and `prune` refuse (exit 1, alerted).
#
# Environment (all optional):
#   ARCHIVER          the archiver binary                                  [archiver]
#   ARCHIVER_REPO     repository (else archiver's config / default)        [unset]
#   ARCHIVER_KEYFILE  the FULL key file (else archiver's config / default) [unset]
#   ARCHIVER_CACHEDIR cache directory (else archiver's default)            [unset]
#   BACKUP_PREFIX     prune only archives named PREFIX-* (and their .part) [nightly]
#   KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY KEEP_YEARLY   the policy (docs/RETENTION.md; 0: rule
#                     not used; periods in local time, TZ)                 [7 5 12 3]
#   RUN_FSCK          0: skip step 2                                       [1]
#   PRUNE_DRY_RUN     1: prune --dry-run (logs its decisions, deletes nothing) [0]
#   PRUNE_ACCEPT_MISSING  1: go on although archives are missing (step 1) [0]
#   LOG_DIR           where the .jsonl logs go       [${XDG_STATE_HOME:-~/.local/state}/archiver]
#   ALERT_CMD         shell command run with the one-line alert message as its last argument
#                     [unset: stderr, and syslog via `logger` when present]
#   JQ                jq binary used to read the JSON; empty: never use jq (the fallback is awk)
#                     [jq, when installed]
set -u
umask 077

ARCHIVER=${ARCHIVER:-archiver}
BACKUP_PREFIX=${BACKUP_PREFIX:-nightly}
KEEP_DAILY=${KEEP_DAILY:-7}
KEEP_WEEKLY=${KEEP_WEEKLY:-5}
KEEP_MONTHLY=${KEEP_MONTHLY:-12}
KEEP_YEARLY=${KEEP_YEARLY:-3}
RUN_FSCK=${RUN_FSCK:-1}
LOG_DIR=${LOG_DIR:-${XDG_STATE_HOME:-${HOME:-/root}/.local/state}/archiver}
ALERT_CMD=${ALERT_CMD:-}
JQ=${JQ-jq}
job=nightly-prune
host=$(uname -n 2>/dev/null || echo unknown-host)

# --- helpers (the same in nightly-backup.sh) ------------------------------------------------

# alert MESSAGE: hand a one-line message to ALERT_CMD, else to stderr and syslog.
alert() {
  local msg="archiver $job on $host: $1"
  msg=$(printf '%s' "$msg" | tr '\n\r\t' '   ')
  if [ -n "$ALERT_CMD" ]; then
    # shellcheck disable=SC2016 # $1 is expanded by the inner sh: the message, as one argument
    sh -c "$ALERT_CMD"' "$1"' alert "$msg" && return 0
    echo "$job: ALERT_CMD failed; the alert was: $msg" >&2
    return 0
  fi
  echo "$job: ALERT: $msg" >&2
  if command -v logger >/dev/null 2>&1; then
    logger -t "archiver-$job" -p user.err -- "$msg" 2>/dev/null || true
  fi
}

have_jq() { [ -n "$JQ" ] && command -v "$JQ" >/dev/null 2>&1; }

# The awk fallback's JSON readers: str(LINE, KEY) is the unescaped value of the string field KEY
# ("" if absent; control characters as spaces, \uXXXX kept as written); arr(LINE, KEY) puts the
# strings of the array field KEY in A[1..n] and returns n. A quote inside a JSON string is always
# escaped, so `"KEY":` found by index() is the field itself.
AWK_JSON='
  function unq(s, i,   out, c, n) { # the JSON string starting after the quote at s[i-1]
    out = ""; n = length(s)
    for (; i <= n; i++) {
      c = substr(s, i, 1)
      if (c == "\"") { END_AT = i; return out }
      if (c == "\\") {
        c = substr(s, ++i, 1)
        if (c ~ /[bfnrt]/) c = " "; else if (c == "u") c = "\\u"
      }
      out = out c
    }
    END_AT = n; return out
  }
  function str(line, key,   p) {
    p = index(line, "\"" key "\":\"")
    return p ? unq(substr(line, p + length(key) + 4), 1) : ""
  }
  function arr(line, key,   p, s, i, n, c) {
    split("", A); n = 0
    p = index(line, "\"" key "\":[")
    if (!p) return 0
    s = substr(line, p + length(key) + 4)
    for (i = 1; i <= length(s); i++) {
      c = substr(s, i, 1)
      if (c == "]") break
      if (c == "\"") { A[++n] = unq(s, i + 1); i = END_AT }
    }
    return n
  }
  function num(line, key,   p, s) {
    p = index(line, "\"" key "\":")
    if (!p) return ""
    s = substr(line, p + length(key) + 3)
    return match(s, /^[0-9]+/) ? substr(s, 1, RLENGTH) : ""
  }'

# messages TYPE < JSONL: the `message` of every line whose message_type is TYPE, one per line.
messages() {
  if have_jq; then
    "$JQ" -rR --arg t "$1" \
      'fromjson? | objects | select(.message_type == $t) | .message // empty | tostring | gsub("[[:cntrl:]]"; " ")'
  else
    LC_ALL=C awk -v t="$1" "$AWK_JSON"'
      index($0, "\"message_type\":\"" t "\"") { m = str($0, "message"); if (m != "") print m }'
  fi
}

# generation_problems < JSONL from `generations`: "missing NAME" for each archive a kept
# generation lists that the current one does not, "damaged GEN WHY" for each generation that
# cannot be read; sorted.
generation_problems() {
  if have_jq; then
    "$JQ" -rRn '[inputs | fromjson? | objects | select(.message_type == "generation")] as $g
      | ($g | map(select(.current)) | .[0]) as $c
      | ($g[] | select(.damaged != null) | "damaged \(.generation) \(.damaged | tostring | gsub("[[:cntrl:]]"; " "))"),
        (if $c == null or $c.damaged != null then empty
         else (([$g[] | .archives // [] | .[]] | unique) - $c.archives)[] | "missing \(gsub("[[:cntrl:]]"; " "))" end)'
  else
    LC_ALL=C awk "$AWK_JSON"'
      index($0, "\"message_type\":\"generation\"") {
        current = index($0, "\"current\":true") > 0
        if (!index($0, "\"damaged\":null")) {
          print "damaged " num($0, "generation") " " str($0, "damaged")
          if (current) bad = 1
          next
        }
        n = arr($0, "archives")
        for (i = 1; i <= n; i++) { seen[A[i]] = 1; if (current) cur[A[i]] = 1 }
        if (current) have = 1
      }
      END { if (have && !bad) for (a in seen) if (!(a in cur)) print "missing " a }'
  fi | LC_ALL=C sort
}

# json_str TEXT: TEXT as a JSON string (for the job_result line).
json_str() {
  printf '%s' "$1" | LC_ALL=C awk 'BEGIN { printf "\"" } {
      gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); gsub(/\r/, "\\r")
      printf "%s%s", (NR > 1 ? "\\n" : ""), $0 } END { printf "\"" }'
}

# join_lines SEP < LINES: the lines on one line, separated by SEP.
join_lines() { awk -v sep="$1" 'NR > 1 { printf "%s", sep } { printf "%s", $0 }'; }

# first_line TEXT: its first line, at most 400 bytes.
first_line() { printf '%s\n' "$1" | head -n 1 | cut -c 1-400; }

# --- the job ----------------------------------------------------------------------------------

trap ':' INT TERM # report archiver's 130/143 rather than die silently

if ! mkdir -p "$LOG_DIR" 2>/dev/null || ! [ -w "$LOG_DIR" ]; then
  fallback=${TMPDIR:-/tmp}
  alert "cannot write to LOG_DIR $LOG_DIR; logging to $fallback instead"
  LOG_DIR=$fallback
fi
log=$LOG_DIR/prune-$(date +%Y-%m-%d).jsonl
out=$(mktemp "${TMPDIR:-/tmp}/$job.XXXXXX") || { alert "mktemp failed"; exit 1; }
errfile=$(mktemp "${TMPDIR:-/tmp}/$job.XXXXXX") || { rm -f "$out"; alert "mktemp failed"; exit 1; }
trap 'rm -f "$out" "$errfile"' EXIT

finish() { # CODE OUTCOME [STEP]: the job_result line, then exit CODE
  printf '{"message_type":"job_result","job":"%s","step":%s,"exit_code":%s,"outcome":"%s","finished_unix":%s}\n' \
    "$job" "$(json_str "${3:-}")" "$1" "$2" "$(date +%s)" >>"$log"
  exit "$1"
}

# step NAME ARGS...: run archiver --json ARGS, log its output (also kept in $out), and on failure
# alert and finish with its exit code.
step() {
  local what=$1 rc err line
  shift
  "$ARCHIVER" --json --no-progress "$@" >"$out" 2>"$errfile"
  rc=$?
  cat "$out" >>"$log"
  while IFS= read -r line || [ -n "$line" ]; do # the exit_error object, or anything unexpected
    case $line in
      '{'*'}') printf '%s\n' "$line" ;;
      *) printf '{"message_type":"stderr","message":%s}\n' "$(json_str "$line")" ;;
    esac
  done <"$errfile" >>"$log"
  [ "$rc" -eq 0 ] && return 0
  err=$(messages exit_error <"$errfile")
  [ -n "$err" ] || err=$(first_line "$(cat "$errfile")")
  case $rc in
    1) alert "$what failed (exit 1, the repository is unchanged): ${err:-no message}; nothing pruned; log: $log" ;;
    2) alert "$what failed after the repository changed (exit 2; the next write command completes or undoes it): ${err:-no message}; log: $log" ;;
    130 | 143) alert "$what interrupted (exit $rc): ${err:-no message}; log: $log" ;;
    126 | 127) alert "cannot run archiver ($ARCHIVER), exit $rc: ${err:-not found}; log: $log" ;;
    *) alert "$what: exit $rc: ${err:-no message}; log: $log" ;;
  esac
  finish "$rc" failed "$what"
}

# 1. Before anything signs with the full key: are archives missing that a kept generation has?
step "archiver generations" generations
problems=$(generation_problems <"$out")
if [ -n "$problems" ]; then
  if [ "${PRUNE_ACCEPT_MISSING:-0}" = 1 ]; then
    alert "going on although (PRUNE_ACCEPT_MISSING=1): $(printf '%s\n' "$problems" | head -n 20 | join_lines '; ')"
  else
    missing=$(printf '%s\n' "$problems" | sed -n 's/^missing //p' | head -n 20 | join_lines ', ')
    damaged=$(printf '%s\n' "$problems" | sed -n 's/^damaged //p' | head -n 5 | join_lines '; ')
    alert "NOT pruning: ${missing:+archives a kept generation lists are missing from the current one (removed by a write-key commit: a stolen key, or a rollback?): $missing. }${damaged:+damaged generation(s): $damaged. }A full-key command would drop the generations that still hold them: check \`archiver generations\`, \`archiver rollback GEN\` to restore, or set PRUNE_ACCEPT_MISSING=1 if intended (exit 1); log: $log"
    finish 1 refused "archiver generations"
  fi
fi

# 2. Damage is for a human to look at, not for prune to act on.
if [ "$RUN_FSCK" = 1 ]; then
  step "archiver fsck" fsck
fi

# 3. The policy.
args=(prune --keep-daily "$KEEP_DAILY" --keep-weekly "$KEEP_WEEKLY" --keep-monthly "$KEEP_MONTHLY"
  --keep-yearly "$KEEP_YEARLY" --match "$BACKUP_PREFIX-*")
[ "${PRUNE_DRY_RUN:-0}" = 1 ] && args+=(--dry-run)
step "archiver prune" "${args[@]}"
finish 0 ok
