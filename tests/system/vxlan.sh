#!/usr/bin/env bash
# System test: VXLAN interop with the Linux kernel's VTEP. A guest behind vuswitchd and
# a kernel `vxlan` device in a namespace ping and talk TCP to each other across the tunnel.
#
#   netns guest (vusw-vxlan-g-PID)      host                              netns vtep (vusw-vxlan-PID)
#   gtap0 192.168.42.1/24               vuswitchd                         vx0 192.168.42.2/24 (VNI 42)
#     = testpmd io: net_tap0 <->          vm1.sock -- switch -- vx42        over VETH 10.99.0.2/24
#       net_virtio_user0 --vhost-user-->  (tunnel: local 10.99.0.1,       |
#                                          underlay net_af_packet0) ==veth==+
#
# testpmd runs inside the guest namespace, so its tap interface is created there: it
# forwards (io mode) between the tap's kernel stack and its virtio-user port.
# Checks: ARP for 10.99.0.1 answered by the switch's VTEP; ping both ways; TCP both ways
# (1 MiB of random bytes, SHA-256 compared); an unfragmentable 1450-byte IPv4 packet
# (1422-byte ping) passes, a 1451-byte one is dropped as mtu_exceeded on vx42, exactly;
# `vuswitchctl show port vx42` counts agree with the kernel VTEP's (decapsulated here =
# sent by vx0, encapsulated here = received by vx0), no drop other than those asked for.
# Then vx42 is removed and added again at run time (vuswitchctl del-port, add-port vxlan
# over the same af_packet device, which must have been closed): it learns the VTEP's MAC
# again and carries pings, and its counters on /metrics (vusw_vxlan_*) agree with the
# kernel VTEP's and with the port's own.
# Checksum offloads are off on both veth ends (a veth leaves checksums for the receiver
# to fill in; net_af_packet would read them unfilled). Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LOCAL=10.99.0.1 REMOTE=10.99.0.2 VNI=42
GUEST_IP=192.168.42.1 VTEP_IP=192.168.42.2

sys_init vxlan
sys_require_hugepages 600
sys_require_daemon
sys_require_tools python3 ethtool curl ping
modprobe vxlan 2>/dev/null || true

sys_netns
sys_veth
GUEST_NS=vusw-vxlan-g-$$
sys_extra_netns "$GUEST_NS"
in_guest() { ip netns exec "$GUEST_NS" "$@"; }
ethtool -K "$VETH_HOST" rx off tx off >/dev/null 2>&1 || true
in_ns ethtool -K "$VETH_NS" rx off tx off >/dev/null 2>&1 || true

# The kernel VTEP.
in_ns ip addr add "$REMOTE/24" dev "$VETH_NS"
in_ns ip link add vx0 type vxlan id "$VNI" remote "$LOCAL" local "$REMOTE" dstport 4789 dev "$VETH_NS" \
  || skip "cannot create a kernel vxlan device (module vxlan)"
in_ns ip addr add "$VTEP_IP/24" dev vx0
in_ns ip link set vx0 up
log "kernel VTEP: vx0 $VTEP_IP VNI $VNI, $REMOTE on $VETH_NS -> remote $LOCAL; vx0 MTU $(in_ns cat /sys/class/net/vx0/mtu)"

METRICS_PORT=$(free_port 19520 19539)
echo "mac-age = 300" >"$SYS_TMP/vuswitchd.conf"  # lowered at the end, by a reload
VUSW_METRICS=127.0.0.1:$METRICS_PORT vusw_start vxlan --lcores 0,1 --log-level info --config "$SYS_TMP/vuswitchd.conf" \
  --nic "net_af_packet0,iface=$VETH_HOST" \
  --vxlan "vx42,local=$LOCAL,remote=$REMOTE,vni=$VNI,dstport=4789,underlay=net_af_packet0" \
  --vhost-user "$SYS_TMP/vm1.sock"

tp_start_tap_guest guest "$GUEST_NS" "$SYS_TMP/vm1.sock" "$GUEST_IP/24"

