#!/usr/bin/env bash
# System test: the hugepage pre-check. Without usable hugepages vuswitchd exits 1 before
# DPDK starts, with a message naming what to run:
#  - --huge-dir on an empty directory that is not hugetlbfs: "is not a hugetlbfs mount"
#    and the mount command;
#  - --memory larger than the free hugepages: "N free 2 MiB hugepages, --memory M needs K"
#    and the command reserving them;
#
# Exit: 0 pass, 1 fail, 77 skip (not root).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

sys_init hugepages_missing
sys_require_daemon

errors=0
# expect_exit1 WHAT PATTERN ARGS...: vuswitchd ARGS exits 1 within 10 s, its output matches PATTERN.
expect_exit1() {
  local what=$1 pattern=$2 rc=0 out
  shift 2
  out=$(timeout 10 "$SYS_VUSWITCHD" --file-prefix "$(sys_prefix check)" --run-dir "$SYS_TMP/run" --metrics off "$@" 2>&1) || rc=$?
  if [[ $rc -eq 1 && $out == *$pattern* && $out != *EAL:* ]]; then
    log "ok: $what: exit 1: $out"
  else
    log "MISMATCH: $what: exit $rc (expected 1 before DPDK starts), output: $out"
    errors=$((errors + 1))
  fi
}

mkdir -p "$SYS_TMP/empty"
expect_exit1 "--huge-dir not hugetlbfs" \
  "--huge-dir $SYS_TMP/empty is not a hugetlbfs mount; run: mkdir -p $SYS_TMP/empty && mount -t hugetlbfs nodev $SYS_TMP/empty (or deploy/setup.sh), or start with --no-huge" \
  --huge-dir "$SYS_TMP/empty"

free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
rsvd=$(awk '/^HugePages_Rsvd:/ {print $2}' /proc/meminfo)
size=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)
if findmnt -n -t hugetlbfs >/dev/null 2>&1 && [[ $size == 2048 ]] && (((free - rsvd) * 2 < 65536)); then
  expect_exit1 "--memory beyond the free hugepages" \
    "$((free - rsvd)) free 2 MiB hugepages, --memory 65536 needs 32768; run: echo " --memory 65536
  expect_exit1 "the command names the pool" "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" --memory 65536
else
  log "not checked: --memory beyond the free hugepages (no 2 MiB hugetlbfs mount, or 64 GiB free)"
fi
[[ ! -e /var/run/dpdk/$(sys_prefix check) ]] || { log "MISMATCH: DPDK started (runtime dir made)"; errors=$((errors + 1)); }

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: missing or too few hugepages: exit 1 before DPDK, with the commands that fix it"
