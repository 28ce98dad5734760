#!/usr/bin/env bash
# System test: vuswitchd as a systemd Type=notify service, without systemd. A python3
# listener plays systemd's side of sd_notify (tests/system/service_notify.py):
#   run 1, WATCHDOG_USEC=2 s: READY=1 only once the control socket answers and the
#          vhost-user socket listens; STATUS=; WATCHDOG=1 at least every second;
#          STOPPING=1 at SIGTERM; exit status 0
#   run 2, no WATCHDOG_USEC: the same, and no WATCHDOG=1 at all
# vuswitchd runs with --no-huge (no hugepages needed). Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

sys_init service_notify
sys_require_daemon

errors=0
notify_run() { # TAG [--watchdog-usec N]
  local tag=$1 dir=$SYS_TMP/$1 rc=0
  shift
  mkdir -p "$dir"
  log "run $tag: vuswitchd with NOTIFY_SOCKET${*:+ and $*}"
  # pipefail: the pipeline fails when the listener does
  "$PYTHON" "$SYS_ROOT/tests/system/service_notify.py" --vuswitchd "$SYS_VUSWITCHD" \
    --vuswitchctl "$SYS_VUSWITCHCTL" --dir "$dir" --prefix "$(sys_prefix "$tag")" "$@" 2>&1 \
    | sed "s/^/[$SYS_NAME] $tag: /" || rc=$?
  if ((rc != 0)); then
    errors=$((errors + 1))
    log "vuswitchd log of run $tag:"
    tail -n 20 "$dir/vuswitchd.log" >&2 || true
  fi
}
notify_run watchdog --watchdog-usec 2000000
notify_run plain

(( errors == 0 )) || fail "$errors run(s) failed"
log "PASS: READY=1 after the sockets serve, WATCHDOG=1 only with WATCHDOG_USEC, STOPPING=1 at SIGTERM"
