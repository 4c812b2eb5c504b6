#!/usr/bin/env bash
# nightly-backup.sh: the sample nightly backup job, run (from cron or a systemd timer) on the
# machine being backed up, with a WRITE-ONLY key file. Its pruning partner, nightly-prune.sh, runs
# elsewhere with the full key.
#
#   archiver keymgmt --outkeyfile /root/.config/archiver/nightly.key -w    # once, on a trusted host
#   # copy nightly.key (mode 600) to the backup host; keep the full key file OFF it
#   30 1 * * *  ARCHIVER_KEYFILE=/root/.config/archiver/nightly.key BACKUP_PATHS="/etc /home" \
#               /usr/local/bin/nightly-backup.sh
#
# It runs
#   archiver --json --no-progress create --checkpoint-bytes "$CHECKPOINT_BYTES" \
#       "$BACKUP_PREFIX-YYYY-MM-DD_HHMMSS" $BACKUP_PATHS
# appends archiver's JSON lines (stdout, and the one `exit_error` object archiver prints on stderr
# when it fails) to $LOG_DIR/nightly-YYYY-MM-DD.jsonl, ends that with one `job_result` line of its
# own, and alerts on the exit code. It prints nothing when all is well (so cron mails nothing).
#
# Why a write-only key (`keymgmt -w`): the backup host is the machine most likely to be broken
# into or stolen, and whatever key it holds, its thief holds too. A write-only key can add archives
# but cannot read (`ls`, `extract`, `fsck`) or delete (`delete`, `prune`) them; on `archiver serve`
# the server enforces this. Its commits also keep the manifest generations they replace, so if the
# thief commits a manifest that drops archives, `archiver rollback GEN` (see `archiver generations`)
# brings them back: nothing is deleted until a commit signed with the delete key. A full key here
# would let the thief delete every backup, and every nightly `create` signed with it would drop the
# kept generations. So this script refuses a key file holding the delete key (ALLOW_FULL_KEY=1
# overrides that, knowingly); pruning is nightly-prune.sh's job, on a trusted host.
#
# Exit codes (the script exits with archiver's code) and what the script does about them:
#   0        complete                                            quiet
#   3        stored, but incomplete: unreadable or changing      alert, with the warnings
#            files (each a `warning` line in the log), or
#            NAME.part stored on request (SIGQUIT, --maxbw)
#   1        failed; the repository is unchanged (bad path,      alert, with archiver's message
#            wrong repository or key, ...)
#   2        failed after the repository changed: a checkpoint   alert: the next run (any write
#            was kept, or will be, as NAME.part                  command) stores it as NAME.part
#   130/143  interrupted by SIGINT/SIGTERM (a checkpoint, if     alert
#            any, was committed as NAME.part)
#   other    archiver could not run (127), died (137 = kill -9,  alert
#            a crash), or an unknown code
# The script itself exits 1 without running archiver when the key file holds the delete key.
#
# Environment (all optional):
#   ARCHIVER          the archiver binary                                  [archiver]
#   ARCHIVER_REPO     repository (else archiver's config / default)        [unset]
#   ARCHIVER_KEYFILE  the WRITE-ONLY key file               [~/.config/archiver/nightly.key]
#   ARCHIVER_CACHEDIR cache directory (else archiver's default)            [unset]
#   BACKUP_PATHS      paths to back up, separated by spaces (no globbing)  [/etc /home]
#   BACKUP_PREFIX     archive names are PREFIX-YYYY-MM-DD_HHMMSS           [nightly]
#   BACKUP_NAME       the whole archive name instead                       [unset]
#   BACKUP_TIME       seconds since the epoch to record as the archive's creation time
#                     (`create --creationtime`) and to name it and its log by; for tests and
#                     for re-running a missed night                        [now]
#   LOG_DIR           where the .jsonl logs go       [${XDG_STATE_HOME:-~/.local/state}/archiver]
#   CHECKPOINT_BYTES  a checkpoint after this much was uploaded            [1G]
#   ALERT_CMD         shell command run with the one-line alert message as its last argument,
#                     e.g. 'logger -t backup -p user.err' or '/usr/local/bin/page-oncall'
#                     [unset: the message goes to stderr (cron mails it) and to syslog via
#                     `logger` when present]
#   ALLOW_FULL_KEY    1: run even with a key file holding the delete key (not recommended)
#   JQ                jq binary used to read the log; empty: never use jq (the fallback is awk)
#                     [jq, when installed]
# Times in names and log files are local (TZ); prune's calendar rules read them the same way.
set -u
umask 077

