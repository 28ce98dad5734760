#!/usr/bin/env bash
# System test: vuswitch-cni called as kubelet (through Multus) calls it, for two "pods"
# (network namespaces), with the network configuration of
# deploy/k8s/network-attachment.yaml (its controlSocket and socketDir pointed at this
# test's daemon and directory):
#
#   pod A netns: testpmd virtio-user --> SOCKDIR/<idA>-net1.sock --> vuswitchd
#   pod B netns: testpmd virtio-user --> SOCKDIR/<idB>-net1.sock --/
#
#   - ADD: result JSON (cniVersion, interface name, sandbox, socketPath), the socket and
#     the port exist, the device-info file Multus asked for names the pod's path;
#     ADD again: the same result, still one port;
#   - the two pods' testpmds exchange frames both ways, counted exactly at both ends;
#   - vuswitchd restarts (same run dir); pod B is deleted while it is down (DEL takes the
#     port out of the state file): pod A's port comes back from the file (origin runtime),
#     pod B's does not (CHECK 101) until ADD again; new testpmds in the pods exchange
#     frames again;
#   - CHECK passes; DEL removes port and socket; DEL again succeeds; CHECK then fails (101);
#   - errors: bad config (7), not JSON (6), cniVersion 0.4.0 (1), missing env (4), a port
#     name taken by another socket (102), daemon down on ADD/CHECK (11); DEL with the
#     daemon down and no state file succeeds.
#
# Exit: 0 pass, 1 fail, 77 skip (not root / no hugepages / no testpmd / no python3-yaml).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MAC_A=02:00:00:00:ca:01
MAC_B=02:00:00:00:cb:01
ROUNDS=${ROUNDS:-3} # of 128 frames per direction

sys_init cni
sys_require_hugepages 1100
sys_require_daemon
CNI_BIN=${VUSWITCH_CNI:-$SYS_BUILD/control/vuswitch-cni}
[[ -x $CNI_BIN ]] || fail "vuswitch-cni not built at $CNI_BIN"
"$PYTHON" -c 'import yaml' 2>/dev/null || skip "python3-yaml not installed (deploy/setup.sh installs it)"

