#!/usr/bin/env bash
# System test: least privilege. vuswitchd starts as root, sets up hugepages, sockets and
# its PMD core, then continues as an unprivileged user (--user vusw-test):
#
#  - every thread (/proc/PID/task/*/status) has that user's uid and gid (real, effective,
#    saved, file system) and no capability (CapEff and CapPrm 0);
#  - the sockets have the modes and groups asked for and belong to the user (also in
#    vuswitchctl show config); /metrics still answers;
#  - traffic still flows between two DPDK virtio-user front-ends (testpmd);
#  - another user (nobody) cannot connect to the control socket (EACCES), a member of
#    the socket's group can;
#  - add-port vhost-user still works after the drop (a new socket in RUN_DIR), del-port
#    removes its socket; add-port of a NIC that needs capabilities fails saying why;
#  - a port recorded in the state file is restored before the drop; the file is then the
#    user's (0600) and the user rewrites it at add-port;
#  - SIGTERM: exit 0, every socket removed, no hugepage or DPDK runtime file left
#    (--in-memory; EAL leaves its empty runtime directory in any case);
#  - the same with --no-huge (DPDK's legacy memory);
#  - an unknown --user: exit 2 and a message saying what to do.
#
# Creates the system user and group vusw-test if absent (left in place, like deploy/ does).
# Exit: 0 pass, 1 fail, 77 skip (not root / no hugepages / no testpmd / no useradd).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TEST_USER=vusw-test
MAC_A=02:00:00:00:0a:01
MAC_B=02:00:00:00:0b:01

sys_init privileges
sys_require_hugepages 800
sys_require_daemon
command -v setpriv >/dev/null || skip "setpriv not found (util-linux)"
if ! getent passwd "$TEST_USER" >/dev/null; then
  command -v useradd >/dev/null || skip "useradd not found (passwd) to create $TEST_USER"
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$TEST_USER" || fail "useradd $TEST_USER failed"
  log "created system user $TEST_USER"
fi
uid=$(id -u "$TEST_USER")
gid=$(id -g "$TEST_USER")
# The user must reach RUN_DIR ($SYS_TMP is root's 0700).
chmod 0755 "$SYS_TMP"

errors=0
check() { # DESCRIPTION LEFT RIGHT
  if [[ $2 == "$3" ]]; then log "ok: $1 ($2)"; else log "MISMATCH: $1: '$2' != '$3'"; errors=$((errors + 1)); fi
}

# An unknown user is a configuration error: exit 2 before DPDK starts.
rc=0
out=$("$SYS_VUSWITCHD" --user no-such-user-vusw --no-huge 2>&1) || rc=$?
check "unknown --user: exit status" "$rc" 2
[[ $out == *"--user no-such-user-vusw: no such user; create it (useradd"* ]] \
  || { log "MISMATCH: unknown --user message: $out"; errors=$((errors + 1)); }
rc=0
out=$("$SYS_VUSWITCHD" --socket-mode rw-rw-rw- --no-huge 2>&1) || rc=$?
check "bad --socket-mode: exit status" "$rc" 2
[[ $out == *"expected an octal permission mode 0000..0777, e.g. 0660"* ]] \
  || { log "MISMATCH: bad --socket-mode message: $out"; errors=$((errors + 1)); }

RUN=$SYS_TMP/run-priv
# A port recorded by an earlier run (as root): restored before the drop, its state file
# then given to the user, who rewrites it as ports come and go.
mkdir -p "$RUN"
printf '{"version":1,"ports":[{"name":"vm0","request":{"cmd":"add_port","type":"vhost-user","target":"%s"}}]}\n' \
  "$RUN/vm0.sock" >"$RUN/ports.json"
# Metrics on: its HTTP server's threads are checked too.
METRICS_PORT=$((19000 + $$ % 1000))
VUSW_METRICS=127.0.0.1:$METRICS_PORT vusw_start priv --lcores 0,1 --memory 256 --user "$TEST_USER" --socket-mode 0620 --socket-group nogroup \
  --vhost-user "$RUN/vm1.sock" --vhost-user "$RUN/vm2.sock"
