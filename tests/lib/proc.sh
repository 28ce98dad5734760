# shellcheck shell=bash
# Process helpers shared by tests/system/lib.sh and tests/vm/lib.sh (and, through the
# former, by perf/): wait for a background process to exit, stop it by PID, stop all
# a test started and run its clean-up hooks, poll for a condition. Sourced by those
# libraries, which define fail (and log/skip) in their own format; safe under set -e.

# wait_exit PID TIMEOUT_S: true once PID has exited (polled every 0.1 s), false if it
# still runs after TIMEOUT_S.
wait_exit() {
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$pid" 2>/dev/null
}

# stop_pid PID [TIMEOUT_S]: SIGTERM, wait up to TIMEOUT_S (10), then SIGKILL; reaps
# PID. Never fails, also not when PID is gone already or exited non-zero (under set -e
# a failing "wait" would end an exit trap before the rest of the clean-up).
stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  wait_exit "$pid" "${2:-10}" || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# term_and_wait PID WHAT: SIGTERM and return PID's exit status; fails the test if WHAT
# has not exited 10 s later (after killing it).
term_and_wait() {
  local pid=$1 what=$2 rc=0
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_exit "$pid" 10; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    fail "$what did not exit within 10 s of SIGTERM"
  fi
  wait "$pid" || rc=$?
  return "$rc"
}

# stop_pids PID...: stop_pid each, 5 s to exit after SIGTERM (exit traps).
stop_pids() {
  local pid
  for pid in "$@"; do stop_pid "$pid" 5; done
}

# run_hooks COMMAND...: eval each clean-up command (netns, veth removal), quietly,
# ignoring failures.
run_hooks() {
  local hook
  for hook in "$@"; do eval "$hook" >/dev/null 2>&1 || true; done
}

# print_log_tails DIR LINES: the last LINES of every DIR/*.log on stderr, to show
# why a test failed before its temp dir goes.
print_log_tails() {
  local f
  for f in "$1"/*.log; do
    [[ -f $f ]] || continue
    printf '\n----- %s (last %s lines) -----\n' "${f##*/}" "$2" >&2
    tail -n "$2" "$f" >&2
  done
}

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: run COMMAND every WAIT_FOR_POLL_S seconds
# (default 0.1) until it succeeds; fails the test after TIMEOUT_S.
wait_for() {
  local t=$1 what=$2 end=$((SECONDS + $1))
  shift 2
  while ((SECONDS < end)); do
    "$@" && return 0
    sleep "${WAIT_FOR_POLL_S:-0.1}"
  done
  fail "timed out after ${t}s waiting for $what"
}