port_field() { vusw_port_json "$@"; }
vx42() { vusw_port_field vx42 "$1"; }  # FIELD.PATH in `vuswitchctl --json show port vx42`
vx0_stat() { in_ns cat "/sys/class/net/vx0/statistics/$1"; }
wire_stat() { in_ns cat "/sys/class/net/$VETH_NS/statistics/$1"; }
# The counts compared at the end, from here on: "vx42 rx, tx, ARP in, ARP out; underlay rx, tx;
# the kernel's veth end tx, rx; vx0 rx".
counts() {
  echo "$(vx42 rx_packets) $(vx42 tx_packets) $(vx42 vxlan.arp_received)" \
    "$(( $(vx42 vxlan.arp_requests_sent) + $(vx42 vxlan.arp_replies_sent) ))" \
    "$(vx42 vxlan.underlay.rx_packets) $(vx42 vxlan.underlay.tx_packets)" \
    "$(wire_stat tx_packets) $(wire_stat rx_packets) $(vx0_stat rx_packets)"
}

# ---- ARP for the underlay: the switch asks for the remote as it starts and answers for local=.
for ((i = 0; i < 50; i++)); do [[ $(vx42 vxlan.remotes) == *mac*:* ]] && break; sleep 0.1; done
vusw_ctl show port vx42 || true
expect "vx42 learned the kernel VTEP's MAC ($VETH_NS_MAC) by ARP" \
  grep -q "$VETH_NS_MAC" <(vusw_ctl --json show port vx42)

# The kernel learned our MAC from our ARP request: forget it, so that it asks (and we answer).
in_ns ip neigh flush dev "$VETH_NS"
read -r -a before < <(counts)

# ---- ping both ways (the first pings resolve the overlay's ARP across the tunnel)
in_guest ping -c 2 -i 0.3 -W 2 "$VTEP_IP" >/dev/null 2>&1 || true
expect "guest pings the kernel VTEP's overlay address, no loss" \
  in_guest ping -q -c 5 -i 0.2 -W 2 "$VTEP_IP"
expect "the VTEP namespace pings the guest, no loss" \
  in_ns ping -q -c 5 -i 0.2 -W 2 "$GUEST_IP"
expect "ARP for $LOCAL from the kernel was answered by vx42" test "$(vx42 vxlan.arp_replies_sent)" -ge 1
neighbour_is_ours() { in_ns ip neigh show "$LOCAL" dev "$VETH_NS" | grep -qi "$(vx42 vxlan.local_mac)"; }
expect "the kernel's neighbour entry for $LOCAL is the underlay NIC's MAC ($(in_ns ip neigh show "$LOCAL"))" \
  neighbour_is_ours

# ---- TCP both ways: 1 MiB of random bytes, the receiver prints its SHA-256.
head -c 1048576 /dev/urandom >"$SYS_TMP/payload"
want=$(sha256sum <"$SYS_TMP/payload" | cut -d' ' -f1)
TCP_SERVER='
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(15)
c, _ = s.accept(); c.settimeout(15); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(h.hexdigest(), n)'
TCP_CLIENT='
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
c.sendall(open(sys.argv[3], "rb").read()); c.close()'
tcp_transfer() { # FROM-RUNNER TO-RUNNER TO-IP LABEL
  local got
  $2 timeout 20 "$PYTHON" -c "$TCP_SERVER" "$3" 5001 >"$SYS_TMP/tcp-$4" 2>&1 &
  local server=$!
  sleep 0.5
  $1 timeout 20 "$PYTHON" -c "$TCP_CLIENT" "$3" 5001 "$SYS_TMP/payload" || log "TCP client ($4) failed"
  wait "$server" || true
  got=$(cat "$SYS_TMP/tcp-$4")
  expect "TCP $4: 1 MiB arrived intact ($got)" test "$got" == "$want 1048576"
}
tcp_transfer in_guest in_ns "$VTEP_IP" "guest->vtep"
tcp_transfer in_ns in_guest "$GUEST_IP" "vtep->guest"