grep -q "running as user $TEST_USER ($uid), group $TEST_USER ($gid), without capabilities" "$VUSW_LOG" \
  || { log "MISMATCH: no 'running as user' line in the log"; errors=$((errors + 1)); }

# Every thread, as the kernel sees it.
threads=0
for status in /proc/"$VUSW_PID"/task/*/status; do
  read -r _ r e s f < <(grep '^Uid:' "$status")
  [[ "$r $e $s $f" == "$uid $uid $uid $uid" ]] || { log "MISMATCH: $status Uid $r $e $s $f"; errors=$((errors + 1)); }
  read -r _ r e s f < <(grep '^Gid:' "$status")
  [[ "$r $e $s $f" == "$gid $gid $gid $gid" ]] || { log "MISMATCH: $status Gid $r $e $s $f"; errors=$((errors + 1)); }
  for cap in CapEff CapPrm CapAmb; do
    v=$(awk -v k="$cap:" '$1 == k {print $2}' "$status")
    [[ $v == 0000000000000000 ]] || { log "MISMATCH: $status $cap $v"; errors=$((errors + 1)); }
  done
  threads=$((threads + 1))
done
((threads >= 4)) || { log "MISMATCH: only $threads threads (control, PMD, DPDK's, metrics expected)"; errors=$((errors + 1)); }
log "checked $threads threads: uid $uid, gid $gid, no capabilities"

metrics=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics") || metrics=
[[ $metrics == *vusw_port_rx_packets_total* ]] \
  || { log "MISMATCH: /metrics does not answer after the drop"; errors=$((errors + 1)); }
check "show config: user" "$(vusw_ctl --json show config | "$PYTHON" -c 'import json,sys; c=json.load(sys.stdin)["config"]; print(c["user"], c["group"], c["socket_mode"], c["socket_group"], c["ctl_socket_mode"])')" \
  "$TEST_USER $TEST_USER 0620 nogroup 0660"

# Sockets: modes and groups as asked, owned by the user; RUN_DIR given to it.
check "vhost-user socket owner, group, mode" "$(stat -c '%U %G %a' "$RUN/vm1.sock")" "$TEST_USER nogroup 620"
check "control socket owner, group, mode" "$(stat -c '%U %G %a' "$VUSW_CTL")" "$TEST_USER $TEST_USER 660"
check "RUN_DIR owner" "$(stat -c '%U %G' "$RUN")" "$TEST_USER $TEST_USER"
check "restored port vm0: origin, socket owner, group, mode" \
  "$(vusw_port_json vm0 origin) $(stat -c '%U %G %a' "$RUN/vm0.sock" 2>&1)" "runtime $TEST_USER nogroup 620"
check "state file owner, mode" "$(stat -c '%U %a' "$RUN/ports.json" 2>&1)" "$TEST_USER 600"

# Another user may not connect to the control socket; a member of its group may.
rc=0
out=$(timeout 10 setpriv --reuid=nobody --regid=nogroup --clear-groups "$SYS_VUSWITCHCTL" --control "$VUSW_CTL" show ports 2>&1) || rc=$?
[[ $rc -ne 0 && $out == *"Permission denied"*"--ctl-socket-group"* ]] \
  || { log "MISMATCH: nobody reached the control socket (exit $rc): $out"; errors=$((errors + 1)); }
log "ok: nobody gets: $out"
out=$(timeout 10 setpriv --reuid=nobody --regid=nogroup --groups="$gid" "$SYS_VUSWITCHCTL" --control "$VUSW_CTL" show ports 2>&1) \
  || { log "MISMATCH: a member of group $TEST_USER cannot use vuswitchctl: $out"; errors=$((errors + 1)); }
[[ $out == *vm1*vm2* ]] || { log "MISMATCH: group member's show ports: $out"; errors=$((errors + 1)); }

# Traffic after the drop: 128 frames each way between two virtio-user front-ends.
tp_start_virtio_user A "$RUN/vm1.sock" "$MAC_A" "$MAC_B"
tp_start_virtio_user B "$RUN/vm2.sock" "$MAC_B" "$MAC_A"
port_ready() { [[ $(vusw_port_json "$1" state 2>/dev/null) == ready ]]; }
wait_for 20 "both ports ready" eval 'port_ready vm1 && port_ready vm2'
rx_is() { [[ $(tp_stat "$1" 1 0 2) == "$2" ]]; } # NAME COUNT: testpmd NAME received COUNT frames
send() { # FROM TO: 128 frames; the receiver polls until it has them all
  tp_cmd "$2" "start"
  tp_cmd "$1" "start tx_first 4"
  sleep 0.2
  tp_cmd "$1" "stop"
  WAIT_FOR_POLL_S=0.5 wait_for 20 "testpmd $2 to receive 128 frames from $1" rx_is "$2" 128
  tp_cmd "$2" "stop"
}
send A B
send B A
log "ok: 128 frames each way between the front-ends"
check "switch vm1 and vm2 tx" "$(vusw_port_json vm1 tx_packets) $(vusw_port_json vm2 tx_packets)" "128 128"
check "switch drops" "$(( $(vusw_port_json vm1 drops) + $(vusw_port_json vm2 drops) ))" 0
tp_quit A
tp_quit B

# Ports at run time after the drop.
vusw_ctl add-port vhost-user "$RUN/vm3.sock" || { log "MISMATCH: add-port vhost-user failed"; errors=$((errors + 1)); }
check "added socket owner, group, mode" "$(stat -c '%U %G %a' "$RUN/vm3.sock" 2>&1)" "$TEST_USER nogroup 620"
check "state file after add-port (written by the user)" \
  "$("$PYTHON" -c 'import json,sys; print(*(p["name"] for p in json.load(open(sys.argv[1]))["ports"]))' "$RUN/ports.json")" "vm0 vm3"
vusw_ctl del-port vm3 || { log "MISMATCH: del-port vm3 failed"; errors=$((errors + 1)); }
[[ ! -e $RUN/vm3.sock ]] || { log "MISMATCH: del-port left $RUN/vm3.sock"; errors=$((errors + 1)); }
rc=0
out=$(vusw_ctl add-port nic "net_tap9,iface=vuswpriv$$" 2>&1) || rc=$?
[[ $rc -ne 0 && $out == *"runs as user $TEST_USER without capabilities (--user)"* ]] \
  || { log "MISMATCH: add-port of a tap NIC (needs CAP_NET_ADMIN) after the drop (exit $rc): $out"; errors=$((errors + 1)); }
log "add-port nic after the drop: $out"
kill -0 "$VUSW_PID" || fail "vuswitchd died"

prefix=$(sys_prefix priv)
rc=0
vusw_stop || rc=$?
check "exit status on SIGTERM" "$rc" 0
[[ ! -e $RUN/vm1.sock && ! -e $RUN/vm2.sock && ! -e $VUSW_CTL ]] \
  || { log "MISMATCH: sockets left behind: $(ls "$RUN")"; errors=$((errors + 1)); }
leftover=$({ find /dev/hugepages -name "${prefix}*"; find /var/run/dpdk/"$prefix" ! -type d; } 2>/dev/null | head -3)
check "hugepage and runtime files left behind" "$leftover" ""

# Without hugepages too (DPDK's legacy memory: --no-shconf rather than --in-memory).
vusw_start nohuge --lcores 0,1 --no-huge --user "$TEST_USER" --vhost-user "$SYS_TMP/run-nohuge/vm1.sock"
check "--no-huge: the control thread's uid" "$(awk '/^Uid:/ {print $2, $3, $4}' /proc/"$VUSW_PID"/status)" "$uid $uid $uid"
check "--no-huge: vuswitchctl as the group member" \
  "$(setpriv --reuid=nobody --regid=nogroup --groups="$gid" "$SYS_VUSWITCHCTL" --control "$VUSW_CTL" --json show ports | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["ports"]))')" 1
rc=0
vusw_stop || rc=$?
check "--no-huge: exit status on SIGTERM" "$rc" 0
[[ ! -e $SYS_TMP/run-nohuge/vm1.sock && ! -e $SYS_TMP/run-nohuge/vuswitchd.ctl ]] \
  || { log "MISMATCH: --no-huge: sockets left behind"; errors=$((errors + 1)); }

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: $threads threads as $TEST_USER without capabilities; sockets, traffic, add-port and exit work"