ARCHIVER=${ARCHIVER:-archiver}
export ARCHIVER_KEYFILE=${ARCHIVER_KEYFILE:-${HOME:-/root}/.config/archiver/nightly.key}
BACKUP_PATHS=${BACKUP_PATHS:-/etc /home}
BACKUP_PREFIX=${BACKUP_PREFIX:-nightly}
LOG_DIR=${LOG_DIR:-${XDG_STATE_HOME:-${HOME:-/root}/.local/state}/archiver}
CHECKPOINT_BYTES=${CHECKPOINT_BYTES:-1G}
ALERT_CMD=${ALERT_CMD:-}
JQ=${JQ-jq}
job=nightly-backup
host=$(uname -n 2>/dev/null || echo unknown-host)

# --- helpers (the same in nightly-prune.sh) ------------------------------------------------

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

# messages TYPE < JSONL: the `message` of every line whose message_type is TYPE, one per line
# (control characters as spaces). Lines that are not JSON are skipped.
messages() {
  if have_jq; then
    "$JQ" -rR --arg t "$1" \
      'fromjson? | objects | select(.message_type == $t) | .message // empty | tostring | gsub("[[:cntrl:]]"; " ")'
  else
    LC_ALL=C awk -v t="$1" '
      # The unescaped value of the string field KEY in LINE ("" if absent). A quote inside a
      # JSON string is always escaped, so "KEY":" found by index() is the field itself.
      function str(line, key,   p, s, out, c, i, n) {
        p = index(line, "\"" key "\":\"")
        if (!p) return ""
        s = substr(line, p + length(key) + 4); out = ""; n = length(s)
        for (i = 1; i <= n; i++) {
          c = substr(s, i, 1)
          if (c == "\"") return out
          if (c == "\\") {
            c = substr(s, ++i, 1)
            if (c ~ /[bfnrt]/) c = " "; else if (c == "u") c = "\\u"
          }
          out = out c
        }
        return out
      }
      index($0, "\"message_type\":\"" t "\"") { m = str($0, "message"); if (m != "") print m }'
  fi
}

# json_str TEXT: TEXT as a JSON string (for the job_result line).
json_str() {
  printf '%s' "$1" | LC_ALL=C awk 'BEGIN { printf "\"" } {
      gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); gsub(/\r/, "\\r")
      printf "%s%s", (NR > 1 ? "\\n" : ""), $0 } END { printf "\"" }'
}

# fmt_time EPOCH FORMAT: EPOCH in local time (GNU date, else BSD date).
fmt_time() { date -d "@$1" "+$2" 2>/dev/null || date -r "$1" "+$2"; }

# log_stderr FILE: append archiver's stderr to the log: its exit_error object as it is, anything
# else (there should be nothing else in --json mode) wrapped as a `stderr` line.
log_stderr() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      '{'*'}') printf '%s\n' "$line" ;;
      *) printf '{"message_type":"stderr","message":%s}\n' "$(json_str "$line")" ;;
    esac
  done <"$1" >>"$log"
}

# join_lines SEP < LINES: the lines on one line, separated by SEP.
join_lines() { awk -v sep="$1" 'NR > 1 { printf "%s", sep } { printf "%s", $0 }'; }

# first_line TEXT: its first line, at most 400 bytes.
first_line() { printf '%s\n' "$1" | head -n 1 | cut -c 1-400; }

# --- the job ----------------------------------------------------------------------------------

# The interrupting signal reaches archiver too (same process group: Ctrl-C, systemd's stop);
# the script waits for it and reports archiver's 130/143 instead of dying silently.
trap ':' INT TERM

if [ -n "${BACKUP_TIME:-}" ]; then
  case $BACKUP_TIME in
    '' | *[!0-9]*) alert "BACKUP_TIME must be seconds since the epoch, not '$BACKUP_TIME'"; exit 1 ;;
  esac
  when=$BACKUP_TIME
else
  when=$(date +%s)
fi
name=${BACKUP_NAME:-$BACKUP_PREFIX-$(fmt_time "$when" %Y-%m-%d_%H%M%S)}