# ---- MTU: vx42 carries 1450-byte IPv4 packets; one byte more is dropped and counted.
mtu_drops0=$(vx42 drops.mtu_exceeded)
expect "vx42's MTU is the underlay's 1500 less 50" test "$(port_field vx42 mtu)" -eq 1450
expect "an unfragmentable 1450-byte packet crosses (ping -M do -s 1422)" \
  in_guest ping -q -c 2 -i 0.2 -W 2 -M 'do' -s 1422 "$VTEP_IP"
in_guest ping -c 3 -i 0.2 -W 1 -M 'do' -s 1423 "$VTEP_IP" >/dev/null 2>&1 \
  && { log "MISMATCH: a 1451-byte packet crossed a 1450-byte tunnel"; errors=$((errors + 1)); }
expect "the three 1451-byte packets were dropped as mtu_exceeded on vx42" \
  test "$(( $(vx42 drops.mtu_exceeded) - mtu_drops0 ))" -eq 3

# ---- counters: every frame on the wire accounted for at both ends.
sleep 0.3
vusw_ctl show port vx42 || true
read -r -a after < <(counts)
d=()
for i in "${!after[@]}"; do d[i]=$(( after[i] - before[i] )); done
log "since the pings: vx42 decapsulated ${d[0]}, encapsulated ${d[1]}, ARP in ${d[2]} out ${d[3]};" \
  "underlay rx ${d[4]} tx ${d[5]}; kernel veth tx ${d[6]} rx ${d[7]}; vx0 rx ${d[8]}"
expect "every frame the kernel put on the wire reached the underlay (${d[6]} == ${d[4]})" test "${d[6]}" -eq "${d[4]}"
expect "each was decapsulated or taken as ARP (${d[4]} == ${d[0]} + ${d[2]})" test "${d[4]}" -eq $(( d[0] + d[2] ))
expect "the underlay sent the encapsulated frames and ARP (${d[5]} == ${d[1]} + ${d[3]})" test "${d[5]}" -eq $(( d[1] + d[3] ))
expect "the kernel's veth end received them all (${d[7]} == ${d[5]})" test "${d[7]}" -eq "${d[5]}"
expect "the kernel VTEP decapsulated every frame vx42 encapsulated (${d[8]} == ${d[1]})" test "${d[8]}" -eq "${d[1]}"
expect "vx42 carried traffic (> 700 frames each way)" test "${d[0]}" -gt 700 -a "${d[1]}" -gt 700
drops=$(vusw_ctl --json show port vx42 | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)["port"]["drops"]; d.pop("mtu_exceeded", None); d.pop("no_neighbour", None)
print(sum(d.values()), d)')
expect "no other drops on vx42 ($drops)" test "${drops%% *}" -eq 0

# ---- vx42 again, added at run time over the same device (closed when it was removed).
metric() { VUSW_METRICS=127.0.0.1:$METRICS_PORT vusw_metric "$@"; }
series_of_vx42() { curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | grep -c 'port="vx42"' || true; }
expect "vuswitchctl del-port vx42" vusw_ctl del-port vx42
expect "vx42's series left /metrics" test "$(series_of_vx42)" -eq 0
expect "vuswitchctl add-port vxlan vx42 over net_af_packet0,iface=$VETH_HOST at run time" \
  vusw_ctl add-port vxlan "vx42,local=$LOCAL,remote=$REMOTE,vni=$VNI,underlay=up0" \
  --underlay "net_af_packet0,iface=$VETH_HOST"
at_remote=(port=vx42 "remote=$REMOTE")
for ((i = 0; i < 50; i++)); do [[ $(metric vusw_vxlan_remote_resolved "${at_remote[@]}") == 1 ]] && break; sleep 0.1; done
expect "the new vx42 learned the kernel VTEP's MAC again (vusw_vxlan_remote_resolved 1)" \
  test "$(metric vusw_vxlan_remote_resolved "${at_remote[@]}")" -eq 1
