#!/usr/bin/env bash
# VM test: a QEMU guest and a kernel interface in a network namespace ping each other
# through vuswitchd's DPDK NIC port (net_af_packet on one end of a veth pair).
#
#   guest A (vm1.sock) <-> vuswitchd <-> net_af_packet0 (iface vswhPID) ==veth== vswnPID [netns]
#
# Guest A pings the namespace COUNT times at boot (VUSW-PING-RESULT marker), then the
# namespace pings A COUNT times (busybox ping: no dependency on iputils). Pass: no loss
# either way, the switch counted the frames on both ports and dropped none.
# IPv6 is off on the veth ends so the kernel adds no traffic of its own.
#
# Exit: 0 pass, 1 fail, 77 skip (not root / no netns / QEMU cannot run a TCG guest here).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-20}
INTERVAL=${INTERVAL:-0.2}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
MAC_A=52:54:00:00:00:0a
IP_A=10.10.0.1
IP_NS=10.10.0.254
BUSYBOX=${BUSYBOX:-/bin/busybox}

vm_init nic
command -v ip >/dev/null || skip "ip (iproute2) not installed"
[[ -x $BUSYBOX ]] || skip "$BUSYBOX not found (busybox-static)"

NS=vusw-vmnic-$$
HOST_IF=vswh$$
NS_IF=vswn$$
HOST_IF=${HOST_IF:0:15}
NS_IF=${NS_IF:0:15}
VM_CLEANUP_HOOKS+=("ip netns del $NS" "ip link del $HOST_IF")
ip netns add "$NS" 2>"$VM_TMP/netns.err" || skip "cannot create a network namespace: $(cat "$VM_TMP/netns.err")"
ip link add "$HOST_IF" type veth peer name "$NS_IF" || fail "cannot create a veth pair"
ip link set "$NS_IF" netns "$NS"
sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1" || true
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$NS_IF.disable_ipv6=1" || true
ip link set "$HOST_IF" up
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip link set "$NS_IF" up
ip netns exec "$NS" ip addr add "$IP_NS/24" dev "$NS_IF"
log "namespace $NS: $NS_IF $IP_NS <-veth-> $HOST_IF (net_af_packet0)"

vusw_start --nic "net_af_packet0,iface=$HOST_IF" --vhost-user "$VM_TMP/vm1.sock"
vm_start A "$MAC_A" "$IP_A/24" "path=$VM_TMP/vm1.sock,reconnect=1" "vusw_ping=$IP_NS:$COUNT:$INTERVAL"
vm_ready A "$BOOT_TIMEOUT"
base=$(vusw_snap booted)   # drops are counted from here (see ping.sh)

fails=()
vm_wait_marker A 'VUSW-PING-RESULT' $((COUNT + 150))
result=$(vm_marker A VUSW-PING-RESULT)
log "guest -> namespace: $result"
[[ $(marker_field "$result" received) == "$COUNT" && $(marker_field "$result" loss) == 0 ]] \
  || fails+=("guest -> namespace: $result")

out=$(ip netns exec "$NS" "$BUSYBOX" ping -q -c "$COUNT" -i "$INTERVAL" -W 5 "$IP_A" 2>&1 || true)
received=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' <<<"$out")
log "namespace -> guest: ${received:-0} of $COUNT pings answered"
[[ $received == "$COUNT" ]] || fails+=("namespace -> guest: ${received:-0} of $COUNT answered: $out")

snap=$(vusw_snap final)
log "ports:"
vusw_summary "$snap"
while IFS= read -r f; do [[ -n $f ]] && fails+=("switch: $f"); done < <(
  snap_check "$snap" vm1.rx_packets">="$((2 * COUNT)) vm1.tx_packets">="$((2 * COUNT)) \
    net_af_packet0.rx_packets">="$((2 * COUNT)) net_af_packet0.tx_packets">="$((2 * COUNT)) \
    vm1.protocol_errors==0 "vm1.state=connected|ready"
  snap_check "$snap" --since "$base" vm1.drops==0 net_af_packet0.drops==0)

log "stopping guest and switch"
vm_stop A
vusw_stop
if ((${#fails[@]})); then
  for f in "${fails[@]}"; do log "FAIL: $f"; done
  exit 1
fi
log "PASS: guest <-> namespace through the NIC port, $COUNT pings each way, zero drops (total ${SECONDS}s)"