SOCKDIR=$SYS_TMP/pods
DEVINFO=$SYS_TMP/devinfo
CTL=$SYS_TMP/run-cni/vuswitchd.ctl # vusw_start's control socket
# The shipped NetworkAttachmentDefinition's config, pointed at this test's paths.
CONFIG=$("$PYTHON" -c '
import json, sys, yaml
nad = yaml.safe_load(open(sys.argv[1]))
conf = json.loads(nad["spec"]["config"])
conf["controlSocket"], conf["socketDir"] = sys.argv[2], sys.argv[3]
print(json.dumps(conf))' "$SYS_ROOT/deploy/k8s/network-attachment.yaml" "$CTL" "$SOCKDIR") \
  || fail "cannot read the config of deploy/k8s/network-attachment.yaml"
POD_DIR=$("$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])["podSocketDir"])' "$CONFIG")

ID_A=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
ID_B=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT_A=${ID_A:0:16}-net1 PORT_B=${ID_B:0:16}-net1
NS_A=vusw-cni-a-$$ NS_B=vusw-cni-b-$$
for ns in "$NS_A" "$NS_B"; do
  SYS_CLEANUP_HOOKS+=("ip netns del $ns")
  ip netns add "$ns" || skip "cannot create a network namespace"
done

errors=0
check() { # DESCRIPTION LEFT RIGHT
  if [[ $2 == "$3" ]]; then log "ok: $1 ($2)"; else log "MISMATCH: $1: '$2' != '$3'"; errors=$((errors + 1)); fi
}

# cni COMMAND ID NETNS [CONFIG] [VAR=VALUE...]: the plugin as kubelet runs it (host
# namespace, CNI_* environment, config on stdin); sets CNI_OUT (stdout) and CNI_RC.
cni() {
  local cmd=$1 id=$2 ns=$3 conf=${4:-$CONFIG}
  shift $(($# < 4 ? $# : 4))
  CNI_RC=0
  CNI_OUT=$(printf '%s' "$conf" | env CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" CNI_NETNS="$ns" CNI_IFNAME=net1 \
    CNI_PATH=/opt/cni/bin CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-${id:0:4}" "$@" \
    timeout 20 "$CNI_BIN" 2>"$SYS_TMP/cni.err") || CNI_RC=$?
}
# json FIELD-EXPRESSION: a value of CNI_OUT, e.g. json '["interfaces"][0]["name"]'.
json() {
  "$PYTHON" -c 'import json, sys; print(eval("json.loads(sys.argv[2])" + sys.argv[1]))' "$1" "$CNI_OUT" 2>/dev/null \
    || echo "(no $1 in: $CNI_OUT)"
}
# expect_error CODE DESCRIPTION: the last call failed with that CNI error code.
expect_error() {
  check "$2: exit status 1" "$CNI_RC" 1
  check "$2: CNI error code" "$(json '["code"]')" "$1"
  log "   msg: $(json '["msg"]')"
}
netns_path() { printf '/var/run/netns/%s' "$1"; }
ports_named() { vusw_ctl --json show ports | "$PYTHON" -c '
import json, sys; print(sum(p["name"] == sys.argv[1] for p in json.load(sys.stdin)["ports"]))' "$1"; }

# ---- the daemon is not running yet
cni ADD "$ID_A" "$(netns_path "$NS_A")"
expect_error 11 "ADD with vuswitchd down"
cni CHECK "$ID_A" "$(netns_path "$NS_A")"
expect_error 11 "CHECK with vuswitchd down"
cni DEL "$ID_A" "$(netns_path "$NS_A")"
check "DEL with vuswitchd down and no state file: exit status, no output" "$CNI_RC/$CNI_OUT" "0/"
cni VERSION "" ""
check "VERSION" "$CNI_OUT" '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'

vusw_start cni --lcores 0,1 --log-level info

# ---- ADD, as Multus calls it (runtimeConfig.CNIDeviceInfoFile from the capability)
add_pod() { # ID NS
  local conf
  conf=$("$PYTHON" -c 'import json, sys; c = json.loads(sys.argv[1]); c["runtimeConfig"] = {"CNIDeviceInfoFile": sys.argv[2]}
print(json.dumps(c))' "$CONFIG" "$DEVINFO/default-vuswitch-net-$1-net1.json")
  cni ADD "$1" "$(netns_path "$2")" "$conf"
}
add_pod "$ID_A" "$NS_A"
check "ADD pod A: exit status" "$CNI_RC" 0
first_result=$CNI_OUT
check "ADD result cniVersion" "$(json '["cniVersion"]')" 1.0.0
check "ADD result interface" "$(json '["interfaces"][0]["name"]')" net1
check "ADD result sandbox" "$(json '["interfaces"][0]["sandbox"]')" "$(netns_path "$NS_A")"
check "ADD result socketPath" "$(json '["interfaces"][0]["socketPath"]')" "$SOCKDIR/$PORT_A.sock"
[[ -S $SOCKDIR/$PORT_A.sock ]] || { log "MISMATCH: no socket $SOCKDIR/$PORT_A.sock"; errors=$((errors + 1)); }
check "port $PORT_A state" "$(vusw_port_json "$PORT_A" state)" waiting
CNI_OUT=$(cat "$DEVINFO/default-vuswitch-net-$ID_A-net1.json" 2>/dev/null || echo '{}')
check "device-info type" "$(json '["type"]')" vhost-user
check "device-info mode (the host made the socket)" "$(json '["vhost-user"]["mode"]')" client
check "device-info path in the pod" "$(json '["vhost-user"]["path"]')" "$POD_DIR/$PORT_A.sock"

add_pod "$ID_A" "$NS_A"
check "ADD pod A again: exit status" "$CNI_RC" 0
check "ADD pod A again: the same result" "$CNI_OUT" "$first_result"
check "ADD pod A again: still one port" "$(ports_named "$PORT_A")" 1

add_pod "$ID_B" "$NS_B"
check "ADD pod B: exit status" "$CNI_RC" 0
for pod in "$ID_A:$NS_A" "$ID_B:$NS_B"; do
  cni CHECK "${pod%%:*}" "$(netns_path "${pod#*:}")"
  check "CHECK pod ${pod:0:8}: exit status, no output" "$CNI_RC/$CNI_OUT" "0/"
done

# ---- the pods' DPDK apps: testpmd virtio-user inside each pod's namespace (lcores on
# core 0; the switch polls on core 1)
for pod in A B; do
  ns=NS_$pod
  printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "${!ns}" "$(command -v dpdk-testpmd)" >"$SYS_TMP/testpmd-$pod"
  chmod +x "$SYS_TMP/testpmd-$pod"
done

# send FROM TO ROUNDS: ROUNDS x 128 frames FROM -> TO, each round waited for at the
# receiver (TO receives nothing else), so no ring overflows while a core is busy elsewhere.
send() {
  local from=$1 to=$2 rounds=$3 r i
  tp_cmd "$to" start
  for ((r = 1; r <= rounds; r++)); do
    tp_cmd "$from" "start tx_first 4"
    sleep 0.2
    tp_cmd "$from" stop
    for ((i = 0; i < 50; i++)); do
      [[ $(tp_stat "$to" 1 0 2) == "$(tp_stat "$from" 1 0 3)" ]] && break
      sleep 0.2
    done
  done
  tp_cmd "$to" stop
}
# exchange A B ROUNDS: testpmds named A and B in pods A and B, ROUNDS x 128 frames each
# way, counted exactly at both ends and by the switch; both quit at the end.
exchange() {
  local a=$1 b=$2 rounds=$3 i a_rx a_tx b_rx b_tx
  SYS_TESTPMD=$SYS_TMP/testpmd-A tp_start_virtio_user "$a" "$SOCKDIR/$PORT_A.sock" "$MAC_A" "$MAC_B"
  SYS_TESTPMD=$SYS_TMP/testpmd-B tp_start_virtio_user "$b" "$SOCKDIR/$PORT_B.sock" "$MAC_B" "$MAC_A"
  check "testpmd $a runs in pod A's namespace" "$(readlink "/proc/${TP_PID[$a]}/ns/net")" \
    "$(ip netns exec "$NS_A" readlink /proc/self/ns/net)"
  for ((i = 0; i < 100; i++)); do
    [[ $(vusw_port_json "$PORT_A" state) == ready && $(vusw_port_json "$PORT_B" state) == ready ]] && break
    sleep 0.1
  done
  check "pod A's port ready" "$(vusw_port_json "$PORT_A" state)" ready
  check "pod B's port ready" "$(vusw_port_json "$PORT_B" state)" ready
  log "pod A -> pod B, then B -> A: $rounds x 128 frames each"
  send "$a" "$b" "$rounds"
  send "$b" "$a" "$rounds"
  read -r _ a_rx a_tx _ <<<"$(tp_stats "$a" 1)"
  read -r _ b_rx b_tx _ <<<"$(tp_stats "$b" 1)"
  check "A sent" "$a_tx" $((rounds * 128))
  check "B received all A sent" "$b_rx" "$a_tx"
  check "B sent" "$b_tx" $((rounds * 128))
  check "A received all B sent" "$a_rx" "$b_tx"
  check "switch: pod A's port received A's frames" "$(vusw_port_json "$PORT_A" rx_packets)" "$a_tx"
  check "switch: pod B's port drops" "$(vusw_port_json "$PORT_B" drops)" 0
  tp_quit "$a"
  tp_quit "$b"
}
exchange A B "$ROUNDS"

# ---- vuswitchd restarts (systemctl restart, a DaemonSet update): the pods' ports come
# back from its state file (the same run dir), CHECK passes, new front-ends switch again.
# Pod B is deleted while vuswitchd is down: DEL takes its port out of the state file.
check "the pods' ports are run-time ports" "$(vusw_port_json "$PORT_A" origin) $(vusw_port_json "$PORT_B" origin)" \
  "runtime runtime"
rc=0
vusw_stop || rc=$?
check "vuswitchd exit code on SIGTERM (restart)" "$rc" 0
cp "$VUSW_LOG" "$SYS_TMP/vuswitchd-cni-before-restart.log"
STATE=$SYS_TMP/run-cni/ports.json
recorded() { "$PYTHON" -c 'import json, sys; print(" ".join(p["name"] for p in json.load(open(sys.argv[1]))["ports"]))' "$STATE"; }
check "the state file records both pods' ports" "$(recorded)" "$PORT_A $PORT_B"
cni DEL "$ID_B" "$(netns_path "$NS_B")"
check "DEL pod B with vuswitchd down: exit status, no output" "$CNI_RC/$CNI_OUT" "0/"
check "... took its port out of the state file" "$(recorded)" "$PORT_A"
vusw_start cni --lcores 0,1 --log-level info
grep -q '1 of 1 ports added at run time restored' "$VUSW_LOG" \
  || { log "MISMATCH: no restore line in $VUSW_LOG"; errors=$((errors + 1)); }
cni CHECK "$ID_B" "$(netns_path "$NS_B")"
expect_error 101 "CHECK pod B after the restart (deleted while vuswitchd was down)"
cni ADD "$ID_B" "$(netns_path "$NS_B")"
check "ADD pod B again: exit status" "$CNI_RC" 0
for pod in "$ID_A:$NS_A" "$ID_B:$NS_B"; do
  cni CHECK "${pod%%:*}" "$(netns_path "${pod#*:}")"
  check "CHECK pod ${pod:0:8} after the restart: exit status, no output" "$CNI_RC/$CNI_OUT" "0/"
done
exchange A2 B2 1

# ---- DEL and CHECK after it
cni DEL "$ID_A" "$(netns_path "$NS_A")"
check "DEL pod A: exit status, no output" "$CNI_RC/$CNI_OUT" "0/"
check "DEL pod A: port gone" "$(ports_named "$PORT_A")" 0
[[ ! -e $SOCKDIR/$PORT_A.sock ]] || { log "MISMATCH: socket of pod A left behind"; errors=$((errors + 1)); }
cni DEL "$ID_A" ""
check "DEL pod A again (netns gone too): exit status" "$CNI_RC" 0
cni CHECK "$ID_A" "$(netns_path "$NS_A")"
expect_error 101 "CHECK after DEL"
check "pod B's port untouched" "$(ports_named "$PORT_B")" 1

# ---- bad input
conf_with() { # KEY JSON-VALUE: CONFIG with KEY set to VALUE
  "$PYTHON" -c 'import json, sys; c = json.loads(sys.argv[1]); c[sys.argv[2]] = json.loads(sys.argv[3])
print(json.dumps(c))' "$CONFIG" "$1" "$2"
}
cni ADD "$ID_A" "$(netns_path "$NS_A")" "$(conf_with mtu 20000)"
expect_error 7 "ADD with mtu 20000"
cni ADD "$ID_A" "$(netns_path "$NS_A")" "$(conf_with vlan '"ten"')"
expect_error 7 "ADD with vlan \"ten\""
cni ADD "$ID_A" "$(netns_path "$NS_A")" "$(conf_with socketDir '"pods"')"
expect_error 7 "ADD with a relative socketDir"
cni ADD "$ID_A" "$(netns_path "$NS_A")" "not json"
expect_error 6 "ADD with a config that is not JSON"
cni ADD "$ID_A" "$(netns_path "$NS_A")" "${CONFIG/\"1.0.0\"/\"0.4.0\"}"
expect_error 1 "ADD with cniVersion 0.4.0"
cni ADD "" "$(netns_path "$NS_A")"
expect_error 4 "ADD without CNI_CONTAINERID"
cni ADD "$ID_A" ""
expect_error 4 "ADD without CNI_NETNS"
cni ADD "$ID_A" "/var/run/netns/vusw-no-such-ns-$$"
expect_error 4 "ADD with a CNI_NETNS that does not exist"
cni ADD "$ID_A" "$(netns_path "$NS_A")" "$CONFIG" CNI_IFNAME="eth:0"
expect_error 4 "ADD with CNI_IFNAME eth:0"
check "no port was made by the bad ADDs" "$(ports_named "$PORT_A")" 0
vusw_ctl add-port vhost-user "$SYS_TMP/other.sock" --name "$PORT_A" >/dev/null || fail "add-port of a conflicting port"
cni ADD "$ID_A" "$(netns_path "$NS_A")"
expect_error 102 "ADD when the pod's port name belongs to another socket"
cni CHECK "$ID_A" "$(netns_path "$NS_A")"
expect_error 102 "CHECK when the pod's port name belongs to another socket"
vusw_ctl del-port "$PORT_A" >/dev/null

cni DEL "$ID_B" "$(netns_path "$NS_B")"
check "DEL pod B: exit status" "$CNI_RC" 0
check "DEL pod B: port gone" "$(ports_named "$PORT_B")" 0
[[ -z $(ls -A "$SOCKDIR") ]] || { log "MISMATCH: sockets left in $SOCKDIR: $(ls -A "$SOCKDIR")"; errors=$((errors + 1)); }

rc=0
vusw_stop || rc=$?
check "vuswitchd exit code on SIGTERM" "$rc" 0
cni ADD "$ID_B" "$(netns_path "$NS_B")"
expect_error 11 "ADD after vuswitchd stopped"

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: ADD/CHECK/DEL as kubelet calls them; two pods exchanged $((ROUNDS * 256)) frames, and 256 more after a vuswitchd restart"
