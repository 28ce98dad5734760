#!/usr/bin/env bash
# System test: a VXLAN tunnel over a routed underlay. The remote VTEP (a kernel `vxlan`
# device) is on another subnet, behind a Linux router: vuswitchd's tunnel
# (local=10.97.1.1/24,gateway=10.97.1.254) sends its frames to the router's MAC with the
# remote's IP, and ARPs for the router, never for the remote.
#
#   netns guest (..-g-PID)        host                        netns router (NS)      netns vtep (..-v-PID)
#   gtap0 192.168.97.1/24         vuswitchd                   ip_forward=1           vx0 192.168.97.2/24
#     = testpmd io: net_tap0 <->    vm1.sock -- switch -- vx42                         (VNI 42) over
#       virtio-user --vhost-user->  (local 10.97.1.1/24,      10.97.1.254/24         10.97.2.2/24,
#                                    gateway 10.97.1.254)     10.97.2.254/24 ==veth==  default via
#                                    underlay =====veth=====>                          10.97.2.254
#
# Checks: vx42's remote 10.97.2.2 has the router as its next hop and the router's MAC, by
# ARP (vuswitchctl show port, --json; vusw_vxlan_remote_resolved 1 on /metrics); ping both
# ways between the guest and the kernel VTEP's overlay address; the frames were counted as
# to and from the remote; the router's neighbour entry for 10.97.1.1 is vx42's MAC; no
# tunnel drops but no_neighbour. (That no ARP goes to an off-link remote is
# tests/dataplane/vxlan_gateway_test.cc's.)
# Checksum offloads are off on both ends of vuswitchd's veth (net_af_packet reads the
# frames as they are). Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LOCAL=10.97.1.1 GATEWAY=10.97.1.254 ROUTER_FAR=10.97.2.254 REMOTE=10.97.2.2 VNI=42
GUEST_IP=192.168.97.1 VTEP_IP=192.168.97.2

sys_init vxlan_routed
sys_require_hugepages 600
sys_require_daemon
sys_require_tools python3 ethtool curl ping
modprobe vxlan 2>/dev/null || true

# The router (NS) with vuswitchd's underlay veth on 10.97.1.0/24.
sys_netns
sys_veth
UNDERLAY=$VETH_HOST ROUTER_NEAR_IF=$VETH_NS ROUTER_MAC=$VETH_NS_MAC
ethtool -K "$UNDERLAY" rx off tx off >/dev/null 2>&1 || true
in_ns ethtool -K "$ROUTER_NEAR_IF" rx off tx off >/dev/null 2>&1 || true
in_ns sysctl -qw net.ipv4.ip_forward=1
in_ns ip addr add "$GATEWAY/24" dev "$ROUTER_NEAR_IF"

# The VTEP's namespace on 10.97.2.0/24: a second veth from the router, its host end moved there.
VTEP_NS=vusw-vxlan_routed-v-$$
sys_extra_netns "$VTEP_NS"
in_vtep() { ip netns exec "$VTEP_NS" "$@"; }
sys_veth
ip link set "$VETH_HOST" netns "$VTEP_NS"
in_vtep ip link set "$VETH_HOST" up
in_ns ip addr add "$ROUTER_FAR/24" dev "$VETH_NS"
in_vtep ip addr add "$REMOTE/24" dev "$VETH_HOST"
in_vtep ip route add default via "$ROUTER_FAR"
in_vtep ip link add vx0 type vxlan id "$VNI" remote "$LOCAL" local "$REMOTE" dstport 4789 dev "$VETH_HOST" \
  || skip "cannot create a kernel vxlan device (module vxlan)"
in_vtep ip addr add "$VTEP_IP/24" dev vx0
in_vtep ip link set vx0 up
log "router $NS: $ROUTER_NEAR_IF $GATEWAY/24 ($ROUTER_MAC), $VETH_NS $ROUTER_FAR/24; kernel VTEP vx0 $VTEP_IP over $REMOTE"

GUEST_NS=vusw-vxlan_routed-g-$$
sys_extra_netns "$GUEST_NS"
in_guest() { ip netns exec "$GUEST_NS" "$@"; }

METRICS=127.0.0.1:$(free_port 19640 19659)
VUSW_METRICS=$METRICS vusw_start vxlan_routed --lcores 0,1 --log-level info \
  --nic "net_af_packet0,iface=$UNDERLAY" \
  --vxlan "vx42,local=$LOCAL/24,gateway=$GATEWAY,remote=$REMOTE,vni=$VNI,underlay=net_af_packet0" \
  --vhost-user "$SYS_TMP/vm1.sock"
tp_start_tap_guest guest "$GUEST_NS" "$SYS_TMP/vm1.sock" "$GUEST_IP/24"

vx42() { vusw_port_field vx42 "$1"; }
remote() { # FIELD of vx42's one remote in `show port --json`
  vusw_ctl --json show port vx42 | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["port"]["vxlan"]["remotes"][0][sys.argv[1]])' "$1"
}
metric() { VUSW_METRICS=$METRICS vusw_metric "$@"; }

# ---- the next hop: the router, resolved by ARP
resolved() { test "$(metric vusw_vxlan_remote_resolved port=vx42 "remote=$REMOTE")" -eq 1; }
wait_for 5 "vusw_vxlan_remote_resolved 1 for $REMOTE (the gateway's MAC learned)" resolved
vusw_ctl show port vx42 || true
expect "$REMOTE's next hop is the gateway $GATEWAY" test "$(remote next_hop)" == "$GATEWAY"
expect "... and its MAC the router's ($ROUTER_MAC)" test "$(remote mac)" == "$ROUTER_MAC"
expect "show port says so: '$REMOTE (via $GATEWAY, $ROUTER_MAC'" \
  grep -qF "$REMOTE (via $GATEWAY, $ROUTER_MAC" <(vusw_ctl show port vx42)
expect "vx42's prefix and gateway in --json" test "$(vx42 vxlan.prefix) $(vx42 vxlan.gateway)" == "24 $GATEWAY"

# ---- ping both ways through the router (the first pings resolve the overlay's ARP)
in_guest ping -c 2 -i 0.3 -W 2 "$VTEP_IP" >/dev/null 2>&1 || true
expect "guest pings the kernel VTEP's overlay address through the router, no loss" \
  in_guest ping -q -c 5 -i 0.1 -W 2 "$VTEP_IP"
expect "the VTEP namespace pings the guest, no loss" in_vtep ping -q -c 5 -i 0.1 -W 2 "$GUEST_IP"
expect "frames went to and came from $REMOTE (encapsulated, decapsulated >= 10)" \
  test "$(metric vusw_vxlan_encapsulated_packets_total port=vx42 "remote=$REMOTE")" -ge 10 \
  -a "$(metric vusw_vxlan_decapsulated_packets_total port=vx42 "remote=$REMOTE")" -ge 10
expect "the router's neighbour entry for $LOCAL is vx42's underlay MAC" \
  grep -qi "$(vx42 vxlan.local_mac)" <(in_ns ip neigh show "$LOCAL" dev "$ROUTER_NEAR_IF")
expect "no drops on vx42 but no_neighbour (before the gateway answered): $(vx42 drops)" \
  test "$(vusw_port_json vx42 drops)" -eq "$(vx42 drops.no_neighbour)"

rc=0
vusw_stop || rc=$?
expect "vuswitchd exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: a guest behind vuswitchd and a kernel VTEP on another subnet ping both ways through a router (the tunnel's gateway)"