if ! mkdir -p "$LOG_DIR" 2>/dev/null || ! [ -w "$LOG_DIR" ]; then
  fallback=${TMPDIR:-/tmp}
  alert "cannot write to LOG_DIR $LOG_DIR; logging to $fallback instead"
  LOG_DIR=$fallback
fi
log=$LOG_DIR/nightly-$(fmt_time "$when" %Y-%m-%d).jsonl

result() { # CODE OUTCOME: the job_result line, last in the log for this run
  printf '{"message_type":"job_result","job":"%s","name":%s,"time_unix":%s,"exit_code":%s,"outcome":"%s","finished_unix":%s}\n' \
    "$job" "$(json_str "$name")" "$when" "$1" "$2" "$(date +%s)" >>"$log"
}

if [ -r "$ARCHIVER_KEYFILE" ] && grep -q '^access-delete ' "$ARCHIVER_KEYFILE" && [ "${ALLOW_FULL_KEY:-0}" != 1 ]; then
  alert "refusing to back up with $ARCHIVER_KEYFILE: it holds the delete key. Give this host a write-only key (archiver keymgmt --outkeyfile FILE -w) and keep the full key on a trusted host; ALLOW_FULL_KEY=1 overrides (exit 1, nothing stored)"
  result 1 refused
  exit 1
fi

set -f # BACKUP_PATHS is split on spaces, never globbed
# shellcheck disable=SC2206
paths=($BACKUP_PATHS)
set +f

args=(--json --no-progress create --checkpoint-bytes "$CHECKPOINT_BYTES")
[ -n "${BACKUP_TIME:-}" ] && args+=(--creationtime "$BACKUP_TIME")
args+=(-- "$name" "${paths[@]}")

size=0
[ -f "$log" ] && size=$(wc -c <"$log")
start=$((size + 1)) # this run's lines start here
errfile=$(mktemp "${TMPDIR:-/tmp}/$job.XXXXXX") || { alert "mktemp failed"; exit 1; }
"$ARCHIVER" "${args[@]}" >>"$log" 2>"$errfile"
rc=$?
log_stderr "$errfile"
err=$(messages exit_error <"$errfile")
[ -n "$err" ] || err=$(first_line "$(cat "$errfile")")
rm -f "$errfile"

case $rc in
  0)
    outcome=ok ;;
  3)
    outcome=incomplete
    warnings=$(tail -c +"$start" "$log" | messages warning)
    what="warning(s)"
    if [ -z "$warnings" ]; then # a NAME.part stored on request (SIGQUIT, --maxbw): notices say so
      warnings=$(tail -c +"$start" "$log" | messages notice)
      what="notice(s), no warning"
    fi
    count=$(printf '%s' "$warnings" | grep -c '^' || true)
    shown=$(printf '%s\n' "$warnings" | head -n 5 | join_lines '; ' | cut -c 1-1500)
    [ "$count" -gt 5 ] && shown="$shown; ... ($((count - 5)) more)"
    alert "$name: exit 3, stored but incomplete: $count $what: ${shown:-none in the log}; log: $log" ;;
  1)
    outcome=failed
    alert "$name: exit 1, failed, the repository is unchanged: ${err:-no message}; log: $log" ;;
  2)
    outcome=failed_after_change
    alert "$name: exit 2, failed after the repository changed (what was stored is kept as $name.part, now or by the next write command): ${err:-no message}; log: $log" ;;
  130 | 143)
    outcome=interrupted
    alert "$name: exit $rc, interrupted by SIG$([ "$rc" = 130 ] && echo INT || echo TERM) (a checkpoint, if any, was committed as $name.part): ${err:-no message}; log: $log" ;;
  126 | 127)
    outcome=not_run
    alert "$name: exit $rc, cannot run archiver ($ARCHIVER): ${err:-not found}; log: $log" ;;
  *)
    outcome=unexpected
    if [ "$rc" -gt 128 ]; then
      alert "$name: exit $rc, archiver died of signal $((rc - 128)) (the next write command finishes or undoes its transaction): ${err:-no message}; log: $log"
    else
      alert "$name: exit $rc, unexpected exit code: ${err:-no message}; log: $log"
    fi ;;
esac
result "$rc" "$outcome"
exit "$rc"