expect "... by ARP (vusw_vxlan_neighbours_learned_total 1)" test "$(metric vusw_vxlan_neighbours_learned_total port=vx42)" -eq 1
expect "its underlay is up0" test "$(vx42 vxlan.underlay.name)" == up0
read -r enc0 dec0 vx0_rx0 vx0_tx0 < <(echo "$(metric vusw_vxlan_encapsulated_packets_total "${at_remote[@]}")" \
  "$(metric vusw_vxlan_decapsulated_packets_total "${at_remote[@]}")" "$(vx0_stat rx_packets)" "$(vx0_stat tx_packets)")
expect "guest pings the kernel VTEP through the run-time vx42, no loss" \
  in_guest ping -q -c 20 -i 0.05 -W 2 "$VTEP_IP"
sleep 0.3
enc=$(( $(metric vusw_vxlan_encapsulated_packets_total "${at_remote[@]}") - enc0 ))
dec=$(( $(metric vusw_vxlan_decapsulated_packets_total "${at_remote[@]}") - dec0 ))
vx0_rx=$(( $(vx0_stat rx_packets) - vx0_rx0 )) vx0_tx=$(( $(vx0_stat tx_packets) - vx0_tx0 ))
log "run-time vx42 during the pings: /metrics encapsulated $enc decapsulated $dec; kernel vx0 rx $vx0_rx tx $vx0_tx"
expect "encapsulated to $REMOTE on /metrics = what vx0 decapsulated ($enc == $vx0_rx), the 20 echo requests at least" \
  test "$enc" -eq "$vx0_rx" -a "$enc" -ge 20
expect "decapsulated from $REMOTE on /metrics = what vx0 sent ($dec == $vx0_tx), the 20 echo replies at least" \
  test "$dec" -eq "$vx0_tx" -a "$dec" -ge 20
expect "one inner MAC (vx0's) behind $REMOTE (vusw_vxlan_remote_inner_macs)" \
  test "$(metric vusw_vxlan_remote_inner_macs "${at_remote[@]}")" -eq 1
expect "/metrics and show port agree: frames out (port tx = encapsulated, one remote)" \
  test "$(metric vusw_port_tx_packets_total port=vx42)" -eq "$(metric vusw_vxlan_encapsulated_packets_total port=vx42)" \
  -a "$(vx42 tx_packets)" -eq "$(metric vusw_port_tx_packets_total port=vx42)"
expect "/metrics and show port agree: frames in (port rx = decapsulated)" \
  test "$(metric vusw_port_rx_packets_total port=vx42)" -eq "$(metric vusw_vxlan_decapsulated_packets_total port=vx42)" \
  -a "$(vx42 rx_packets)" -eq "$(metric vusw_port_rx_packets_total port=vx42)"
expect "/metrics and show port agree: ARP requests sent, replies sent, received" \
  test "$(metric vusw_vxlan_arp_requests_sent_total port=vx42) $(metric vusw_vxlan_arp_replies_sent_total port=vx42) $(metric vusw_vxlan_arp_received_total port=vx42)" \
  == "$(vx42 vxlan.arp_requests_sent) $(vx42 vxlan.arp_replies_sent) $(vx42 vxlan.arp_received)"
vusw_ctl show port vx42 || true

# Aging: with --mac-age 1 (a reload applies it at once) and no traffic, vx0's MAC goes from
# the tunnel's inner map and from the switch's table.
tp_quit guest
echo "mac-age = 1" >"$SYS_TMP/vuswitchd.conf"
vusw_ctl reload >/dev/null || fail "vuswitchctl reload failed"
inner_gone() { test "$(metric vusw_vxlan_remote_inner_macs "${at_remote[@]}")" -eq 0; }
WAIT_FOR_POLL_S=0.2 wait_for 10 "vx0's MAC aged out of vx42's inner map (--mac-age 1)" inner_gone
expect "no FDB entry left behind vx42" test "$(vusw_ctl --json show fdb | grep -c '"vx42"')" -eq 0

rc=0
vusw_stop || rc=$?
expect "vuswitchd exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: ping and TCP both ways between a guest behind vuswitchd and a Linux VXLAN VTEP; the tunnel re-added at run time carries pings, its /metrics counters agree"
